package upstream

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-dev/portcullis/oci"
)

// Config is one registry the Client reads from.
type Config struct {
	// Registry is the name clients and policies use ("registry.example",
	// "docker.io"). Docker Hub's aliases are folded into "docker.io".
	Registry string
	// Endpoint is where the registry is reached: scheme and host[:port] only.
	Endpoint *url.URL
	// Auth authenticates the proxy to the upstream; nil means anonymous.
	// Basic credentials are also exchanged for bearer tokens when the
	// upstream asks for them.
	Auth authn.Authenticator
	// TLSConfig is used for https endpoints; nil means the system roots.
	TLSConfig *tls.Config
	// FollowHosts are the hosts other than the endpoint that redirects and
	// token realms may lead to: "host" (on the scheme's default port),
	// "host:port" or "*.suffix" (see CheckFollowHost). A name is contacted
	// only if none of its addresses is loopback, link-local or unspecified;
	// an IP address is used as written. Nothing is followed from an https
	// endpoint to plain http. nil: only the endpoint itself. The upstream
	// named docker.io also follows auth.docker.io and Docker Hub's blob
	// stores (production.cloudflare.docker.com,
	// production.cloudfront.docker.com and the docker-images-prod
	// r2.cloudflarestorage.com hosts).
	FollowHosts []string
}

// Client reads manifests, tags, referrers and blobs from the configured
// upstream registries: the one registry client of the proxy and the gate.
// Every manifest it returns is hashed (and, asked by digest, checked); it
// keeps tag resolutions and manifests in bounded memory caches and fetches
// each only once for concurrent callers. Make one with New; it is safe for
// concurrent use.
type Client struct {
	registries map[string]*registry
	log        *zap.Logger
	metrics    *metrics
	timeout    time.Duration

	tags       *tagCache
	sharedTags SharedTags // nil: tag resolutions are this process's own
	manifests  *manifestCache
	flight     singleflight.Group
}

type options struct {
	logger             *zap.Logger
	registerer         prometheus.Registerer
	tagTTL             time.Duration
	staleIfError       time.Duration
	manifestCacheBytes int64
	timeout            time.Duration
	sharedTags         SharedTags
}

// Option configures a Client.
type Option func(*options) error

// WithLogger sets the logger; the default discards.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithRegisterer registers the Client's Prometheus metrics with r; the
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
// while the upstream cannot answer (IsOutage). Default 0: never. Manifests
// by digest are immutable and need no such grace.
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

// WithTimeout bounds each exchange with an upstream (default 30s):
// manifests, tag lists, referrers and token exchanges complete within it
// in total, headers and body; a blob's headers come within it, and its body
// gets it between two reads, with no fixed total.
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("upstream timeout must be positive, got %v", d)
		}
		o.timeout = d
		return nil
	}
}

// New returns a Client for the registries in cfgs.
func New(cfgs []Config, opts ...Option) (*Client, error) {
	o := options{
		logger:             zap.NewNop(),
		tagTTL:             30 * time.Second,
		manifestCacheBytes: 64 << 20,
		timeout:            30 * time.Second,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if len(cfgs) == 0 {
		return nil, errors.New("no upstream registries configured")
	}
	c := &Client{
		registries: make(map[string]*registry, len(cfgs)),
		log:        o.logger,
		metrics:    newMetrics(o.registerer),
		timeout:    o.timeout,
		sharedTags: o.sharedTags,
	}
	for _, cfg := range cfgs {
		r, err := newRegistry(cfg, o.timeout)
		if err != nil {
			return nil, err
		}
		if _, dup := c.registries[r.name]; dup {
			return nil, fmt.Errorf("registry %q configured twice", r.name)
		}
		c.registries[r.name] = r
	}
	var err error
	if c.tags, err = newTagCache(o.tagTTL, o.staleIfError); err != nil {
		return nil, err
	}
	if c.manifests, err = newManifestCache(o.manifestCacheBytes); err != nil {
		return nil, err
	}
	return c, nil
}

// Has reports whether registry (any spelling oci.NormalizeRegistry folds)
// is configured.
func (c *Client) Has(registry string) bool {
	_, ok := c.registries[oci.NormalizeRegistry(registry)]
	return ok
}

// Timeout is the bound of one upstream exchange (WithTimeout).
func (c *Client) Timeout() time.Duration { return c.timeout }

// target is one repository on its configured registry.
type target struct {
	repo oci.Repository
	reg  *registry
}

// lookup finds repo's registry and checks its name, so that nothing a
// caller passes can change the shape of an upstream URL.
func (c *Client) lookup(repo oci.Repository) (target, error) {
	r, ok := c.registries[oci.NormalizeRegistry(repo.Registry)]
	if !ok {
		return target{}, fmt.Errorf("registry %q is not configured", repo.Registry)
	}
	if !oci.ValidRepositoryName(repo.Name) {
		return target{}, fmt.Errorf("invalid repository name %q", repo.Name)
	}
	return target{repo: oci.Repository{Registry: r.name, Name: repo.Name}, reg: r}, nil
}

// path is the upstream path of one resource of t's repository:
// "/v2/<name>/<kind>/<ref>".
func (t target) path(kind, ref string) string {
	return "/v2/" + t.repo.Name + "/" + kind + "/" + ref
}

// Wait blocks until the caches have applied every write made before it
// (ristretto applies them asynchronously): for tests and benchmarks that
// count upstream requests.
func (c *Client) Wait() {
	c.manifests.c.Wait()
	c.tags.c.Wait()
}
