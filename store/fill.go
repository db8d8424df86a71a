package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
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
	// limit is the most the fill may write: its size, or maxBlob when
	// unknown. reserved (under the store's mu) is what it counts against
	// the store's limit while it runs: its size, or when unknown what has
	// arrived.
	limit, reserved int64

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

// errBypassed is fetch's answer while new fetches skip the store (a write
// failed lately): read d from the upstream.
var errBypassed = errors.New("the content store is bypassed after a write failure")

// fetch returns a reader of blob d of repo: of the fetch in progress for d
// if there is one (whichever repository started it: the bytes of a digest
// are the same everywhere, and the gate granted d in repo before this is
// called), else of a new one, started with open. The fetch runs under the
// store's context, not the caller's: a client that goes away does not stop
// it for the others (the upstream client's idle timeout bounds a stalled
// one, Close abandons it). The second result is the blob's size (-1 if unknown).
// errStored means d is stored: the caller reads it from the store.
func (s *Store) fetch(ctx context.Context, repo oci.Repository, d v1.Hash, open opener) (io.ReadCloser, int64, error) {
	key := d.String()
	for range 3 {
		s.mu.Lock()
		if _, ok := s.objects[blobPath(d)]; ok {
			s.mu.Unlock()
			return nil, 0, errStored
		}
		if s.bypassed() {
			s.mu.Unlock()
			return nil, 0, errBypassed
		}
		f, ok := s.fills[key]
		if !ok {
			return s.start(ctx, repo, d, open) // with s.mu held
		}
		s.mu.Unlock()
		f.joins.Add(1)
		select {
		case <-f.ready:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		if f.openErr != nil {
			if errors.Is(f.openErr, errBypassed) {
				return nil, 0, errBypassed
			}
			if f.repo == repo {
				return nil, 0, f.openErr // the same upstream answer for everyone
			}
			continue // another repository's answer (its credentials): try ours
		}
		s.mu.Lock()
		if s.fills[key] != f { // finished meanwhile
			s.mu.Unlock()
			f.mu.Lock()
			ferr := f.err
			f.mu.Unlock()
			if ferr != nil && !errors.Is(ferr, errDisk) {
				// The fetch this request waited for failed (a corrupt or
				// cut upstream): it fails too, rather than fetch again.
				return nil, 0, ferr
			}
			continue // stored (or the disk failed: bypassed): look again
		}
		r, err := f.reader(ctx, open, s.metrics.served.WithLabelValues("upstream"))
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
func (s *Store) start(ctx context.Context, repo oci.Repository, d v1.Hash, open opener) (io.ReadCloser, int64, error) {
	tmp, err := s.createTemp(filepath.Join(s.dir, "tmp"), "blob-*")
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

	// giveUp ends the fill before it started: everyone waiting gets err.
	giveUp := func(err error) (io.ReadCloser, int64, error) {
		f.openErr = err
		s.mu.Lock()
		delete(s.fills, d.String())
		_ = os.Remove(f.tmp)
		s.mu.Unlock()
		close(f.ready)
		_ = tmp.Close()
		return nil, 0, err
	}
	b, err := open(s.ctx, nil)
	if err != nil {
		return giveUp(err)
	}
	f.size = b.Size
	if b.Size > s.maxBlob() {
		// Too large to keep (it would evict most of the store): served
		// straight from the upstream, by everyone.
		_ = b.Body.Close()
		return giveUp(errBypassed)
	}
	// The fill reserves its size against maxSize (one of unknown size
	// what has arrived, as it arrives), so the files in tmp/ count as the
	// store's and eviction makes room for them.
	f.limit = b.Size
	if f.limit < 0 {
		f.limit = s.maxBlob()
	}
	s.mu.Lock()
	f.reserved = max(b.Size, 0)
	if s.filling+f.reserved > s.maxSize/2 {
		// Fills in progress already hold half the store: this blob is
		// served from the upstream, not kept (it is on a later pull).
		s.mu.Unlock()
		_ = b.Body.Close()
		s.metrics.discarded.WithLabelValues(causeBusy).Inc()
		return giveUp(errBypassed)
	}
	s.filling += f.reserved
	s.metrics.filling.Set(float64(s.filling))
	over := s.total+s.filling > s.maxSize
	r, rerr := f.reader(ctx, open, s.metrics.served.WithLabelValues("upstream"))
	s.mu.Unlock()
	if over {
		s.kick()
	}
	close(f.ready)
	if !s.track() { // closing
		s.abandon(f, tmp, fmt.Errorf("%w: the store is closing", errFillFailed), causeUpstream)
		_ = b.Body.Close()
	} else {
		go func() {
			defer s.wg.Done()
			s.run(f, tmp, b)
		}()
	}
	if rerr != nil {
		return nil, 0, rerr
	}
	return r, f.size, nil
}

// waiting is how many requests found f in progress.
func (f *fill) waiting() int { return int(f.joins.Load()) }

// opener opens blob d from the upstream, whole (rng nil) or from an
// offset.
type opener func(ctx context.Context, rng *upstream.Range) (*upstream.Blob, error)

// reader opens a new reader on f's file for a request whose context is
// ctx; open is how it resumes from the upstream if the store's disk fails
// mid-fetch; served counts the bytes it returns. The caller holds s.mu (so the temporary file is still there:
// it is renamed or removed under s.mu).
func (f *fill) reader(ctx context.Context, open opener, served prometheus.Counter) (io.ReadCloser, error) {
	file, err := os.Open(f.tmp)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errFillFailed, err)
	}
	r := &fillReader{f: f, file: file, ctx: ctx, open: open, served: served}
	// A reader waiting for bytes wakes when its request ends (the client
	// went away), instead of when the fill next makes progress.
	r.stop = context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	return r, nil
}

// run copies the upstream body to the file, hashing it, and ends the fill.
func (s *Store) run(f *fill, tmp tempFile, b *upstream.Blob) {
	defer b.Body.Close()
	h := oci.NewHasher(f.d.Algorithm)
	buf := make([]byte, fillChunk)
	var failure error
	var cause string
	for failure == nil {
		m, rerr := b.Body.Read(buf) // as it comes: readers get bytes as they arrive
		if m > 0 {
			if _, werr := tmp.Write(buf[:m]); werr != nil {
				failure, cause = fmt.Errorf("%w: %w", errDisk, s.diskError(werr)), causeDisk
				s.diskFailed()
				break
			}
			h.Write(buf[:m])
			f.mu.Lock()
			f.n += int64(m)
			n := f.n
			f.cond.Broadcast()
			f.mu.Unlock()
			if n > f.limit {
				failure, cause = fmt.Errorf("%w: upstream sent more than the %d bytes of blob %s", errFillFailed, f.limit, f.d), causeTooLarge
			} else if f.size < 0 {
				s.reserve(f, int64(m))
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
	// The link (f.repo may read the blob) is written first, and the blob
	// and its link are indexed under the same lock that ends the fill: a
	// request that no longer finds the fill finds both, never a stored blob
	// it must ask the upstream whether its repository may read.
	rel := blobPath(f.d)
	linkRel, newLink := linkPath(f.repo, f.d)
	if newLink = newLink && !s.linked(f.repo, f.d); newLink && err == nil {
		newLink = s.writeFile(linkRel, nil) == nil // a failure only costs a HEAD later
	}
	var total int64
	s.mu.Lock()
	if err == nil {
		err = s.place(f.tmp, rel)
	}
	if err == nil {
		total = s.addLocked(rel, kindBlob, n, nil)
		if newLink {
			total = s.addLocked(linkRel, kindLink, 0, nil)
		}
	}
	s.endLocked(f)
	s.mu.Unlock()
	if err != nil {
		_ = os.Remove(f.tmp)
		if newLink {
			_ = os.Remove(filepath.Join(s.dir, linkRel))
		}
		s.diskFailed()
		s.metrics.discarded.WithLabelValues(causeDisk).Inc()
		s.log.Error("content store: cannot keep a verified blob", zap.String("digest", f.d.String()), zap.Error(s.diskError(err)))
		return
	}
	s.afterAdd(kindBlob, total)
	if newLink {
		s.afterAdd(kindLink, total)
	}
}

// abandon ends a failed fill: every reader's next read fails, and the file
// is removed (readers that have it open keep their descriptor until they
// stop).
func (s *Store) abandon(f *fill, tmp tempFile, failure error, cause string) {
	f.mu.Lock()
	f.err = failure
	f.cond.Broadcast()
	f.mu.Unlock()
	_ = tmp.Close()
	s.mu.Lock()
	s.endLocked(f)
	_ = os.Remove(f.tmp)
	s.mu.Unlock()
	s.metrics.discarded.WithLabelValues(cause).Inc()
	s.log.Warn("content store: blob fetch discarded", zap.String("digest", f.d.String()),
		zap.String("cause", cause), zap.Error(failure))
}

// endLocked ends fill f (s.mu is held): new requests no longer find it,
// and its reservation is released (a committed blob is counted in total
// instead).
func (s *Store) endLocked(f *fill) {
	delete(s.fills, f.d.String())
	s.filling -= f.reserved
	f.reserved = 0
	s.metrics.filling.Set(float64(s.filling))
}

// reserve adds n bytes that arrived for fill f, of unknown size, to its
// reservation, and starts an eviction pass when the store is over its
// limit.
func (s *Store) reserve(f *fill, n int64) {
	s.mu.Lock()
	f.reserved += n
	s.filling += n
	s.metrics.filling.Set(float64(s.filling))
	over := s.total+s.filling > s.maxSize
	s.mu.Unlock()
	if over {
		s.kick()
	}
}

// maxBlob is the largest blob the store keeps: a tenth of its limit.
// Larger ones are served from the upstream, never kept.
func (s *Store) maxBlob() int64 { return s.maxSize / 10 }

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
	// causeBusy: fills in progress held half of maxSize; the blob was
	// served from the upstream without being kept.
	causeBusy = "in_flight_limit"
)

// errDisk marks a fill that failed because the store could not write:
// its readers go on from the upstream (see fillReader.resume).
var errDisk = errors.New("content store write failed")

// fillReader reads a fill's file as it grows.
type fillReader struct {
	f *fill
	// file is the reader's own descriptor of the fill's file; its offset
	// is pos (reads are sequential), which sendfile reads from and moves.
	file   *os.File
	pos    int64
	ctx    context.Context // the request's
	stop   func() bool     // stops the wake-up at the request's end
	open   opener
	served prometheus.Counter // bytes returned to the request
	// rest, once the fill failed for want of disk, is the rest of the blob
	// from the upstream, checked against the digest with what was read.
	rest io.ReadCloser
}

// next waits until there are bytes past r.pos that r may return, and says
// how far it may read; io.EOF once everything was returned. Once the fill
// failed for want of disk it sets r.rest (the rest from the upstream) and
// returns 0, nil.
func (r *fillReader) next() (int64, error) {
	f := r.f
	f.mu.Lock()
	for f.err == nil {
		if avail := f.readable(); r.pos < avail {
			f.mu.Unlock()
			return avail, nil
		}
		if f.done {
			f.mu.Unlock()
			return 0, io.EOF
		}
		if err := r.ctx.Err(); err != nil {
			f.mu.Unlock()
			return 0, err
		}
		f.cond.Wait()
	}
	err := f.err
	f.mu.Unlock()
	if !errors.Is(err, errDisk) || r.open == nil {
		return 0, err
	}
	if r.rest, err = r.resume(); err != nil {
		return 0, err
	}
	return 0, nil
}

func (r *fillReader) Read(p []byte) (int, error) {
	if r.rest == nil {
		avail, err := r.next()
		if err != nil {
			return 0, err
		}
		if r.rest == nil {
			if int64(len(p)) > avail-r.pos {
				p = p[:avail-r.pos]
			}
			n, err := r.file.Read(p)
			r.pos += int64(n)
			r.served.Add(float64(n))
			if errors.Is(err, io.EOF) && n > 0 {
				err = nil
			}
			return n, err
		}
	}
	n, err := r.rest.Read(p)
	r.served.Add(float64(n))
	return n, err
}

// WriteTo sends each part of the file that may be read as a limited
// *os.File, so a writer with ReadFrom (net/http's, over TCP) sends it
// with sendfile, never copying it through this process.
func (r *fillReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.rest == nil {
		avail, err := r.next()
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if r.rest != nil {
			break
		}
		want := avail - r.pos
		n, err := io.Copy(w, &io.LimitedReader{R: r.file, N: want})
		r.pos += n
		total += n
		r.served.Add(float64(n))
		if err != nil {
			return total, err
		}
		if n < want { // cannot happen: the bytes were written before counted
			return total, fmt.Errorf("%w: %s ended %d bytes short of %d", errFillFailed, r.f.tmp, want-n, avail)
		}
	}
	// The rest from the upstream, through w's Write (a failure of w's
	// ReadFrom would read as the writer's).
	n, err := io.Copy(struct{ io.Writer }{w}, struct{ io.Reader }{r.rest})
	r.served.Add(float64(n))
	return total + n, err
}

func (r *fillReader) Close() error {
	r.stop()
	if r.rest != nil {
		_ = r.rest.Close()
	}
	return r.file.Close()
}

// resume goes on from the upstream after the store's disk failed: it
// hashes what this reader has returned (from its own descriptor, which
// keeps the bytes even once the file is removed), then reads the rest
// (a range, or the whole blob with the part already sent skipped), and
// releases the last byte only if everything the client got hashes to the
// digest.
func (r *fillReader) resume() (io.ReadCloser, error) {
	f := r.f
	h := oci.NewHasher(f.d.Algorithm)
	if _, err := io.Copy(h, io.NewSectionReader(r.file, 0, r.pos)); err != nil {
		return nil, fmt.Errorf("%w: rereading the part sent: %v", errFillFailed, err)
	}
	b, err := r.open(r.ctx, upstream.ParseRange(fmt.Sprintf("bytes=%d-", r.pos)))
	if err != nil {
		return nil, fmt.Errorf("%w: resuming from the upstream: %v", errFillFailed, err)
	}
	switch {
	case b.Partial && b.First == r.pos:
	case !b.Partial:
		if _, err := io.CopyN(io.Discard, b.Body, r.pos); err != nil {
			_ = b.Body.Close()
			return nil, fmt.Errorf("%w: resuming from the upstream: %v", errFillFailed, err)
		}
	default:
		_ = b.Body.Close()
		return nil, fmt.Errorf("%w: the upstream answered range %d- from %d", errFillFailed, r.pos, b.First)
	}
	return &checkedRest{rc: b.Body, h: h, want: f.d, size: f.size, n: r.pos}, nil
}

// checkedRest is the rest of a blob whose beginning was hashed into h: it
// holds back one byte, and returns it, then EOF, only when the whole blob
// hashes to want (and has size bytes, when known).
type checkedRest struct {
	rc       io.ReadCloser
	h        hash.Hash
	want     v1.Hash
	size, n  int64
	held     []byte
	finished bool
}

func (c *checkedRest) Read(p []byte) (int, error) {
	if c.finished {
		return 0, io.EOF
	}
	if len(p) < 2 {
		return 0, io.ErrShortBuffer
	}
	for {
		k := copy(p, c.held)
		m, err := c.rc.Read(p[k:])
		c.h.Write(p[k : k+m])
		c.n += int64(m)
		total := k + m
		if errors.Is(err, io.EOF) {
			if hex.EncodeToString(c.h.Sum(nil)) != c.want.Hex || (c.size >= 0 && c.n != c.size) {
				return 0, fmt.Errorf("%w: the upstream's bytes of %s do not match its digest", errFillFailed, c.want)
			}
			c.finished, c.held = true, nil
			return total, nil
		}
		if err != nil {
			return 0, err
		}
		if total == 0 {
			continue
		}
		c.held = append(c.held[:0], p[total-1])
		if total > 1 {
			return total - 1, nil
		}
	}
}

func (c *checkedRest) Close() error { return c.rc.Close() }
