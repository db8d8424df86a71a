package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-dev/portcullis/oci"
)

// Proxy is the registry mirror's http.Handler. Make one with New.
type Proxy struct {
	upstreams map[string]*upstream
	defaultUp *upstream
	gate      Gate
	log       *zap.Logger
	metrics   *metrics
	timeout   time.Duration
	// clientIdle bounds each write to a client (see recorder).
	clientIdle time.Duration

	tags      *tagCache
	manifests *manifestCache
	flight    singleflight.Group
	handlers  map[string]func(http.ResponseWriter, *http.Request, *route) error
}

type options struct {
	defaultRegistry    string
	gate               Gate
	logger             *zap.Logger
	registerer         prometheus.Registerer
	tagTTL             time.Duration
	manifestCacheBytes int64
	upstreamTimeout    time.Duration
	clientIdleTimeout  time.Duration
	staleIfError       time.Duration
}

// Option configures a Proxy.
type Option func(*options) error

// WithDefaultRegistry routes requests that name no configured registry (no
// ?ns=, no registry path prefix) to registry. Without it they get 404.
func WithDefaultRegistry(registry string) Option {
	return func(o *options) error { o.defaultRegistry = oci.NormalizeRegistry(registry); return nil }
}

// WithGate sets the Gate every manifest and blob is checked against. It is
// required: there is no default (AllowAllUnsafe makes a plain mirror).
func WithGate(g Gate) Option {
	return func(o *options) error {
		if g == nil {
			return errors.New("nil Gate")
		}
		o.gate = g
		return nil
	}
}

// WithLogger sets the logger; the default discards. One line is logged per
// request at the boundary.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithRegisterer registers the proxy's Prometheus metrics with r; the
// default registers nowhere.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) error { o.registerer = r; return nil }
}

// WithTagTTL sets how long a tag's resolution to a digest is reused
// (default 30s). 0 asks the upstream on every request.
func WithTagTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("negative tag TTL %v", d)
		}
		o.tagTTL = d
		return nil
	}
}

// WithStaleIfError lets a tag resolution be used for up to d past its TTL
// while the upstream cannot answer (5xx, 429, timeout). Default 0: never.
// Manifests by digest are immutable and need no such grace.
func WithStaleIfError(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("negative staleIfError %v", d)
		}
		o.staleIfError = d
		return nil
	}
}

// WithManifestCacheBytes bounds the in-memory cache of manifests by digest
// (default 64 MiB).
func WithManifestCacheBytes(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("manifest cache size must be positive, got %d", n)
		}
		o.manifestCacheBytes = n
		return nil
	}
}

// WithUpstreamTimeout bounds each exchange with an upstream (default 30s):
// manifests, tag lists, referrers and token exchanges complete within it
// in total, headers and body; a blob's headers come within it, and its body
// gets it between two reads, with no fixed total.
func WithUpstreamTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("upstream timeout must be positive, got %v", d)
		}
		o.upstreamTimeout = d
		return nil
	}
}

// WithClientIdleTimeout bounds how long one write to a client may go
// without progress (default: the upstream timeout). The deadline is renewed
// before every write of at most 256 KiB, never set for a whole response, so
// a slow client is served as long as it keeps reading, and one that stops
// is disconnected, freeing the transfer's goroutines and buffers, after d.
func WithClientIdleTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("client idle timeout must be positive, got %v", d)
		}
		o.clientIdleTimeout = d
		return nil
	}
}

// New returns a Proxy mirroring ups.
func New(ups []Upstream, opts ...Option) (*Proxy, error) {
	o := options{
		logger:             zap.NewNop(),
		tagTTL:             30 * time.Second,
		manifestCacheBytes: 64 << 20,
		upstreamTimeout:    30 * time.Second,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if len(ups) == 0 {
		return nil, errors.New("no upstream registries configured")
	}
	if o.clientIdleTimeout == 0 {
		o.clientIdleTimeout = o.upstreamTimeout
	}
	if o.gate == nil {
		return nil, errors.New("no Gate: pass WithGate (AllowAllUnsafe serves everything unverified)")
	}
	p := &Proxy{
		upstreams: make(map[string]*upstream, len(ups)),
		gate:      o.gate,
		log:       o.logger,
		metrics:   newMetrics(o.registerer),
		timeout:   o.upstreamTimeout,

		clientIdle: o.clientIdleTimeout,
	}
	for _, u := range ups {
		up, err := newUpstream(u, o.upstreamTimeout)
		if err != nil {
			return nil, err
		}
		if _, dup := p.upstreams[up.registry]; dup {
			return nil, fmt.Errorf("registry %q configured twice", up.registry)
		}
		p.upstreams[up.registry] = up
	}
	if o.defaultRegistry != "" {
		up, ok := p.upstreams[o.defaultRegistry]
		if !ok {
			return nil, fmt.Errorf("default registry %q is not a configured upstream", o.defaultRegistry)
		}
		p.defaultUp = up
	}
	var err error
	if p.tags, err = newTagCache(o.tagTTL, o.staleIfError); err != nil {
		return nil, err
	}
	if p.manifests, err = newManifestCache(o.manifestCacheBytes); err != nil {
		return nil, err
	}
	p.handlers = map[string]func(http.ResponseWriter, *http.Request, *route) error{
		routeManifest:  p.serveManifest,
		routeBlob:      p.serveBlob,
		routeTags:      p.serveTags,
		routeReferrers: p.serveReferrers,
	}
	return p, nil
}

// ServeHTTP serves the read side of the distribution API.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := newRecorder(w, p.clientIdle)
	info := &requestInfo{route: routeUnknown}
	defer func() {
		v := recover()
		p.finish(rec, r, info, start, v != nil)
		if v != nil {
			panic(v) // net/http aborts the connection
		}
		rec.lastWrite() // net/http flushes what is buffered after we return
	}()

	rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if err := p.dispatch(rec, r, info); err != nil {
		re := asRegError(err)
		info.err = re
		writeError(rec, r, re)
	}
}

// dispatch routes one request and runs its handler.
func (p *Proxy) dispatch(w http.ResponseWriter, r *http.Request, info *requestInfo) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return newError(http.StatusMethodNotAllowed, codeUnsupported, "this is a read-only mirror: %s is not supported", r.Method)
	}
	rt, rerr := p.parseRoute(r)
	if rerr != nil {
		return rerr
	}
	info.route = rt.kind
	if rt.up != nil {
		info.registry, info.repo, info.ref = rt.repo.Registry, rt.repo.Name, rt.ref
	}
	if rt.ns != "" {
		w.Header().Set("OCI-Namespace", rt.ns)
	}
	if rt.kind == routeBase {
		return serveBase(w, r)
	}
	return p.handlers[rt.kind](w, r.WithContext(withInfo(r.Context(), info)), rt)
}

// serveBase answers GET /v2/: the API version check.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#determining-support
func serveBase(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
	return nil
}
