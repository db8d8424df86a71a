package upstream

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"time"
)

// call sends one request to t's upstream, recording its latency and status.
// An error (always an *Error) means no answer came; any answer, success or
// not, is returned for the caller to map.
func (c *Client) call(ctx context.Context, t target, kind, method, path string, q url.Values, hdr http.Header) (*http.Response, error) {
	start := time.Now()
	resp, err := t.reg.do(ctx, method, t.repo.Name, path, q, hdr)
	code := 0
	if err == nil {
		code = resp.StatusCode
	}
	c.metrics.observe(t.reg.name, kind, code, time.Since(start))
	if err != nil {
		if ctx.Err() != nil {
			e := newError(Timeout, t.reg.name, "upstream %s: no answer in time: %v", t.reg.name, ctx.Err())
			e.Err = err
			return nil, e
		}
		return nil, fromTransportError(t.reg.name, err)
	}
	return resp, nil
}

// metadataContext bounds one metadata exchange with an upstream: a
// manifest, a tag list, a referrers index, and the token exchange it may
// need. Sending the request, the response headers and reading the whole
// body complete within the upstream timeout in total (or ctx's own earlier
// deadline), after which the body's reads fail. Read the body (with
// readMetadata) before calling cancel:
//
//	ctx, cancel := c.metadataContext(ctx)
//	defer cancel()
//	resp, err := c.call(ctx, t, callReferrers, http.MethodGet, path, q, hdr)
//	if err != nil {
//		return err
//	}
//	defer resp.Body.Close()
//	b, err := readMetadata(ctx, t.reg.name, "referrers", resp.Body, maxManifestSize)
//
// Work run by shared already has this bound. Blob bodies are not metadata:
// they get the upstream timeout between two reads (idleBody) and no total.
func (c *Client) metadataContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// readMetadata reads a metadata body of at most limit bytes, read under
// ctx (see metadataContext). what names the body in errors ("tag list").
// A body that does not arrive in time is a Timeout, one too large or cut
// short a BadResponse.
func readMetadata(ctx context.Context, registry, what string, body io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, newError(Timeout, registry, "upstream %s: %s not received in time", registry, what)
	case err != nil:
		return nil, newError(BadResponse, registry, "reading %s from %s: cut short", what, registry)
	case int64(len(b)) > limit:
		return nil, newError(BadResponse, registry, "upstream %s sent a %s larger than %d bytes", registry, what, limit)
	}
	return b, nil
}

// shared runs fn once for all concurrent callers with the same key, on a
// context that no caller's cancellation ends (a client that disconnects does
// not fail the fetch others wait on), bounded by the upstream timeout. Each
// caller stops waiting when its own ctx ends.
func (c *Client) shared(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := c.flight.DoChan(key, func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		return fn(sctx)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		return res.Val, res.Err
	}
}

// acceptHeader is the Accept header sent upstream: exactly the caller's.
func acceptHeader(accept []string) http.Header {
	if len(accept) == 0 {
		return http.Header{}
	}
	return http.Header{"Accept": accept}
}
