package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/upstream"
)

// trickle answers 200 with body one byte every 250 ms, until the client
// goes away.
func trickle(w http.ResponseWriter, r *http.Request, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	for i := 0; i < len(body); i++ {
		_, _ = w.Write([]byte{body[i]})
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// TestMetadataDeadlines: an upstream that sends headers at once and then
// trickles the body (1 byte per 250 ms, 15 s in all) is cut off once the
// upstream timeout (2 s) has passed in total, for tags, manifests and the
// token exchange; the client gets an error promptly.
func TestMetadataDeadlines(t *testing.T) {
	slowJSON := `{"name":"acme/app","tags":["` + strings.Repeat("a", 50) + `"]}`
	cases := []struct {
		Description string
		Path        string
		Fault       func(w http.ResponseWriter, r *http.Request) bool
	}{
		{Description: "tags/list body", Path: "/v2/registry.example/acme/app/tags/list",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, "/tags/list") {
					trickle(w, r, "application/json", slowJSON)
					return true
				}
				return false
			}},
		{Description: "manifest body", Path: "/v2/registry.example/acme/app/manifests/v1",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/manifests/") {
					trickle(w, r, "application/vnd.oci.image.manifest.v1+json", slowJSON)
					return true
				}
				return false
			}},
		{Description: "token exchange body", Path: "/v2/registry.example/acme/app/tags/list",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				switch {
				case r.URL.Path == "/token":
					trickle(w, r, "application/json", `{"token":"`+strings.Repeat("t", 60)+`"}`)
				case r.Header.Get("Authorization") == "":
					w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="test"`)
					w.WriteHeader(http.StatusUnauthorized)
				default:
					return false
				}
				return true
			}},
	}
	for _, tc := range cases {
		t.Run(tc.Description, func(t *testing.T) {
			up := newUpstreamServer(t)
			up.push(t, "acme/app", "v1", randomImage(t, 100, 1))
			up.setFault(tc.Fault)
			tp := newTestProxy(t, map[string]*upstreamServer{"registry.example": up}, upstream.WithTimeout(2*time.Second))
			start := time.Now()
			resp, body := tp.do(t, "GET", tc.Path, nil)
			took := time.Since(start)
			if resp.StatusCode < 500 {
				t.Fatalf("status %d, want an upstream failure: %s", resp.StatusCode, body)
			}
			mustEqual(t, "code", errorCode(t, body), "UNAVAILABLE")
			if took > 4*time.Second {
				t.Fatalf("took %v with an upstream timeout of 2s", took)
			}
		})
	}
}
