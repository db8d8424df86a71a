package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/upstream"
)

// Upstream is what the proxy serves from: *upstream.Client, or the content
// store's Client in front of it (which also implements Keeper).
type Upstream interface {
	// Has reports whether registry is a configured upstream.
	Has(registry string) bool
	// Timeout is the bound of one upstream exchange.
	Timeout() time.Duration
	ManifestFor(ctx context.Context, repo oci.Repository, ref string, accept []string) (*oci.Manifest, error)
	StatBlob(ctx context.Context, repo oci.Repository, d v1.Hash) (int64, error)
	OpenBlob(ctx context.Context, repo oci.Repository, d v1.Hash, rng *upstream.Range) (*upstream.Blob, error)
	ReferrersFor(ctx context.Context, repo oci.Repository, subject v1.Hash, artifactType string) (*upstream.ReferrersAnswer, error)
	Tags(ctx context.Context, repo oci.Repository, page url.Values) (*upstream.TagPage, error)
}

// Keeper is implemented by an Upstream that keeps content (the content
// store): the proxy tells it what the Gate allowed as an image.
type Keeper interface {
	// KeepManifest is told of every manifest the Gate allowed as an image,
	// with the reference and Accept set it was asked for with, and the
	// other repositories its signatures were read from (sources).
	KeepManifest(ctx context.Context, repo oci.Repository, reference string, accept []string, m *oci.Manifest, sources []oci.Repository)
	// OpenKeptBlob opens a blob the Gate granted as a config or layer of an
	// allowed image, keeping it as it is fetched.
	OpenKeptBlob(ctx context.Context, repo oci.Repository, d v1.Hash, rng *upstream.Range) (*upstream.Blob, error)
	// Refused is told of every manifest the Gate refused (403): what is
	// kept of it goes.
	Refused(ctx context.Context, repo oci.Repository, reference string, m *oci.Manifest)
}

// Proxy is the registry mirror's http.Handler. Make one with New.
type Proxy struct {
	up   Upstream
	keep Keeper // up, when it keeps content; else nil
	// defaultRegistry serves names that name no configured registry; ""
	// means they get 404.
	defaultRegistry string
	gate            Gate
	log             *zap.Logger
	metrics         *metrics
	// clientIdle bounds each write to a client (see recorder).
	clientIdle time.Duration
	handlers   map[string]func(http.ResponseWriter, *http.Request, *route) error
}

type options struct {
	defaultRegistry   string
	gate              Gate
	logger            *zap.Logger
	registerer        prometheus.Registerer
	clientIdleTimeout time.Duration
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

// WithClientIdleTimeout bounds how long one write to a client may go
// without progress (default: the upstream client's timeout). The deadline is renewed
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

// New returns a Proxy serving what up reads, each manifest, blob and
// referrers answer checked by the Gate (WithGate, required) first.
func New(up Upstream, opts ...Option) (*Proxy, error) {
	o := options{logger: zap.NewNop()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if up == nil {
		return nil, errors.New("no upstream client")
	}
	if o.clientIdleTimeout == 0 {
		o.clientIdleTimeout = up.Timeout()
	}
	if o.gate == nil {
		return nil, errors.New("no Gate: pass WithGate (AllowAllUnsafe serves everything unverified)")
	}
	if o.defaultRegistry != "" && !up.Has(o.defaultRegistry) {
		return nil, fmt.Errorf("default registry %q is not a configured upstream", o.defaultRegistry)
	}
	keep, _ := up.(Keeper)
	p := &Proxy{
		up:              up,
		keep:            keep,
		defaultRegistry: o.defaultRegistry,
		gate:            o.gate,
		log:             o.logger,
		metrics:         newMetrics(o.registerer),
		clientIdle:      o.clientIdleTimeout,
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
	id := requestID(r)
	info := &requestInfo{route: routeUnknown, id: id}
	defer func() {
		v := recover()
		p.finish(rec, r, info, start, v != nil)
		if v != nil {
			panic(v) // net/http aborts the connection
		}
		rec.lastWrite() // net/http flushes what is buffered after we return
	}()

	h := rec.Header()
	h["Docker-Distribution-Api-Version"] = apiVersion
	h[requestIDHeader] = []string{id}
	if err := p.dispatch(rec, r, info); err != nil {
		re := asRegError(err, info.route)
		info.err = re
		writeError(rec, r, re)
	}
}

// apiVersion is the Docker-Distribution-API-Version of every answer, one
// slice for all of them (net/http only reads it; its capacity makes an
// Add copy it).
var apiVersion = []string{"registry/2.0"}[:1:1]

// dispatch routes one request and runs its handler.
func (p *Proxy) dispatch(w http.ResponseWriter, r *http.Request, info *requestInfo) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return newError(codeUnsupported, "this is a read-only mirror: %s is not supported", r.Method)
	}
	rt, rerr := p.parseRoute(r)
	if rerr != nil {
		return rerr
	}
	info.route = rt.kind
	if rt.repo.Registry != "" {
		info.registry, info.repo, info.ref = rt.repo.Registry, rt.repo.Name, rt.ref
	}
	if rt.ns != "" {
		w.Header().Set("OCI-Namespace", rt.ns)
	}
	if rt.kind == routeBase {
		return serveBase(w, r)
	}
	ctx := oci.WithRequest(withInfo(r.Context(), info), oci.Request{ID: info.id, Client: r.RemoteAddr})
	return p.handlers[rt.kind](w, r.WithContext(ctx), rt)
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
