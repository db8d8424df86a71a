package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-dev/portcullis/oci"
)

// Upstream is one registry the proxy mirrors.
type Upstream struct {
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

// upstream is the proxy's live handle on an Upstream: one token-aware
// transport per repository (ggcr's, which keeps the bearer token of that
// scope and refreshes it on 401), all on one hostGuard that lets requests
// reach only the endpoint and the hosts FollowHosts allows (hosts.go).
type upstream struct {
	registry string
	endpoint *url.URL
	reg      name.Registry
	auth     authn.Authenticator
	base     http.RoundTripper
	timeout  time.Duration

	// transports holds the authenticated transport of each repository.
	transports *ristretto.Cache[string, http.RoundTripper]
	creating   singleflight.Group

	// noReferrers remembers the repositories whose referrers API is
	// absent (learned only from the gate's own lookups).
	noReferrers *referrersMemory
}

const maxRepoTransports = 4096

func newUpstream(u Upstream, timeout time.Duration) (*upstream, error) {
	if u.Endpoint == nil || u.Endpoint.Host == "" {
		return nil, fmt.Errorf("upstream %q: no endpoint", u.Registry)
	}
	var opts []name.Option
	switch u.Endpoint.Scheme {
	case "https":
	case "http":
		opts = append(opts, name.Insecure)
	default:
		return nil, fmt.Errorf("upstream %q: endpoint scheme %q not supported", u.Registry, u.Endpoint.Scheme)
	}
	reg, err := name.NewRegistry(u.Endpoint.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", u.Registry, err)
	}
	follow := u.FollowHosts
	if oci.NormalizeRegistry(u.Registry) == oci.DockerHub {
		follow = append(slices.Clone(follow), dockerHubFollowHosts...)
	}
	guard, err := newHostGuard(u.Endpoint, follow, newBaseTransport(u.TLSConfig, timeout))
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", u.Registry, err)
	}
	auth := u.Auth
	if auth == nil {
		auth = authn.Anonymous
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, http.RoundTripper]{
		NumCounters: 10 * maxRepoTransports,
		MaxCost:     maxRepoTransports,
		BufferItems: 64,
		// Costs count entries, not bytes.
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream %q: transport cache: %w", u.Registry, err)
	}
	return &upstream{
		registry:    oci.NormalizeRegistry(u.Registry),
		endpoint:    &url.URL{Scheme: u.Endpoint.Scheme, Host: u.Endpoint.Host},
		reg:         reg,
		auth:        auth,
		base:        guard,
		timeout:     timeout,
		transports:  cache,
		noReferrers: newReferrersMemory(),
	}, nil
}

// newBaseTransport is the shared connection pool to one upstream.
func newBaseTransport(tlsConfig *tls.Config, timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tlsConfig
	t.ResponseHeaderTimeout = timeout
	t.DialContext = guardedDial(&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second})
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	// Blobs are already compressed and must pass byte for byte.
	t.DisableCompression = true
	return t
}

// transportFor returns the authenticated transport for one repository,
// creating it (ping, token exchange) once even under concurrent callers, and
// without letting one caller's cancellation fail the others.
func (u *upstream) transportFor(ctx context.Context, repo string) (http.RoundTripper, error) {
	if t, ok := u.transports.Get(repo); ok {
		return t, nil
	}
	ch := u.creating.DoChan(repo, func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.timeout)
		defer cancel()
		scope := u.reg.Repo(repo).Scope(transport.PullScope)
		t, err := transport.NewWithContext(cctx, u.reg, u.auth, u.base, []string{scope})
		if err != nil {
			return nil, err
		}
		u.transports.Set(repo, t, 1)
		return t, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(http.RoundTripper), nil
	}
}

// do sends one request for repo to the upstream and returns its response,
// following redirects only where the host rules allow. path is relative to
// the endpoint ("/v2/acme/app/manifests/v1").
func (u *upstream) do(ctx context.Context, method, repo, path string, query url.Values, header http.Header) (*http.Response, error) {
	t, err := u.transportFor(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("authenticating to %s: %w", u.registry, err)
	}
	target := *u.endpoint
	target.Path = path
	if query != nil {
		target.RawQuery = query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	client := http.Client{Transport: t, CheckRedirect: checkRedirect}
	return client.Do(req)
}

// checkRedirect stops after 10 redirects, and refuses one from https to
// http wherever in the chain. Where a redirect may go at all is the
// hostGuard's decision, made on the request it sends.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if prev := via[len(via)-1].URL; strings.EqualFold(prev.Scheme, "https") && !strings.EqualFold(req.URL.Scheme, "https") {
		from, _ := originOf(prev)
		to, _ := originOf(req.URL)
		return &refusedError{target: to, reason: "a redirect from " + from + " to plain http is never followed"}
	}
	return nil
}
