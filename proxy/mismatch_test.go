package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestTagDigestMismatch: an upstream whose tag GET carries a
// Docker-Content-Digest the bytes do not hash to gets 502 UPSTREAM_ERROR
// "digest mismatch", counted; the Gate never sees those bytes (it would
// refuse them as DENIED for a digest nobody published). A header that does
// not parse as a digest is no claim: the bytes' own digest is used.
func TestTagDigestMismatch(t *testing.T) {
	g := &recordingGate{}
	reg := prometheus.NewRegistry()
	f := newFixture(t, WithGate(g), WithRegisterer(reg), WithTagTTL(0))
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

// TestErrorCodes: which code each kind of failure gets on the wire, and
// which of them are outages (a stale tag resolution may then be used).
func TestErrorCodes(t *testing.T) {
	up := func(code int) *http.Response { return &http.Response{StatusCode: code, Header: http.Header{}} }
	for _, tc := range []struct {
		Description string
		Err         error
		Status      int
		Code        string
		Outage      bool
	}{
		{"upstream 500", fromUpstreamResponse("r", up(500), codeManifestUnknown), 502, "UPSTREAM_ERROR", true},
		{"upstream 503", fromUpstreamResponse("r", up(503), codeManifestUnknown), 502, "UPSTREAM_ERROR", true},
		{"upstream 401", fromUpstreamResponse("r", up(401), codeManifestUnknown), 502, "UPSTREAM_ERROR", false},
		{"upstream 403", fromUpstreamResponse("r", up(403), codeManifestUnknown), 502, "UPSTREAM_ERROR", false},
		{"upstream 429", fromUpstreamResponse("r", up(429), codeManifestUnknown), 429, "TOOMANYREQUESTS", true},
		{"upstream 404", fromUpstreamResponse("r", up(404), codeManifestUnknown), 404, "MANIFEST_UNKNOWN", false},
		{"unusable answer", unavailable(http.StatusBadGateway, "bad"), 502, "UPSTREAM_ERROR", true},
		{"no answer", unavailable(http.StatusServiceUnavailable, "timeout"), 503, "UNAVAILABLE", true},
		{"any other error", errors.New("connection reset"), 503, "UNAVAILABLE", true},
		{"policy refusal", &DeniedError{Message: "unsigned"}, 403, "DENIED", false},
	} {
		re := asRegError(tc.Err)
		if re.Status != tc.Status || re.Code != tc.Code || isOutage(tc.Err) != tc.Outage {
			t.Errorf("%s: %d %s outage=%v, want %d %s outage=%v",
				tc.Description, re.Status, re.Code, isOutage(tc.Err), tc.Status, tc.Code, tc.Outage)
		}
	}
}
