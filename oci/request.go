package oci

import "context"

// Request is who asked, as the proxy learned it at its boundary: the
// request ID (the client's X-Request-Id when it sent a usable one, else
// made by the proxy) and the client's address. The proxy puts it in the
// context of every call it makes, so the gate's decision lines and records
// name the request that caused them.
type Request struct {
	ID     string
	Client string
}

type requestKey struct{}

// WithRequest returns ctx carrying r.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom is the Request ctx carries (zero when none).
func RequestFrom(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}

type aheadKey struct{}

// WithAhead returns ctx marked as a lookup made ahead of knowing that what
// it is for exists (the gate finding an image's signatures while the
// proxy fetches its manifest, which may be a 404): its answers may be
// used, but must teach nothing shared (a repository's lack of the
// referrers API), as a client's own requests must not.
func WithAhead(ctx context.Context) context.Context {
	return context.WithValue(ctx, aheadKey{}, true)
}

// Ahead reports whether ctx is marked by WithAhead.
func Ahead(ctx context.Context) bool {
	ahead, _ := ctx.Value(aheadKey{}).(bool)
	return ahead
}
