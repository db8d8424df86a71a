package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// This file holds the host rules: which scheme://host:port the proxy may
// contact on behalf of one upstream.
//
//   - The endpoint, exactly as configured (scheme, host, port), is always
//     contacted, and its resolved address is never checked.
//   - A redirect or token realm whose scheme://host:port equals the
//     endpoint's (as text, lower case, default ports filled in; localhost is
//     not 127.0.0.1) is followed.
//   - Any other target is followed only if its host matches one of the
//     upstream's followHosts and, when dialled, none of its resolved
//     addresses is loopback, link-local or unspecified. An IP-literal entry
//     is used as written: its address is not checked.
//   - Never from https to http: with an https endpoint, no plain-http target
//     at all, the endpoint's own host on another port included.
//
// One hostGuard at the base of each upstream's transport checks every
// request ggcr and the proxy send (pings, token realms, redirects), and the
// dialler checks the addresses of followHosts names.

// dockerHubFollowHosts are followed for the upstream named docker.io on top
// of its FollowHosts: Docker Hub's token service and the blob stores its
// registry redirects blob GETs to, as listed in Docker's firewall allowlist
// (docs.docker.com, "Allowlist for Docker Desktop").
var dockerHubFollowHosts = []string{
	"auth.docker.io",
	"production.cloudflare.docker.com",
	"production.cloudfront.docker.com",
	"docker-images-prod.6aa30f8b08e16409b46e0173d6de2f56.r2.cloudflarestorage.com",
	"docker-images-prod.r2.cloudflarestorage.com",
}

var defaultPorts = map[string]string{"http": "80", "https": "443"}

// originOf is u's scheme://host:port as the host rules compare it: lower
// case, the scheme's default port filled in, an IPv6 address in brackets.
// ok is false when the scheme is not http or https, or there is no host.
func originOf(u *url.URL) (origin string, ok bool) {
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	def, known := defaultPorts[scheme]
	if !known || host == "" {
		return "", false
	}
	if port == "" {
		port = def
	}
	return scheme + "://" + net.JoinHostPort(host, port), true
}

// hostRule is one parsed followHosts entry.
type hostRule struct {
	host   string     // lower case; ".suffix" for a suffix rule
	port   string     // "" matches the target scheme's default port only
	addr   netip.Addr // valid for an IP-literal entry
	suffix bool
}

// CheckFollowHost reports whether entry is a valid followHosts entry:
// "host", "host:port" or "*.suffix[:port]", where host is a DNS name or an
// IP address (IPv6 in brackets). "host" without a port matches that host on
// the default port of the target's scheme (443 for https, 80 for http);
// "*.example.com" matches every name ending in ".example.com" but not
// example.com itself.
func CheckFollowHost(entry string) error {
	_, err := parseFollowHost(entry)
	return err
}

