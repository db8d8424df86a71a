package upstream

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-dev/portcullis/oci"
)

// UserAgent is the product token at the head of the User-Agent header sent
// upstream, before go-containerregistry's own. Package main sets it to
// "portcullis/VERSION" at start-up, before any Client is made.
var UserAgent = "portcullis"

// registry is the Client's live handle on one Config: one token-aware
// transport per repository (ggcr's bearer transport, which keeps the token
// of that scope and refreshes it on 401), all on one hostGuard that lets
// requests reach only the endpoint and the hosts FollowHosts allows
// (hosts.go). The registry is pinged once for its auth challenge, not once
// per repository.
type registry struct {
	name     string
	endpoint *url.URL
	reg      name.Registry
	auth     authn.Authenticator
	base     http.RoundTripper // guard, with portcullis's User-Agent
	guard    *hostGuard
	timeout  time.Duration

	// transports holds the authenticated transport of each repository.
	transports *ristretto.Cache[string, http.RoundTripper]
	creating   singleflight.Group

	// challenge is the registry's answer to GET /v2/ (see challengeFor).
	challengeMu sync.Mutex
	challenge   *transport.Challenge
	challenged  time.Time

	// noReferrers remembers the repositories whose referrers API is
	// absent (learned only from the gate's own lookups, not from those
	// made ahead, oci.Ahead); referrersAPI is
	// set once the registry has answered with the API.
	noReferrers  *referrersMemory
	referrersAPI atomic.Bool
}

const (
	maxRepoTransports = 4096
	// challengeTTL is how long a ping's auth challenge is reused for new
	// repositories' transports.
	challengeTTL = 10 * time.Minute
)

func newRegistry(u Config, timeout time.Duration) (*registry, error) {
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
	return &registry{
		name:        oci.NormalizeRegistry(u.Registry),
		endpoint:    &url.URL{Scheme: u.Endpoint.Scheme, Host: u.Endpoint.Host},
		reg:         reg,
		auth:        auth,
		base:        transport.NewUserAgent(guard, UserAgent),
		guard:       guard,
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
// creating it once even under concurrent callers (a token exchange for the
// repository's pull scope when the registry wants bearer tokens, nothing
// more), without letting one caller's cancellation fail the others.
func (u *registry) transportFor(ctx context.Context, repo string) (http.RoundTripper, error) {
	if t, ok := u.transports.Get(repo); ok {
		return t, nil
	}
	ch := u.creating.DoChan(repo, func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.timeout)
		defer cancel()
		cctx, note := withRetryNote(cctx)
		ch, err := u.challengeFor(cctx)
		if err != nil {
			return nil, note.wrap(err)
		}
		var tok *transport.Token
		if strings.EqualFold(ch.Scheme, "bearer") {
			scope := u.reg.Repo(repo).Scope(transport.PullScope)
			if tok, err = transport.Exchange(cctx, u.reg, u.auth, u.base, []string{scope}, ch); err != nil {
				u.forgetChallenge(ch)
				return nil, note.wrap(err)
			}
			if tok.Token == "" { // some token services answer access_token only
				tok.Token = tok.AccessToken
			}
		}
		t, err := transport.FromToken(u.reg, u.auth, u.base, ch, tok)
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

// challengeFor is the registry's auth challenge: one GET /v2/ per
// challengeTTL for all repositories (a cold pull from a new repository
// costs no ping), shared by concurrent callers.
func (u *registry) challengeFor(ctx context.Context) (*transport.Challenge, error) {
	u.challengeMu.Lock()
	ch, at := u.challenge, u.challenged
	u.challengeMu.Unlock()
	if ch != nil && time.Since(at) < challengeTTL {
		return ch, nil
	}
	// The key cannot be a repository name (those never start with NUL).
	v, err, _ := u.creating.Do("\x00ping", func() (any, error) {
		// The error goes to every caller sharing the ping: it carries the
		// Retry-After of a 429 itself.
		ctx, note := withRetryNote(ctx)
		ch, err := transport.Ping(ctx, u.reg, u.base)
		if err != nil {
			return nil, note.wrap(err)
		}
		u.challengeMu.Lock()
		u.challenge, u.challenged = ch, time.Now()
		u.challengeMu.Unlock()
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*transport.Challenge), nil
}

// forgetChallenge drops ch after a token exchange it led to failed: the
// registry may have changed its auth, and the next repository pings again.
func (u *registry) forgetChallenge(ch *transport.Challenge) {
	u.challengeMu.Lock()
	defer u.challengeMu.Unlock()
	if u.challenge == ch {
		u.challenge = nil
	}
}

// do sends one request for repo to the upstream and returns its response,
// following redirects only where the host rules allow. path is relative to
// the endpoint ("/v2/acme/app/manifests/v1").
func (u *registry) do(ctx context.Context, method, repo, path string, query url.Values, header http.Header) (*http.Response, error) {
	t, err := u.transportFor(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("authenticating to %s: %w", u.name, err)
	}
	target := *u.endpoint
	target.Path = path
	if query != nil {
		target.RawQuery = query.Encode()
	}
	// A token refresh ggcr's transport makes on the way notes a 429's
	// Retry-After here (its error keeps only the status).
	ctx, note := withRetryNote(ctx)
	req, err := http.NewRequestWithContext(ctx, method, target.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	client := http.Client{Transport: t, CheckRedirect: checkRedirect}
	resp, err := client.Do(req)
	return resp, note.wrap(err)
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
