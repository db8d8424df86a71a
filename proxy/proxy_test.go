package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

// fixture: two upstreams, an image on each, a proxy in front with docker.io
// as the default registry.
type fixture struct {
	reg, hub   *upstreamServer
	proxy      *testProxy
	app        []byte // manifest of registry.example/acme/app:v1
	appDigest  string
	layer      []byte
	layerHex   string
	hubDigest  string
	hubRawMani []byte
}

func newFixture(t *testing.T, opts ...any) *fixture {
	t.Helper()
	f := &fixture{reg: newUpstreamServer(t), hub: newUpstreamServer(t)}
	img := randomImage(t, 1024, 1)
	f.appDigest = f.reg.push(t, "acme/app", "v1", img).String()
	f.app = rawManifest(t, img)
	ld, lb := layerBytes(t, img)
	f.layer, f.layerHex = lb, ld.String()
	hubImg := randomImage(t, 512, 1)
	f.hubDigest = f.hub.push(t, "library/alpine", "3", hubImg).String()
	f.hubRawMani = rawManifest(t, hubImg)
	opts = append([]any{WithDefaultRegistry("docker.io")}, opts...)
	f.proxy = newTestProxy(t, map[string]*upstreamServer{"registry.example": f.reg, "docker.io": f.hub}, opts...)
	return f
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an OCI error body: %q", body)
	}
	return e.Errors[0].Code
}

