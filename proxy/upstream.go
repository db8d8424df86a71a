package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/singleflight"
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
}

// upstream is the proxy's live handle on an Upstream: one token-aware
// transport per repository (ggcr's, which keeps the bearer token of that
// scope and refreshes it on 401), and an http.Client that follows redirects
// only where ggcr's SSRF guard would.
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

	// noReferrersUntil (unix nanoseconds) remembers that the upstream has
	// no referrers API, so lookups go straight to the fallback tag and a
	// cold verification saves a round trip.
	noReferrersUntil atomic.Int64
}

// referrersMemory is how long "this upstream has no referrers API" is
// believed before asking again.
const referrersMemory = 5 * time.Minute

func (u *upstream) referrersAPIAbsent() bool {
	return time.Now().UnixNano() < u.noReferrersUntil.Load()
}

func (u *upstream) noteNoReferrersAPI() {
	u.noReferrersUntil.Store(time.Now().Add(referrersMemory).UnixNano())
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
	base := newBaseTransport(u.TLSConfig, timeout)
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
		registry:   NormalizeRegistry(u.Registry),
		endpoint:   &url.URL{Scheme: u.Endpoint.Scheme, Host: u.Endpoint.Host},
		reg:        reg,
		auth:       auth,
		base:       &schemePin{host: u.Endpoint.Host, scheme: u.Endpoint.Scheme, inner: base},
		timeout:    timeout,
		transports: cache,
	}, nil
}

// newBaseTransport is the shared connection pool to one upstream.
func newBaseTransport(tlsConfig *tls.Config, timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tlsConfig
	t.ResponseHeaderTimeout = timeout
	t.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	// Blobs are already compressed and must pass byte for byte.
	t.DisableCompression = true
	return t
}

// schemePin refuses to talk to the upstream's own host in any scheme but the
// configured one. ggcr's ping tries https and http for loopback and private
// addresses; this keeps an https endpoint from being downgraded to http.
type schemePin struct {
	host, scheme string
	inner        http.RoundTripper
}

func (s *schemePin) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == s.host && r.URL.Scheme != s.scheme {
		return nil, fmt.Errorf("refusing %s://%s: endpoint is configured as %s", r.URL.Scheme, s.host, s.scheme)
	}
	return s.inner.RoundTrip(r)
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
// following redirects only where ggcr's SSRF rule allows. path is relative to
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

// checkRedirect is ggcr's redirect SSRF guard (remote/fetcher.go): a redirect
// may stay on its host or go to a named host, never to a private, loopback or
// link-local IP literal on another host.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	from, to := via[0].URL.Hostname(), req.URL.Hostname()
	if from == to {
		return nil
	}
	if isInternalAddress(to) {
		return fmt.Errorf("redirect from %q to private or link-local address %q refused", from, to)
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != via[0].URL.Scheme {
		return fmt.Errorf("redirect from %s to %s refused: scheme downgrade", via[0].URL, req.URL)
	}
	return nil
}

// numericLabel is a host label the resolver reads as a number (decimal,
// 0x-hex, or octal), as in the legacy IPv4 spellings "127.1" or "0x7f000001".
var numericLabel = regexp.MustCompile(`^(?:0[xX][0-9a-fA-F]*|[0-9]+)$`)

// isInternalAddress reports whether host is an IP literal that is loopback,
// private, link-local or unspecified. A host made only of numeric labels
// that is not a canonical IP is treated as internal too: the legacy IPv4
// spellings reach the same addresses.
func isInternalAddress(host string) bool {
	host, _, _ = strings.Cut(host, "%")
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap()
		return addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() ||
			addr.IsLinkLocalMulticast() || addr.IsUnspecified()
	}
	for _, label := range strings.Split(host, ".") {
		if !numericLabel.MatchString(label) {
			return false
		}
	}
	return true
}
