package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/oci"
)

// FuzzRoute: whatever the path and ns, routing never panics, only ever
// picks a configured upstream, yields a valid repository name, and without
// ns never sends a name whose first segment reads as a registry (a dot, a
// colon, localhost) anywhere but to that registry.
func FuzzRoute(f *testing.F) {
	p, err := newProxy([]UpstreamConfig{
		{Registry: "registry.example", Endpoint: mustURL("https://mirror.internal:5000")},
		{Registry: "docker.io", Endpoint: mustURL("https://registry-1.docker.io")},
	}, WithDefaultRegistry("docker.io"), WithGate(AllowAllUnsafe{}))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"/v2/registry.example/acme/app/manifests/v1", "/v2/alpine/manifests/3", "/v2/a/b/blobs/sha256:00",
		"/v2/x/tags/list", "/v2/x/referrers/sha256:1", "/v2/../../etc/manifests/x", "/v2/docker.io/manifests/blobs/x",
		"/v2/quay.io/vendor/tool/manifests/v1", "/v2/localhost/a/tags/list", "/v2/host:5000/a/blobs/sha256:00",
	} {
		f.Add(s, "")
		f.Add(s, "registry.example")
	}
	f.Fuzz(func(t *testing.T, path, ns string) {
		u := &url.URL{Path: path}
		if ns != "" {
			u.RawQuery = url.Values{"ns": {ns}}.Encode()
		}
		r := &http.Request{Method: "GET", URL: u}
		rt, rerr := p.parseRoute(r)
		if rerr != nil || rt.kind == routeBase {
			return
		}
		if !p.up.Has(rt.repo.Registry) || rt.repo.Registry != oci.NormalizeRegistry(rt.repo.Registry) {
			t.Fatalf("%q ns=%q routed to unconfigured %q", path, ns, rt.repo.Registry)
		}
		if !oci.ValidRepositoryName(rt.repo.Name) || strings.Contains(rt.repo.Name, "..") {
			t.Fatalf("%q routed to invalid name %q", path, rt.repo.Name)
		}
		first, _, nested := strings.Cut(rt.clientName, "/")
		if ns == "" && nested && (strings.ContainsAny(first, ".:") || first == "localhost") &&
			rt.repo.Registry != oci.NormalizeRegistry(first) {
			t.Fatalf("%q: registry-like %q routed to %q as %q", path, first, rt.repo.Registry, rt.repo.Name)
		}
	})
}
