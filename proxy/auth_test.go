package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// authRegistry is ggcr's registry behind Basic auth, or behind the bearer
// token flow with the token server on the same host (as ggcr's SSRF guard
// wants for a loopback realm).
func authRegistry(t *testing.T, bearer bool) (*httptest.Server, *int) {
	t.Helper()
	reg := registry.New(registry.Logger(discardLogger()))
	const user, pass, token = "bot", "s3cret", "tok-123"
	basicOK := func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == user && p == pass
	}
	tokens := 0
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if !basicOK(r) || !strings.HasPrefix(r.URL.Query().Get("scope"), "repository:") {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			tokens++
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"token":"` + token + `","expires_in":300}`))
			return
		}
		if bearer {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		} else if !basicOK(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// Fill it as the admin would.
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, _ := name.NewTag(host+"/acme/app:v1", name.Insecure)
	if err := remote.Write(ref, randomImage(t, 100, 1), remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
	return srv, &tokens
}

func TestUpstreamAuth(t *testing.T) {
	for _, bearer := range []bool{false, true} {
		t.Run(map[bool]string{false: "basic", true: "bearer"}[bearer], func(t *testing.T) {
			srv, tokens := authRegistry(t, bearer)
			endpoint := mustURL(srv.URL)
			for _, tc := range []struct {
				auth authn.Authenticator
				code int
			}{
				{&authn.Basic{Username: "bot", Password: "s3cret"}, 200},
				{&authn.Basic{Username: "bot", Password: "wrong"}, 502},
				{nil, 502},
			} {
				p, err := newProxy([]UpstreamConfig{{Registry: "registry.example", Endpoint: endpoint, Auth: tc.auth}}, WithGate(AllowAllUnsafe{}))
				if err != nil {
					t.Fatal(err)
				}
				tp := &testProxy{Proxy: p, Server: newHTTPTest(t, p)}
				for i := 0; i < 2; i++ {
					resp, body := tp.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", nil)
					if resp.StatusCode != tc.code {
						t.Fatalf("auth %v: status %d, want %d: %s", tc.auth != nil, resp.StatusCode, tc.code, body)
					}
					if tc.code != 200 {
						// The upstream refused the proxy, not policy the client.
						mustEqual(t, "code", errorCode(t, body), "UPSTREAM_ERROR")
						if !strings.Contains(string(body), "refused the proxy's credentials") {
							t.Fatalf("message does not say the proxy's credentials were refused: %s", body)
						}
					}
					// Our clients never see the upstream's challenge.
					if resp.Header.Get("WWW-Authenticate") != "" {
						t.Fatal("upstream challenge leaked to the client")
					}
				}
			}
			if bearer && *tokens == 0 {
				t.Fatal("no token was exchanged")
			}
		})
	}
}
