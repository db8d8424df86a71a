package proxy

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRegistryLookalikeIsNotDefault: without ?ns=, a first path segment that
// reads as a registry (a dot, a colon, "localhost") but is not configured is
// 404 NAME_UNKNOWN naming it; it is never sent to defaultRegistry as part of
// a repository name. Unknown /v2 endpoints are NAME_UNKNOWN too.
func TestRegistryLookalikeIsNotDefault(t *testing.T) {
	f := newFixture(t)
	pushed := f.hub.total.Load()
	for _, tc := range []struct{ path, names string }{
		{"/v2/quay.io/vendor/tool/manifests/v1", `"quay.io"`},
		{"/v2/quay.io/vendor/tool/tags/list", `"quay.io"`},
		{"/v2/ghcr.io/acme/app/blobs/" + f.layerHex, `"ghcr.io"`},
		{"/v2/localhost/acme/app/manifests/v1", `"localhost"`},
		{"/v2/mirror:5000/acme/app/referrers/" + f.appDigest, `"mirror:5000"`},
		{"/v2/registry.example.evil/acme/app/manifests/v1", `"registry.example.evil"`},
		{"/v2/acme/app/blobs/uploads/", "endpoint"},
		{"/v2/acme", "endpoint"},
	} {
		resp, body := f.proxy.do(t, "GET", tc.path, nil)
		mustEqual(t, tc.path+" status", resp.StatusCode, 404)
		var e struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
			t.Fatalf("%s: not an OCI error body: %s", tc.path, body)
		}
		mustEqual(t, tc.path+" code", e.Errors[0].Code, "NAME_UNKNOWN")
		if !strings.Contains(e.Errors[0].Message, tc.names) {
			t.Errorf("%s: message %q does not name %s", tc.path, e.Errors[0].Message, tc.names)
		}
	}
	mustEqual(t, "requests to the default registry", f.hub.total.Load()-pushed, int64(0))

	// Asked for explicitly with ?ns=, such a name is the client's to use.
	resp, _ := f.proxy.do(t, "GET", "/v2/quay.io/vendor/tool/manifests/v1?ns=docker.io", nil)
	mustEqual(t, "status with ns", resp.StatusCode, 404)
	mustEqual(t, "upstream GETs with ns", f.hub.count("GET", "/v2/quay.io/vendor/tool/manifests/v1"), 1)
	// A single path component is a repository name, as in docker's rule.
	resp, _ = f.proxy.do(t, "GET", "/v2/alpine/manifests/3", nil)
	mustEqual(t, "status of a bare name", resp.StatusCode, 200)
}
