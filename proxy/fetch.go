package proxy

import (
	"context"
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