func TestCalls(t *testing.T) {
	f := newFixture(t)
	ociManifest := "application/vnd.oci.image.manifest.v1+json"
	_ = ociManifest
	mt := func(b []byte) string {
		var m struct{ MediaType string }
		_ = json.Unmarshal(b, &m)
		return m.MediaType
	}
	cases := []struct {
		Description string
		Method      string
		Path        string
		Header      http.Header
		Code        int
		ErrCode     string            // OCI error code expected in the body (GET)
		Want        []byte            // exact body expected
		WantHeader  map[string]string // headers expected
	}{
		{Description: "base", Method: "GET", Path: "/v2/", Code: 200, Want: []byte("{}"),
			WantHeader: map[string]string{"Docker-Distribution-API-Version": "registry/2.0"}},
		{Description: "manifest by tag, path prefix", Method: "GET", Path: "/v2/registry.example/acme/app/manifests/v1", Code: 200, Want: f.app,
			WantHeader: map[string]string{"Docker-Content-Digest": f.appDigest, "Content-Type": mt(f.app), "Content-Length": strconv.Itoa(len(f.app))}},
		{Description: "manifest by digest, path prefix", Method: "GET", Path: "/v2/registry.example/acme/app/manifests/" + f.appDigest, Code: 200, Want: f.app,
			WantHeader: map[string]string{"Docker-Content-Digest": f.appDigest}},
		{Description: "manifest HEAD carries the GET headers", Method: "HEAD", Path: "/v2/registry.example/acme/app/manifests/v1", Code: 200, Want: []byte{},
			WantHeader: map[string]string{"Docker-Content-Digest": f.appDigest, "Content-Type": mt(f.app), "Content-Length": strconv.Itoa(len(f.app))}},
		{Description: "manifest via ns", Method: "GET", Path: "/v2/acme/app/manifests/v1?ns=registry.example", Code: 200, Want: f.app,
			WantHeader: map[string]string{"OCI-Namespace": "registry.example"}},
		{Description: "ns wins over the path", Method: "GET", Path: "/v2/registry.example/acme/app/manifests/v1?ns=docker.io", Code: 404, ErrCode: "NAME_UNKNOWN"},
		{Description: "ns naming an unconfigured registry", Method: "GET", Path: "/v2/acme/app/manifests/v1?ns=evil.example", Code: 404, ErrCode: "NAME_UNKNOWN"},
		{Description: "default registry, library implied", Method: "GET", Path: "/v2/alpine/manifests/3", Code: 200, Want: f.hubRawMani},
		{Description: "docker hub alias in ns", Method: "GET", Path: "/v2/library/alpine/manifests/3?ns=registry-1.docker.io", Code: 200, Want: f.hubRawMani},
		{Description: "docker hub path prefix", Method: "GET", Path: "/v2/docker.io/alpine/manifests/3", Code: 200, Want: f.hubRawMani},
		{Description: "unknown tag", Method: "GET", Path: "/v2/registry.example/acme/app/manifests/nope", Code: 404, ErrCode: "MANIFEST_UNKNOWN"},
		{Description: "unknown tag HEAD has no body", Method: "HEAD", Path: "/v2/registry.example/acme/app/manifests/nope", Code: 404, Want: []byte{}},
		{Description: "bad digest", Method: "GET", Path: "/v2/registry.example/acme/app/manifests/sha256:abc", Code: 400, ErrCode: "DIGEST_INVALID"},
		{Description: "bad tag", Method: "GET", Path: "/v2/registry.example/acme/app/manifests/-v1", Code: 400, ErrCode: "TAG_INVALID"},
		{Description: "bad name", Method: "GET", Path: "/v2/registry.example/Acme/app/manifests/v1", Code: 400, ErrCode: "NAME_INVALID"},
		{Description: "path traversal is not a name", Method: "GET", Path: "/v2/registry.example/acme/../app/manifests/v1", Code: 400, ErrCode: "NAME_INVALID"},
		{Description: "blob", Method: "GET", Path: "/v2/registry.example/acme/app/blobs/" + f.layerHex, Code: 200, Want: f.layer,
			WantHeader: map[string]string{"Docker-Content-Digest": f.layerHex, "Content-Length": strconv.Itoa(len(f.layer)), "Accept-Ranges": "bytes"}},
		{Description: "blob HEAD", Method: "HEAD", Path: "/v2/registry.example/acme/app/blobs/" + f.layerHex, Code: 200, Want: []byte{},
			WantHeader: map[string]string{"Docker-Content-Digest": f.layerHex, "Content-Length": strconv.Itoa(len(f.layer))}},
		{Description: "blob range", Method: "GET", Path: "/v2/registry.example/acme/app/blobs/" + f.layerHex, Header: http.Header{"Range": {"bytes=10-19"}},
			Code: 206, Want: f.layer[10:20], WantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes 10-19/%d", len(f.layer)), "Content-Length": "10"}},
		{Description: "blob open-ended range (containerd)", Method: "GET", Path: "/v2/registry.example/acme/app/blobs/" + f.layerHex, Header: http.Header{"Range": {"bytes=1000-"}},
			Code: 206, Want: f.layer[1000:], WantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes 1000-%d/%d", len(f.layer)-1, len(f.layer))}},
		{Description: "blob suffix range", Method: "GET", Path: "/v2/registry.example/acme/app/blobs/" + f.layerHex, Header: http.Header{"Range": {"bytes=-5"}},
			Code: 206, Want: f.layer[len(f.layer)-5:]},
		{Description: "blob range past the end", Method: "GET", Path: "/v2/registry.example/acme/app/blobs/" + f.layerHex, Header: http.Header{"Range": {"bytes=999999-"}},
			Code: 416, ErrCode: "RANGE_NOT_SATISFIABLE", WantHeader: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", len(f.layer))}},
		{Description: "several ranges: whole blob", Method: "GET", Path: "/v2/registry.example/acme/app/blobs/" + f.layerHex, Header: http.Header{"Range": {"bytes=0-1,5-6"}},
			Code: 200, Want: f.layer},
		{Description: "unknown blob", Method: "GET", Path: "/v2/registry.example/acme/app/blobs/sha256:" + fmt.Sprintf("%064d", 0), Code: 404, ErrCode: "BLOB_UNKNOWN"},
		{Description: "push refused", Method: "PUT", Path: "/v2/registry.example/acme/app/manifests/v2", Code: 405, ErrCode: "UNSUPPORTED"},
		{Description: "upload refused", Method: "POST", Path: "/v2/registry.example/acme/app/blobs/uploads/", Code: 405, ErrCode: "UNSUPPORTED"},
		{Description: "delete refused", Method: "DELETE", Path: "/v2/registry.example/acme/app/manifests/" + f.appDigest, Code: 405, ErrCode: "UNSUPPORTED"},
		{Description: "not the registry API", Method: "GET", Path: "/metrics", Code: 404, ErrCode: "NAME_UNKNOWN"},
	}
	for _, tc := range cases {
		t.Run(tc.Description, func(t *testing.T) {
			resp, body := f.proxy.do(t, tc.Method, tc.Path, tc.Header)
			if resp.StatusCode != tc.Code {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.Code, body)
			}
			if tc.ErrCode != "" {
				mustEqual(t, "error code", errorCode(t, body), tc.ErrCode)
				mustEqual(t, "error Content-Type", resp.Header.Get("Content-Type"), "application/json")
			}
			if tc.Want != nil {
				mustEqual(t, "body", body, tc.Want)
			}
			for k, v := range tc.WantHeader {
				mustEqual(t, "header "+k, resp.Header.Get(k), v)
			}
		})
	}
}

// TestNoDefaultRegistry: a bare path with no defaultRegistry is NAME_UNKNOWN.
func TestNoDefaultRegistry(t *testing.T) {
	up := newUpstreamServer(t)
	tp := newTestProxy(t, map[string]*upstreamServer{"registry.example": up})
	resp, body := tp.do(t, "GET", "/v2/acme/app/manifests/v1", nil)
	mustEqual(t, "status", resp.StatusCode, 404)
	mustEqual(t, "code", errorCode(t, body), "NAME_UNKNOWN")
	mustEqual(t, "upstream requests", up.total.Load(), int64(0))
}
