package upstream

import (
	"context"
	"net/http"
	"sync"
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
		n.v = resp.Header.Get("Retry-After")
		n.mu.Unlock()
	}
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