func parseFollowHost(entry string) (hostRule, error) {
	const want = `want "host", "host:port" or "*.suffix", such as "auth.docker.io" or "*.blob.core.windows.net"`
	s := strings.ToLower(entry)
	wildcard := strings.HasPrefix(s, "*.")
	if wildcard {
		s = s[2:]
	}
	if s == "" || strings.ContainsAny(s, "/@?#*%\\ \t") {
		return hostRule{}, fmt.Errorf("%q is not a host (%s)", entry, want)
	}
	u, err := url.Parse("//" + s)
	if err != nil || u.Host != s || u.Hostname() == "" || strings.HasSuffix(s, ":") {
		return hostRule{}, fmt.Errorf("%q is not a host (%s)", entry, want)
	}
	r := hostRule{host: u.Hostname(), port: u.Port(), suffix: wildcard}
	if r.port != "" {
		if n, err := strconv.Atoi(r.port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != r.port {
			return hostRule{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", entry, r.port)
		}
	}
	if addr, err := netip.ParseAddr(r.host); err == nil {
		if wildcard {
			return hostRule{}, fmt.Errorf("%q: a wildcard needs a DNS suffix, not an IP address", entry)
		}
		if addr.Is6() && !strings.HasPrefix(s, "[") {
			return hostRule{}, fmt.Errorf("%q: write an IPv6 address in brackets, as in \"[fd00::1]:5000\"", entry)
		}
		r.addr = addr.Unmap()
		return r, nil
	}
	if !dnsName(r.host) {
		return hostRule{}, fmt.Errorf("%q is not a host (%s)", entry, want)
	}
	if wildcard {
		r.host = "." + r.host
	}
	return r, nil
}

// dnsName reports whether h is a DNS name: labels of letters, digits and
// inner hyphens, the last not all digits (so "127.1" is not taken for one).
func dnsName(h string) bool {
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	_, err := strconv.ParseUint(labels[len(labels)-1], 0, 64)
	return err != nil
}

// match reports whether the target scheme://host:port (host lower case, port
// filled in) is what r names.
func (r hostRule) match(scheme, host, port string) bool {
	want := r.port
	if want == "" {
		want = defaultPorts[scheme]
	}
	if port != want {
		return false
	}
	if r.addr.IsValid() {
		a, err := netip.ParseAddr(host)
		return err == nil && a.Unmap() == r.addr
	}
	if r.suffix {
		return len(host) > len(r.host) && strings.HasSuffix(host, r.host)
	}
	return host == r.host
}

// refusedError is the host rules refusing a target. Its text is the
// proxy's own, naming only the target's scheme://host:port.
type refusedError struct {
	target, reason string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("refusing to contact %s: %s", e.target, e.reason)
}

// hostGuard is the base RoundTripper of one upstream: every request is
// checked against the host rules before it is sent.
type hostGuard struct {
	endpoint string // the endpoint's origin
	secure   bool   // the endpoint is https
	follow   []hostRule
	inner    http.RoundTripper
}

func newHostGuard(endpoint *url.URL, followHosts []string, inner http.RoundTripper) (*hostGuard, error) {
	origin, ok := originOf(endpoint)
	if !ok {
		return nil, fmt.Errorf("endpoint %s is not an http or https URL", endpoint.Redacted())
	}
	g := &hostGuard{endpoint: origin, secure: strings.EqualFold(endpoint.Scheme, "https"), inner: inner}
	for i, entry := range followHosts {
		r, err := parseFollowHost(entry)
		if err != nil {
			return nil, fmt.Errorf("followHosts[%d]: %w", i, err)
		}
		g.follow = append(g.follow, r)
	}
	return g, nil
}

func (g *hostGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	checkDial, err := g.check(r.URL)
	if err != nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, err
	}
	if checkDial {
		host, port := strings.ToLower(r.URL.Hostname()), r.URL.Port()
		if port == "" {
			port = defaultPorts[strings.ToLower(r.URL.Scheme)]
		}
		r = r.WithContext(context.WithValue(r.Context(), dialCheckKey{}, net.JoinHostPort(host, port)))
	}
	resp, err := g.inner.RoundTrip(r)
	if err == nil {
		noteRetryAfter(r, resp)
	}
	return resp, err
}

// check applies the host rules to a request URL. checkDial reports that the
// target is a followHosts name whose addresses must be checked when dialled.
func (g *hostGuard) check(u *url.URL) (checkDial bool, err error) {
	origin, ok := originOf(u)
	if !ok {
		return false, &refusedError{target: u.Scheme + "://" + u.Host, reason: "only http and https are followed"}
	}
	if origin == g.endpoint {
		return false, nil
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = defaultPorts[scheme]
	}
	if g.secure && scheme != "https" {
		return false, &refusedError{target: origin, reason: "the endpoint is https, and plain http is never followed from it"}
	}
	for _, r := range g.follow {
		if r.match(scheme, host, port) {
			return !r.addr.IsValid(), nil
		}
	}
	return false, &refusedError{target: origin, reason: "it is neither the endpoint " + g.endpoint + " nor in the upstream's followHosts"}
}

// dialCheckKey marks a request whose target, host:port, is a followHosts
// name: the dialler checks its resolved addresses.
type dialCheckKey struct{}

// guardedDial dials as d does, but for a connection to a followHosts name
// (marked by hostGuard) it resolves the name itself, refuses it if any
// address is loopback, link-local or unspecified, and dials only the
// addresses it checked. A connection through an HTTP proxy is the proxy's
// to resolve and is not checked.
func guardedDial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		target, _ := ctx.Value(dialCheckKey{}).(string)
		if target == "" || target != addr {
			return d.DialContext(ctx, network, addr)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("%s: no addresses", host)
		}
		for _, ip := range ips {
			if internalAddr(ip) {
				return nil, &refusedError{target: addr, reason: fmt.Sprintf("it resolves to %s, a loopback, link-local or unspecified address", ip)}
			}
		}
		var errs []error
		for _, ip := range ips {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
}

// internalAddr reports whether a followHosts name may not resolve to ip.
func internalAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsUnspecified()
}
