package upstream

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A 429 answered to the ping or the token exchange that ggcr sends for the
// proxy reaches it as a transport.Error, which keeps the status but not
// the headers, so the upstream's Retry-After would be lost and the proxy
// could not pass it on. Instead the hostGuard (beneath ggcr's transports)
// notes it in a retryNote the caller put in the request's context, and
// the caller attaches it to the error it returns (retryAfterError), where
// transportFailure finds it.

type retryNoteKey struct{}

// retryNote is the Retry-After of the last 429 answered under a context.
type retryNote struct {
	mu sync.Mutex
	v  string
}

// withRetryNote returns ctx carrying a new retryNote.
func withRetryNote(ctx context.Context) (context.Context, *retryNote) {
	n := &retryNote{}
	return context.WithValue(ctx, retryNoteKey{}, n), n
}

// noteRetryAfter records resp's Retry-After in the retryNote of the
// request's context, when resp is a 429 and there is one.
func noteRetryAfter(r *http.Request, resp *http.Response) {
	if resp.StatusCode != http.StatusTooManyRequests {
		return
	}
	if n, ok := r.Context().Value(retryNoteKey{}).(*retryNote); ok {
		n.mu.Lock()
		n.v = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		n.mu.Unlock()
	}
}

// maxRetryAfter caps the wait the proxy passes on to its clients.
const maxRetryAfter = time.Hour

// retryAfter is an upstream's (or its token realm's) Retry-After as the
// proxy passes it on: whole seconds, from seconds or an HTTP date, at most
// maxRetryAfter, or "" for anything else. What was sent is never copied
// (a realm may be any host the upstream pointed the proxy at).
func retryAfter(v string, now time.Time) string {
	v = strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		d = maxRetryAfter
		if err == nil && n < uint64(maxRetryAfter/time.Second) {
			d = time.Duration(n) * time.Second
		}
	} else if t, err := http.ParseTime(v); err == nil {
		d = min(max(t.Sub(now), 0), maxRetryAfter)
	} else {
		return ""
	}
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// wrap attaches the noted Retry-After, if any, to err.
func (n *retryNote) wrap(err error) error {
	n.mu.Lock()
	v := n.v
	n.mu.Unlock()
	if err == nil || v == "" {
		return err
	}
	return &retryAfterError{err: err, retryAfter: v}
}

// retryAfterError is an error beneath which the upstream answered 429 with
// a Retry-After.
type retryAfterError struct {
	err        error
	retryAfter string
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }
