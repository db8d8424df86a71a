package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/upstream"
)

// FuzzWWWAuthenticate: whatever challenge an upstream sends (parsed by
// go-containerregistry's transport, through the proxy's host guard), the
// proxy answers within its timeout, never contacts a realm off the
// endpoint that followHosts does not name, and never copies what such a
// realm would say into the client's error.
func FuzzWWWAuthenticate(f *testing.F) {
	const secret = "realm-secret-7f3a"
	var realmHits atomic.Int64
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		realmHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token":"`+secret+`","errors":[{"code":"DENIED","message":"`+secret+`"}]}`)
	}))
	f.Cleanup(realm.Close)
	realmPort := realm.URL[strings.LastIndexByte(realm.URL, ':')+1:]

	var challenge atomic.Pointer[string]
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := challenge.Load(); c != nil && !strings.HasPrefix(r.URL.Path, "/token") {
			w.Header().Set("WWW-Authenticate", *c)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	f.Cleanup(up.Close)
	p, err := newProxy([]UpstreamConfig{{Registry: "registry.example", Endpoint: mustURL(up.URL)}},
		WithGate(AllowAllUnsafe{}), upstream.WithTimeout(2*time.Second))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`Bearer realm="http://localhost:` + realmPort + `/token",service="x",scope="repository:a:pull"`,
		`Bearer realm="http://127.0.0.1:` + realmPort + `/token"`,
		`Bearer realm="` + up.URL + `/token"`,
		`Basic realm="x"`,
		`Bearer realm=http://[::1]:` + realmPort + `/t, service=`,
		`Bearer realm="ftp://127.0.0.1/x"`,
		`Bearer ,,,,realm="`,
		``,
	} {
		f.Add(s)
	}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, c string) {
		if strings.ContainsAny(c, "\r\n\x00") {
			return // not a header value net/http would send
		}
		challenge.Store(&c)
		before := realmHits.Load()
		// A new repository each time: a transport made once is cached.
		path := fmt.Sprintf("/v2/registry.example/fuzz/r%d/manifests/v1", n.Add(1))
		req := httptest.NewRequest(http.MethodGet, path, nil)
		rec := httptest.NewRecorder()
		start := time.Now()
		p.ServeHTTP(rec, req)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("answered after %v (upstream timeout 2s)", d)
		}
		if realmHits.Load() != before {
			t.Fatalf("challenge %q: the proxy contacted a realm off the endpoint", c)
		}
		if strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("challenge %q: a realm's answer reached the client: %s", c, rec.Body.String())
		}
		if rec.Code == http.StatusOK {
			t.Fatalf("challenge %q: served a manifest the upstream never gave", c)
		}
	})
}
