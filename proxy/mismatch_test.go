package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/upstream"
)

// TestTagDigestMismatch: an upstream whose tag GET carries a
// Docker-Content-Digest the bytes do not hash to gets 502 UPSTREAM_ERROR
// "digest mismatch", counted; the Gate never sees those bytes (it would
// refuse them as DENIED for a digest nobody published). A header that does
// not parse as a digest is no claim: the bytes' own digest is used.
func TestTagDigestMismatch(t *testing.T) {
	g := &recordingGate{}
	reg := prometheus.NewRegistry()
	f := newFixture(t, WithGate(g), WithRegisterer(reg), upstream.WithRegisterer(reg), upstream.WithTagTTL(0))
	other := rawManifest(t, randomImage(t, 100, 1))
	serve := func(claim string) func(http.ResponseWriter, *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, "/manifests/v1") {
				return false
			}
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", claim)
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusMethodNotAllowed) // resolve tags by GET
				return true
			}
			_, _ = w.Write(other)
			return true
		}
	}
	f.reg.setFault(serve(f.appDigest))
	for _, method := range []string{"GET", "HEAD"} {
		resp, body := f.proxy.do(t, method, "/v2/registry.example/acme/app/manifests/v1", nil)
		mustEqual(t, method+" status", resp.StatusCode, http.StatusBadGateway)
		if resp.Header.Get("Docker-Content-Digest") != "" {
			t.Fatalf("%s: a refusal carries a Docker-Content-Digest", method)
		}
		if method == "GET" {
			var e struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
				t.Fatalf("not an OCI error body: %s", body)
			}
			mustEqual(t, "code", e.Errors[0].Code, "UPSTREAM_ERROR")
			if !strings.Contains(e.Errors[0].Message, "digest mismatch") {
				t.Errorf("message %q does not say digest mismatch", e.Errors[0].Message)
			}
		}
	}
	if len(g.asked) != 0 {
		t.Fatalf("the gate was asked about mismatching bytes: %v", g.asked)
	}
	mustEqual(t, "digest mismatches counted", counterValue(t, reg, "portcullis_digest_mismatches_total", "route", "manifest"), 2.0)

	f.reg.setFault(serve("sha256:not-a-digest"))
	resp, body := f.proxy.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", nil)
	mustEqual(t, "status with an unparsable header", resp.StatusCode, http.StatusOK)
	mustEqual(t, "body with an unparsable header", body, other)
	mustEqual(t, "gate questions", len(g.asked), 1)
}

// counterValue sums the counter name's series whose label key is value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, key, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == key && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// TestErrorCodes: which code each kind of failure gets on the wire (the
// one table in errors.go).
func TestErrorCodes(t *testing.T) {
	ue := func(k upstream.Kind) *upstream.Error { return &upstream.Error{Kind: k, Message: k.String()} }
	for _, tc := range []struct {
		Description string
		Err         error
		Route       string
		Status      int
		Code        string
	}{
		{"upstream 5xx or unusable answer", ue(upstream.BadResponse), routeManifest, 502, "UPSTREAM_ERROR"},
		{"digest mismatch", ue(upstream.DigestMismatch), routeBlob, 502, "UPSTREAM_ERROR"},
		{"proxy's credentials refused", ue(upstream.Unauthorized), routeManifest, 502, "UPSTREAM_ERROR"},
		{"rate limited", &upstream.Error{Kind: upstream.RateLimited, RetryAfter: "7"}, routeManifest, 429, "TOOMANYREQUESTS"},
		{"manifest not found", ue(upstream.NotFound), routeManifest, 404, "MANIFEST_UNKNOWN"},
		{"blob not found", ue(upstream.NotFound), routeBlob, 404, "BLOB_UNKNOWN"},
		{"repository not found", ue(upstream.NotFound), routeTags, 404, "NAME_UNKNOWN"},
		{"upstream's own code", &upstream.Error{Kind: upstream.NotFound, Code: "NAME_UNKNOWN"}, routeManifest, 404, "NAME_UNKNOWN"},
		{"upstream's odd code", &upstream.Error{Kind: upstream.NotFound, Code: "DENIED_UNKNOWN"}, routeBlob, 404, "BLOB_UNKNOWN"},
		{"no answer", ue(upstream.Unavailable), routeBlob, 503, "UNAVAILABLE"},
		{"no answer in time", ue(upstream.Timeout), routeBlob, 503, "UNAVAILABLE"},
		{"range", &upstream.Error{Kind: upstream.RangeNotSatisfiable, ContentRange: "bytes */9"}, routeBlob, 416, "RANGE_NOT_SATISFIABLE"},
		{"wrapped", fmt.Errorf("reading: %w", ue(upstream.BadResponse)), routeManifest, 502, "UPSTREAM_ERROR"},
		{"any other error: no decision", errors.New("connection reset"), routeManifest, 503, "UNAVAILABLE"},
		{"policy refusal", &DeniedError{Message: "unsigned"}, routeManifest, 403, "DENIED"},
		{"not signature material", &DeniedError{Message: "no", NotFound: true}, routeManifest, 404, "MANIFEST_UNKNOWN"},
	} {
		re := asRegError(tc.Err, tc.Route)
		if re.Status != tc.Status || re.Code != tc.Code {
			t.Errorf("%s: %d %s, want %d %s", tc.Description, re.Status, re.Code, tc.Status, tc.Code)
		}
	}
	if re := asRegError(&upstream.Error{Kind: upstream.RateLimited, RetryAfter: "7"}, routeBlob); re.Header.Get("Retry-After") != "7" {
		t.Error("Retry-After is not passed on")
	}
	for code, status := range statusOf {
		if code == codeUnsupported && status != 405 || code == codeDenied && status != 403 {
			t.Errorf("%s is sent as %d", code, status)
		}
	}
}
