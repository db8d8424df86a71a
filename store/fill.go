package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/upstream"
)

// fill is one upstream fetch of a blob into a temporary file, read by
// every request for that digest while it lasts. The bytes are hashed as
// they land; readers get every byte but the last as soon as it is on disk,
// and the last only once the digest matched, so no reader ever completes a
// blob that is corrupt or truncated. On a match the file is fsynced and
// renamed into place (after the readers have their last byte); on a
// mismatch, a truncation or a failure every reader's next read fails and
// the file is removed.
type fill struct {
	d    v1.Hash
	repo oci.Repository // whose request started it
	tmp  string
	// ready is closed once the upstream answered: then openErr, or size
	// (the upstream's Content-Length, -1 when it gave none), is set.
	ready   chan struct{}
	openErr error
	size    int64
	joins   atomic.Int32 // requests that found it in progress

	mu   sync.Mutex
	cond *sync.Cond
	n    int64 // bytes on disk
	done bool  // verified: all n bytes may be read
	err  error // failed: every read returns it
}

// errFillFailed wraps why a fetch shared through the store failed.
var errFillFailed = errors.New("blob fetch failed")

// readable is how far readers may read now: everything once verified, else
// all but the last byte (the size being known) or all but the last byte on
// disk (it not being known).
func (f *fill) readable() int64 {
	if f.done {
		return f.n
	}
	if f.size >= 0 {
		return min(f.n, f.size-1)
	}
	return max(f.n-1, 0)
}

// errStored is fetch's answer when d is (now) stored: read it from there.
var errStored = errors.New("blob is stored")

// fetch returns a reader of blob d of repo: of the fetch in progress for d
// if there is one (whichever repository started it: the bytes of a digest
// are the same everywhere, and the gate granted d in repo before this is
// called), else of a new one, started with open. The fetch runs under the
// store's context, not the caller's: a client that goes away does not stop
// it for the others (the upstream client's idle timeout bounds a stalled
// one, Close abandons it). The second result is the blob's size (-1 if unknown).
// errStored means d is stored: the caller reads it from the store.
func (s *Store) fetch(ctx context.Context, repo oci.Repository, d v1.Hash, open func(context.Context) (*upstream.Blob, error)) (io.ReadCloser, int64, error) {
	key := d.String()
	for range 3 {
		s.mu.Lock()
		if _, ok := s.objects[blobPath(d)]; ok {
			s.mu.Unlock()
			return nil, 0, errStored
		}
		f, ok := s.fills[key]
		if !ok {
			return s.start(repo, d, open) // with s.mu held
		}
		s.mu.Unlock()
		f.joins.Add(1)
		select {
		case <-f.ready:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		if f.openErr != nil {
			if f.repo == repo {
				return nil, 0, f.openErr // the same upstream answer for everyone
			}
			continue // another repository's answer (its credentials): try ours
		}
		s.mu.Lock()
		if s.fills[key] != f { // finished (stored, or failed) meanwhile: look again
			s.mu.Unlock()
			continue
		}
		r, err := f.reader()
		s.mu.Unlock()
		if err != nil {
			return nil, 0, err
		}
		s.metrics.lookups.WithLabelValues("blob", "joined").Inc()
		return r, f.size, nil
	}
	return nil, 0, fmt.Errorf("%w: blob %s: the shared fetch kept failing", errFillFailed, d)
}

// start announces a new fill of d (s.mu is held, and released here), then
// opens the upstream: requests that arrive meanwhile wait for it rather
// than open their own.
func (s *Store) start(repo oci.Repository, d v1.Hash, open func(context.Context) (*upstream.Blob, error)) (io.ReadCloser, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "blob-*")
	if err != nil {
		s.mu.Unlock()
		s.diskFailed()
		return nil, 0, s.diskError(err)
	}
	f := &fill{d: d, repo: repo, tmp: tmp.Name(), size: -1, ready: make(chan struct{})}
	f.cond = sync.NewCond(&f.mu)
	s.fills[d.String()] = f
	s.mu.Unlock()
	s.metrics.lookups.WithLabelValues("blob", "miss").Inc()

	b, err := open(s.ctx)
	if err != nil {
		f.openErr = err
		s.mu.Lock()
		delete(s.fills, d.String())
		_ = os.Remove(f.tmp)
		s.mu.Unlock()
		close(f.ready)
		_ = tmp.Close()
		return nil, 0, err
	}
	f.size = b.Size
	s.mu.Lock()
	r, rerr := f.reader()
	s.mu.Unlock()
	close(f.ready)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(f, tmp, b)
	}()
	if rerr != nil {
		return nil, 0, rerr
	}
	return r, f.size, nil
}

// waiting is how many requests found f in progress.
func (f *fill) waiting() int { return int(f.joins.Load()) }

