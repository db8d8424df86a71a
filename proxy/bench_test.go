package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// containerdAccept is the Accept header containerd sends for manifests.
const containerdAccept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*"

// BenchmarkHotManifest measures a manifest served from the caches, in
// process (no network): the proxy's own cost per request.
func BenchmarkHotManifest(b *testing.B) {
	up := newUpstreamServer(b)
	d := up.push(b, "acme/app", "v1", randomImage(b, 1024, 2))
	tp := newTestProxy(b, map[string]*upstreamServer{"registry.example": up})
	for _, bc := range []struct{ name, ref string }{{"tag", "v1"}, {"digest", d.String()}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/v2/registry.example/acme/app/manifests/"+bc.ref, nil)
			req.Header.Set("Accept", containerdAccept)
			warm := httptest.NewRecorder()
			tp.Proxy.ServeHTTP(warm, req)
			tp.settle()
			if warm.Code != http.StatusOK {
				b.Fatalf("status %d", warm.Code)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w := httptest.NewRecorder()
				tp.Proxy.ServeHTTP(w, req)
			}
		})
	}
}
