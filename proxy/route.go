package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis-dev/portcullis/oci"
)

// Route kinds, used in logs and metrics.
const (
	routeBase      = "base"
	routeManifest  = "manifest"
	routeBlob      = "blob"
	routeTags      = "tags"
	routeReferrers = "referrers"
	routeUnknown   = "unknown"
)

// route is a parsed request path: what is asked for, from which upstream.
type route struct {
	kind string
	// repo is the repository as clients name it (registry + upstream path).
	repo Repository
	// clientName is the repository as this client spelled it in the path
	// (with a registry prefix, if it sent one), for Link headers.
	clientName string
	// ref is the manifest reference (tag or digest), the blob digest, or the
	// referrers subject digest.
	ref string
	// ns is the ?ns= parameter the client sent, if any (echoed as OCI-Namespace).
	ns string
}

// parseRoute turns a request into a route, or a *regError saying why not.
// Routing, in order: ?ns=<registry> (must be configured); a first path
// segment equal to a configured registry; a first path segment that reads
// as a registry but is none of them gives 404; the default registry.
func (p *Proxy) parseRoute(r *http.Request) (*route, *regError) {
	path := r.URL.Path
	if path == "/v2/" || path == "/v2" {
		return &route{kind: routeBase}, nil
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return nil, newError(codeNameUnknown, "not a registry API path: %q", path)
	}
	rt := &route{}
	name, ok := splitResource(rest, rt)
	if !ok {
		// The distribution spec's answer to a /v2 path it does not know.
		return nil, newError(codeNameUnknown, "unknown registry API endpoint: %q", path)
	}
	rt.clientName = name
	q := r.URL.Query()
	rt.ns = q.Get("ns")
	registry, repoName, err := p.pickRegistry(rt.ns, name)
	if err != nil {
		return nil, err
	}
	repoName = oci.NormalizeRepository(registry, repoName)
	if !oci.ValidRepositoryName(repoName) {
		return nil, newError(codeNameInvalid, "invalid repository name %q", repoName)
	}
	rt.repo = Repository{Registry: registry, Name: repoName}
	return rt, nil
}

// splitResource splits "<name>/<resource>/<ref>" at the last resource
// keyword, fills rt.kind and rt.ref, and returns the name.
func splitResource(rest string, rt *route) (string, bool) {
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		rt.kind = routeTags
		return name, name != ""
	}
	for _, kw := range []struct{ sep, kind string }{
		{"/manifests/", routeManifest},
		{"/blobs/", routeBlob},
		{"/referrers/", routeReferrers},
	} {
		i := strings.LastIndex(rest, kw.sep)
		if i <= 0 {
			continue
		}
		ref := rest[i+len(kw.sep):]
		if ref == "" || strings.Contains(ref, "/") {
			continue
		}
		rt.kind, rt.ref = kw.kind, ref
		return rest[:i], true
	}
	return "", false
}

// pickRegistry applies the routing rules to ns and the client's name: the
// registry (as configured, normalised) and the repository name on it.
func (p *Proxy) pickRegistry(ns, name string) (string, string, *regError) {
	if ns != "" {
		if !p.up.Has(ns) {
			return "", "", newError(codeNameUnknown, "registry %q (from ns=) is not configured on this proxy", ns)
		}
		return oci.NormalizeRegistry(ns), name, nil
	}
	if first, rest, ok := strings.Cut(name, "/"); ok {
		if p.up.Has(first) && first == strings.ToLower(first) {
			return oci.NormalizeRegistry(first), rest, nil
		}
		if looksLikeRegistry(first) {
			return "", "", newError(codeNameUnknown, "registry %q (the first path segment) is not configured on this proxy", first)
		}
	}
	if p.defaultRegistry == "" {
		return "", "", newError(codeNameUnknown, "repository %q names no configured registry and no defaultRegistry is set", name)
	}
	return p.defaultRegistry, name, nil
}

// looksLikeRegistry reports whether a name's first path segment reads as a
// registry host by docker's rule (it contains a dot or a colon, or is
// localhost). Such a segment that is not a configured registry is refused,
// never taken as part of a repository on defaultRegistry: "quay.io/x/y"
// must not quietly become docker.io's "quay.io/x/y".
func looksLikeRegistry(segment string) bool {
	return strings.ContainsAny(segment, ".:") || segment == "localhost"
}

// clientPath is the path under /v2/ a client would use for this route's
// repository plus suffix, with the ns parameter kept, for Link headers.
func (rt *route) clientPath(suffix string, q url.Values) string {
	if rt.ns != "" {
		q.Set("ns", rt.ns)
	}
	u := url.URL{Path: "/v2/" + rt.clientName + suffix, RawQuery: q.Encode()}
	return u.String()
}