// reader opens a new reader on f's file. The caller holds s.mu (so the
// temporary file is still there: it is renamed or removed under s.mu).
func (f *fill) reader() (io.ReadCloser, error) {
	file, err := os.Open(f.tmp)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errFillFailed, err)
	}
	return &fillReader{f: f, file: file}, nil
}

// run copies the upstream body to the file, hashing it, and ends the fill.
func (s *Store) run(f *fill, tmp *os.File, b *upstream.Blob) {
	defer b.Body.Close()
	h := oci.NewHasher(f.d.Algorithm)
	buf := make([]byte, fillChunk)
	var failure error
	var cause string
	for failure == nil {
		m, rerr := b.Body.Read(buf) // as it comes: readers get bytes as they arrive
		if m > 0 {
			if _, werr := tmp.Write(buf[:m]); werr != nil {
				failure, cause = s.diskError(werr), causeDisk
				s.diskFailed()
				break
			}
			h.Write(buf[:m])
			f.mu.Lock()
			f.n += int64(m)
			n := f.n
			f.cond.Broadcast()
			f.mu.Unlock()
			if (f.size >= 0 && n > f.size) || n > s.maxSize {
				failure, cause = fmt.Errorf("%w: upstream sent more than the %d bytes of blob %s", errFillFailed, max(f.size, s.maxSize), f.d), causeTooLarge
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil && failure == nil {
			failure, cause = fmt.Errorf("%w: upstream body of %s failed: %v", errFillFailed, f.d, rerr), causeUpstream
		}
	}
	f.mu.Lock()
	n := f.n
	f.mu.Unlock()
	if failure == nil && f.size >= 0 && n != f.size {
		failure, cause = fmt.Errorf("%w: upstream sent %d of the %d bytes of blob %s", errFillFailed, n, f.size, f.d), causeTruncated
	}
	if failure == nil {
		if got := fmt.Sprintf("%s:%x", f.d.Algorithm, h.Sum(nil)); got != f.d.String() {
			b.Mismatched(got)
			failure, cause = fmt.Errorf("%w: upstream bytes of %s hash to %s", errFillFailed, f.d, got), causeMismatch
		}
	}
	if failure != nil {
		s.abandon(f, tmp, failure, cause)
		return
	}
	// Release the last byte to the readers, then make it durable, off
	// their path.
	f.mu.Lock()
	f.done = true
	f.cond.Broadcast()
	f.mu.Unlock()
	err := tmp.Sync()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	rel := blobPath(f.d)
	s.mu.Lock()
	if err == nil {
		err = s.place(f.tmp, rel)
	}
	delete(s.fills, f.d.String())
	s.mu.Unlock()
	if err != nil {
		_ = os.Remove(f.tmp)
		s.diskFailed()
		s.metrics.discarded.WithLabelValues(causeDisk).Inc()
		s.log.Error("content store: cannot keep a verified blob", zap.String("digest", f.d.String()), zap.Error(s.diskError(err)))
		return
	}
	s.added(rel, kindBlob, n, nil)
}

// abandon ends a failed fill: every reader's next read fails, and the file
// is removed (readers that have it open keep their descriptor until they
// stop).
func (s *Store) abandon(f *fill, tmp *os.File, failure error, cause string) {
	f.mu.Lock()
	f.err = failure
	f.cond.Broadcast()
	f.mu.Unlock()
	_ = tmp.Close()
	s.mu.Lock()
	delete(s.fills, f.d.String())
	_ = os.Remove(f.tmp)
	s.mu.Unlock()
	s.metrics.discarded.WithLabelValues(cause).Inc()
	s.log.Warn("content store: blob fetch discarded", zap.String("digest", f.d.String()),
		zap.String("cause", cause), zap.Error(failure))
}

// fillChunk is how much the fill reads from the upstream before writing
// it and waking the readers.
const fillChunk = 256 << 10

// Causes of a discarded fetch (a fixed set: a metric label).
const (
	causeUpstream  = "upstream_error"
	causeTruncated = "truncated"
	causeMismatch  = "digest_mismatch"
	causeTooLarge  = "too_large"
	causeDisk      = "disk_error"
)

// fillReader reads a fill's file as it grows.
type fillReader struct {
	f    *fill
	file *os.File
	pos  int64
}

func (r *fillReader) Read(p []byte) (int, error) {
	f := r.f
	f.mu.Lock()
	var avail int64
	for {
		if f.err != nil {
			err := f.err
			f.mu.Unlock()
			return 0, err
		}
		avail = f.readable()
		if r.pos < avail {
			break
		}
		if f.done {
			f.mu.Unlock()
			return 0, io.EOF
		}
		f.cond.Wait()
	}
	f.mu.Unlock()
	if int64(len(p)) > avail-r.pos {
		p = p[:avail-r.pos]
	}
	n, err := r.file.ReadAt(p, r.pos)
	r.pos += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

func (r *fillReader) Close() error { return r.file.Close() }
