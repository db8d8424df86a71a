package proxy

import (
	"context"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/internal/bounded"
)

// requestInfo collects what the handlers learn about a request, for the one
// log line and the metrics written at the boundary.
type requestInfo struct {
	id                                 string // the request ID (X-Request-Id)
	route, registry, repo, ref, digest string
	err                                *regError
}

type infoKey struct{}

func withInfo(ctx context.Context, info *requestInfo) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// noteDigest records the digest a request was served (or refused) for.
func noteDigest(ctx context.Context, digest string) {
	if info, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		info.digest = digest
	}
}

// recorder remembers the status and the body bytes written, and bounds
// every write to the client: before each write of at most maxClientWrite
// bytes the connection's write deadline is set idle ahead, and cleared once
// the write is done (an HTTP/2 deadline fires even with no write pending,
// and the wait for the upstream between two writes is bounded elsewhere).
// A client that stops reading is thus cut off after idle without progress,
// never after a total, and its transfer's goroutines and buffers are freed.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool

	rc   *http.ResponseController // made on first use
	idle time.Duration
}

// bufferedWrite is the most a first write may have to go into net/http's
// response buffer (2 KiB before chunking) without touching the connection:
// it cannot block, so it needs no deadline of its own (lastWrite bounds the
// flush). Most manifests are smaller: the warm path sets one deadline.
const bufferedWrite = 2 << 10

// maxClientWrite is the most written to a client under one deadline: a
// client reading steadily but slowly is never cut off for a large buffer.
const maxClientWrite = 256 << 10

func newRecorder(w http.ResponseWriter, idle time.Duration) *recorder {
	return &recorder{ResponseWriter: w, status: http.StatusOK, idle: idle}
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	if r.bytes == 0 && len(b) <= bufferedWrite {
		n, err := r.ResponseWriter.Write(b)
		r.bytes += int64(n)
		return n, err
	}
	written := 0
	for len(b) > 0 {
		piece := b[:min(len(b), maxClientWrite)]
		r.deadline(time.Now().Add(r.idle))
		n, err := r.ResponseWriter.Write(piece)
		r.deadline(time.Time{})
		written += n
		r.bytes += int64(n)
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

// maxSendfile is the most sent from a file under one write deadline.
const maxSendfile = 4 << 20

// ReadFrom lets http.ServeContent send a stored blob with sendfile, in
// pieces of at most maxSendfile, each under its own idle deadline (as
// Write's pieces are).
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.wroteHeader = true
	rf, ok := r.ResponseWriter.(io.ReaderFrom)
	lr, limited := src.(*io.LimitedReader)
	if !ok || !limited {
		return io.Copy(writerOnly{r}, src)
	}
	var total int64
	for lr.N > 0 {
		piece := &io.LimitedReader{R: lr.R, N: min(lr.N, maxSendfile)}
		r.deadline(time.Now().Add(r.idle))
		n, err := rf.ReadFrom(piece)
		r.deadline(time.Time{})
		lr.N -= n
		total += n
		r.bytes += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
	}
	return total, nil
}

// writerOnly hides a writer's ReadFrom (so io.Copy does not recurse).
type writerOnly struct{ io.Writer }

// Flush lets streamed blobs reach the client as they pass.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		r.deadline(time.Now().Add(r.idle))
		f.Flush()
		r.deadline(time.Time{})
	}
}

// lastWrite bounds what net/http writes after the handler returns (the
// buffered end of the response): it runs as the handler ends. HTTP/1 clears
// the deadline once the response is out; HTTP/2 when the stream closes.
func (r *recorder) lastWrite() { r.deadline(time.Now().Add(r.idle)) }

// deadline sets the write deadline where the writer supports one
// (http.ErrNotSupported elsewhere, e.g. in tests' recorders, is ignored).
func (r *recorder) deadline(t time.Time) {
	if r.idle > 0 {
		if r.rc == nil {
			r.rc = http.NewResponseController(r.ResponseWriter)
		}
		_ = r.rc.SetWriteDeadline(t)
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// finish writes the request's log line and metrics. It also runs when a
// handler aborted the connection (panic(http.ErrAbortHandler)).
func (p *Proxy) finish(rec *recorder, r *http.Request, info *requestInfo, start time.Time, aborted bool) {
	status := rec.status
	if aborted {
		status = 0
	}
	d := time.Since(start)
	p.metrics.observeRequest(info.route, r.Method, status, rec.bytes, d)
	fields := []zap.Field{
		zap.String("requestId", info.id),
		zap.String("method", logMethod(r.Method)),
		zap.String("route", info.route),
		zap.String("registry", info.registry),
		zap.String("repo", info.repo),
		zap.String("reference", info.ref),
		zap.String("digest", info.digest),
		zap.Int("status", status),
		zap.Int64("bytes", rec.bytes),
		zap.Duration("duration", d),
		zap.String("remote", r.RemoteAddr),
	}
	if info.err != nil {
		fields = append(fields, zap.String("code", info.err.Code), zap.String("error", bounded.String(info.err.Message, maxLoggedError)))
		if info.err.cause != nil {
			fields = append(fields, zap.String("cause", bounded.String(info.err.cause.Error(), maxLoggedError)))
		}
	}
	switch {
	case aborted:
		p.log.Warn("request aborted", fields...)
	case status >= 500:
		p.log.Warn("request", fields...)
	case info.route == routeBlob && status < 400:
		// A pull makes one blob request per layer: at info they would
		// drown the manifest lines, which are the ones that say what
		// was decided.
		p.log.Debug("request", fields...)
	default:
		p.log.Info("request", fields...)
	}
}

// maxLoggedMethod and maxLoggedError bound what of a request's method and
// of an error message is logged: net/http accepts any token, of any length,
// as a method, and error messages quote methods and upstream answers.
const (
	maxLoggedMethod = 16
	maxLoggedError  = 1024
)

func logMethod(m string) string { return bounded.String(m, maxLoggedMethod) }
