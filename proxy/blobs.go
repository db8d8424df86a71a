package proxy

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/upstream"
)

// serveBlob answers GET and HEAD /v2/<name>/blobs/<digest>, with Range.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-blobs
//
// The Gate is asked before the upstream is contacted. Full reads are hashed
// as they stream and cut off if the bytes do not match the digest. Ranged
// reads cannot be checked against the digest; they pass the same Gate.
func (p *Proxy) serveBlob(w http.ResponseWriter, r *http.Request, rt *route) error {
	d, rerr := parseDigest(rt.ref)
	if rerr != nil {
		return rerr
	}
	ctx := r.Context()
	noteDigest(ctx, d.String())
	maxBytes, err := p.gate.CheckBlob(ctx, rt.repo, d)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		return p.headBlob(w, r, rt, d, maxBytes)
	}
	return p.getBlob(w, r, rt, d, upstream.ParseRange(r.Header.Get("Range")), maxBytes)
}

// withinPermit refuses a blob larger than the Gate's maxBytes allows (a
// blob served only as signature material is at most the size its artifact
// lists). An unknown size is refused too when there is a bound.
func withinPermit(maxBytes int64, d v1.Hash, size int64) error {
	if maxBytes <= 0 || (size >= 0 && size <= maxBytes) {
		return nil
	}
	return &DeniedError{Message: fmt.Sprintf("%s is served only as signature material, of at most %d bytes; the upstream has %d", d, maxBytes, size)}
}

func setBlobHeaders(h http.Header, d v1.Hash) {
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Accept-Ranges", "bytes")
	h.Set("Etag", `"`+d.String()+`"`)
}

// headBlob answers HEAD with the blob's size from one (shared) upstream HEAD.
func (p *Proxy) headBlob(w http.ResponseWriter, r *http.Request, rt *route, d v1.Hash, maxBytes int64) error {
	size, err := p.up.StatBlob(r.Context(), rt.repo, d)
	if err != nil {
		return err
	}
	if err := withinPermit(maxBytes, d, size); err != nil {
		return err
	}
	setBlobHeaders(w.Header(), d)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	return nil
}

// getBlob streams a blob, or the requested range of it, from the upstream
// (or the content store). A blob granted as image content (no maxBytes)
// goes through the Keeper, when there is one.
func (p *Proxy) getBlob(w http.ResponseWriter, r *http.Request, rt *route, d v1.Hash, rng *upstream.Range, maxBytes int64) error {
	open := p.up.OpenBlob
	if p.keep != nil && maxBytes == 0 {
		open = p.keep.OpenKeptBlob
	}
	b, err := open(r.Context(), rt.repo, d, rng)
	if err != nil {
		return err
	}
	defer b.Body.Close()
	if err := withinPermit(maxBytes, d, b.Size); err != nil {
		return err
	}
	switch {
	case b.Content != nil:
		// A verified file: net/http answers the range or condition, and
		// sends it with sendfile.
		setBlobHeaders(w.Header(), d)
		http.ServeContent(w, r, "", time.Time{}, b.Content)
		return nil
	case b.Verified && rng == nil:
		return p.streamChecked(r.Context(), w, rt, d, b)
	case b.Partial:
		return p.sendPartial(w, rt, d, b.ContentRange, b.Last-b.First+1, b.Body)
	case rng != nil:
		return p.sliceRange(w, rt, d, rng, b)
	}
	return p.streamVerified(w, rt, d, b)
}

// streamVerified sends a whole blob while hashing it. Hashing runs beside
// the writes (one goroutine hashes chunk i while another writes chunk i-1),
// so the digest check costs CPU but little throughput. The last chunk is
// held back until the hash is checked: a blob whose bytes do not match its
// digest never reaches the client complete, the connection is aborted.
func (p *Proxy) streamVerified(w http.ResponseWriter, rt *route, d v1.Hash, b *upstream.Blob) error {
	setBlobHeaders(w.Header(), d)
	if b.Size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(b.Size, 10))
	}
	w.WriteHeader(http.StatusOK)

	bufs := getBuffers()
	defer putBuffers(bufs)
	s := newStream(bufs)
	// Once a write to the client has failed (it went away, or made no
	// progress for clientIdleTimeout), nothing more is read from the upstream.
	gone := make(chan struct{})
	go s.hash(oci.NewHasher(d.Algorithm))
	go s.write(w, gone)
	n64, readErr := s.read(stopReader{r: b.Body, stop: gone})
	sum := <-s.sum
	ok := readErr == nil && hex.EncodeToString(sum) == d.Hex
	s.final <- ok
	writeErr := <-s.written
	switch {
	case writeErr != nil:
		abort() // the client went away or stopped reading
	case readErr != nil:
		p.blobFailure(rt, d, fmt.Sprintf("upstream body failed after %d bytes: %v", n64, readErr))
	case !ok:
		got := fmt.Sprintf("%s:%x", d.Algorithm, sum)
		b.Mismatched(got)
		p.blobFailure(rt, d, "bytes hash to "+got+", not the requested digest")
	}
	return nil
}

