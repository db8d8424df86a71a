package proxy

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"time"
)

// call sends one request to the route's upstream, recording its latency and
// status. An error means no answer came (see fromUpstreamError); any answer,
// success or not, is returned for the caller to map.
func (p *Proxy) call(ctx context.Context, rt *route, kind, method, path string, q url.Values, hdr http.Header) (*http.Response, error) {
	start := time.Now()
	resp, err := rt.up.do(ctx, method, rt.repo.Name, path, q, hdr)
	code := 0
	if err == nil {
		code = resp.StatusCode
	}
	p.metrics.observeUpstream(rt.up.registry, kind, code, time.Since(start))
	if err != nil {
		if ctx.Err() != nil {
			return nil, unavailable(http.StatusServiceUnavailable, "upstream %s: no answer in time: %v", rt.up.registry, ctx.Err())
		}
		return nil, fromUpstreamError(rt.up.registry, err)
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
//	ctx, cancel := p.metadataContext(ctx)
//	defer cancel()
//	resp, err := p.call(ctx, rt, routeReferrers, http.MethodGet, path, q, hdr)
//	if err != nil {
//		return err
//	}
//	defer resp.Body.Close()
//	b, err := readMetadata(ctx, rt.up.registry, "referrers", resp.Body, maxManifestSize)
//
// Work run by shared already has this bound. Blob bodies are not metadata:
// they get the upstream timeout between two reads (idleReader) and no total.
func (p *Proxy) metadataContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.timeout)
}

// readMetadata reads a metadata body of at most limit bytes, read under
// ctx (see metadataContext). what names the body in errors ("tag list").
// A body that does not arrive in time is 503 UNAVAILABLE, one too large or
// cut short 502.
func readMetadata(ctx context.Context, registry, what string, body io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, unavailable(http.StatusServiceUnavailable, "upstream %s: %s not received in time", registry, what)
	case err != nil:
		return nil, unavailable(http.StatusBadGateway, "reading %s from %s: cut short", what, registry)
	case int64(len(b)) > limit:
		return nil, unavailable(http.StatusBadGateway, "upstream %s sent a %s larger than %d bytes", registry, what, limit)
	}
	return b, nil
}

// shared runs fn once for all concurrent callers with the same key, on a
// context that no caller's cancellation ends (a client that disconnects does
// not fail the fetch others wait on), bounded by the upstream timeout. Each
// caller stops waiting when its own ctx ends.
func (p *Proxy) shared(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := p.flight.DoChan(key, func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
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

// acceptHeader is the Accept header forwarded upstream: exactly the client's.
func acceptHeader(accept []string) http.Header {
	if len(accept) == 0 {
		return http.Header{}
	}
	return http.Header{"Accept": accept}
}