// streamChecked sends a whole blob whose source checks it against its
// digest (a read fails before the last byte when it does not match): no
// hashing here; a failed read aborts the response. ctx is the request's.
func (p *Proxy) streamChecked(ctx context.Context, w http.ResponseWriter, rt *route, d v1.Hash, b *upstream.Blob) error {
	setBlobHeaders(w.Header(), d)
	if b.Size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(b.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	bufs := getBuffers()
	defer putBuffers(bufs)
	out := &clientWriter{w: w}
	var n int64
	var err error
	if wt, ok := b.Body.(io.WriterTo); ok {
		// The body sends itself (the store's file as it fills), through
		// the ResponseWriter's ReadFrom: over TCP, sendfile.
		n, err = wt.WriteTo(fileSender{out})
	} else {
		n, err = io.CopyBuffer(out, b.Body, bufs[0])
	}
	if err != nil {
		if out.err != nil || (errors.Is(err, context.Canceled) && ctx.Err() != nil) {
			// The client went away or stopped reading (or went away
			// while waiting for bytes of a fetch in progress): not a
			// failed fetch.
			abort()
		}
		p.blobFailure(rt, d, fmt.Sprintf("blob fetch failed after %d bytes: %v", n, err))
	}
	return nil
}

// errClientGone is what stopReader reads once the client is gone.
var errClientGone = errors.New("the client is gone")

// stopReader reads r until stop is closed.
type stopReader struct {
	r    io.Reader
	stop <-chan struct{}
}

func (s stopReader) Read(b []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errClientGone
	default:
		return s.r.Read(b)
	}
}

// stream is the three-stage pipeline of streamVerified: the handler reads
// into free buffers and hands each chunk to the hasher and the writer; a
// buffer is free again once both are done with it.
type stream struct {
	bufs            *blobBuffers
	free            chan int
	refs            [numBlobBuffers]atomic.Int32
	toHash, toWrite chan chunk
	sum             chan []byte
	final           chan bool // the verdict on the held-back last chunk
	written         chan error
}

type chunk struct{ buf, n int }

func newStream(bufs *blobBuffers) *stream {
	s := &stream{
		bufs: bufs, free: make(chan int, numBlobBuffers),
		toHash: make(chan chunk, numBlobBuffers), toWrite: make(chan chunk, numBlobBuffers),
		sum: make(chan []byte, 1), final: make(chan bool, 1), written: make(chan error, 1),
	}
	for i := range numBlobBuffers {
		s.free <- i
	}
	return s
}

func (s *stream) release(i int) {
	if s.refs[i].Add(-1) == 0 {
		s.free <- i
	}
}

// read fills free buffers from body until EOF or an error, and closes the
// hasher's and the writer's inputs.
func (s *stream) read(body io.Reader) (int64, error) {
	defer close(s.toHash)
	defer close(s.toWrite)
	var total int64
	for {
		i := <-s.free
		// Fill the buffer: fewer, larger chunks mean fewer hand-offs and
		// write syscalls (the idle timer still restarts on every read).
		n, err := fill(body, s.bufs[i])
		if n > 0 {
			total += int64(n)
			s.refs[i].Store(2)
			s.toHash <- chunk{i, n}
			s.toWrite <- chunk{i, n}
		} else {
			s.free <- i
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// fill reads into b until it is full or the reader fails, returning the
// reader's own error (io.EOF at the end, anything else as it came).
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *stream) hash(h hash.Hash) {
	for c := range s.toHash {
		h.Write(s.bufs[c.buf][:c.n])
		s.release(c.buf)
	}
	s.sum <- h.Sum(nil)
}

// write sends every chunk but the last as it comes, and the last one only
// if the verdict says so. Each w.Write is bounded by clientIdleTimeout (see
// recorder). After a write error it closes gone and only releases buffers.
func (s *stream) write(w io.Writer, gone chan<- struct{}) {
	var err error
	send := func(c chunk) {
		if err == nil {
			if _, err = w.Write(s.bufs[c.buf][:c.n]); err != nil {
				close(gone)
			}
		}
		s.release(c.buf)
	}
	pending := chunk{buf: -1}
	for c := range s.toWrite {
		if pending.buf >= 0 {
			send(pending)
		}
		pending = c
	}
	ok := <-s.final
	if pending.buf >= 0 {
		if ok {
			send(pending)
		} else {
			s.release(pending.buf)
		}
	}
	s.written <- err
}

// sliceRange serves a range out of a whole-blob upstream response.
func (p *Proxy) sliceRange(w http.ResponseWriter, rt *route, d v1.Hash, rng *upstream.Range, b *upstream.Blob) error {
	if b.Size < 0 { // no size: the range cannot be placed; send it all, verified
		return p.streamVerified(w, rt, d, b)
	}
	first, last, ok := rng.Resolve(b.Size)
	if !ok {
		e := newError(codeRangeUnsatisfied, "range %s is outside blob of %d bytes", rng.Header(), b.Size)
		e.Header = http.Header{"Content-Range": {fmt.Sprintf("bytes */%d", b.Size)}}
		return e
	}
	if _, err := io.CopyN(io.Discard, b.Body, first); err != nil {
		return newError(codeUpstreamError, "upstream %s: blob body ended before the range: %v", rt.repo.Registry, err)
	}
	return p.sendPartial(w, rt, d, fmt.Sprintf("bytes %d-%d/%d", first, last, b.Size), last-first+1, b.Body)
}

func (p *Proxy) sendPartial(w http.ResponseWriter, rt *route, d v1.Hash, contentRange string, n int64, body io.Reader) error {
	setBlobHeaders(w.Header(), d)
	w.Header().Set("Content-Range", contentRange)
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusPartialContent)
	bufs := getBuffers()
	defer putBuffers(bufs)
	out := &clientWriter{w: w}
	if _, err := io.CopyBuffer(out, io.LimitReader(body, n), bufs[0]); err != nil {
		if out.err != nil {
			abort() // the client went away or stopped reading
		}
		p.blobFailure(rt, d, fmt.Sprintf("ranged read failed: %v", err))
	}
	return nil
}

// blobFailure logs why a blob response is being cut off, and cuts it off.
func (p *Proxy) blobFailure(rt *route, d v1.Hash, why string) {
	p.log.Error("blob response aborted", zap.String("registry", rt.repo.Registry),
		zap.String("repo", rt.repo.Name), zap.String("digest", d.String()), zap.String("reason", why))
	abort()
}

// abort ends the response without completing it: net/http closes the
// connection (HTTP/1) or resets the stream (HTTP/2), so the client sees a
// failed transfer, never a short or wrong one as if it were good.
func abort() { panic(http.ErrAbortHandler) }

// clientWriter hides the ResponseWriter's ReadFrom, so io.CopyBuffer uses
// our buffer, the idle-aware reader and the recorder's bounded writes, and
// remembers whether a write to the client failed.
type clientWriter struct {
	w   io.Writer
	err error
}

func (c *clientWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if err != nil {
		c.err = err
	}
	return n, err
}

// fileSender is a clientWriter with the ResponseWriter's ReadFrom, for a
// body that sends a file itself (io.WriterTo): net/http sends a limited
// *os.File over TCP with sendfile. sendfile fails with one error for
// either side: EIO is the file's (the disk failed: logged as a failed
// fetch); anything else counts as the client's.
type fileSender struct{ *clientWriter }

func (f fileSender) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := f.w.(io.ReaderFrom)
	if !ok {
		return io.Copy(f.clientWriter, src)
	}
	n, err := rf.ReadFrom(src)
	if err != nil && !errors.Is(err, syscall.EIO) {
		f.err = err
	}
	return n, err
}

// blobBufferSize is the size of each buffer a blob copy uses, and
// numBlobBuffers how many one transfer may have in flight.
const (
	blobBufferSize = 256 << 10
	numBlobBuffers = 4
)

type blobBuffers = [numBlobBuffers][]byte

var bufferPool = sync.Pool{New: func() any {
	b := new(blobBuffers)
	for i := range b {
		b[i] = make([]byte, blobBufferSize)
	}
	return b
}}

func getBuffers() *blobBuffers { return bufferPool.Get().(*blobBuffers) }

func putBuffers(b *blobBuffers) { bufferPool.Put(b) }
