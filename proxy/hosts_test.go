package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// countingServer answers every request with h on a loopback port and counts
// the requests it saw.
type countingServer struct {
	*httptest.Server
	hits atomic.Int32
}

func newCountingServer(t *testing.T, h http.HandlerFunc) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *countingServer) port() string {
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	return port
}

// redirectingUpstream is ggcr's registry (plain or TLS) whose blob GETs are
// redirected to where location says; "/elsewhere" on it serves payload.
func redirectingUpstream(t *testing.T, useTLS bool, location func(self string) string, payload []byte) *httptest.Server {
	t.Helper()
	reg := registry.New(registry.Logger(discardLogger()))
	var srv *httptest.Server
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/elsewhere":
			_, _ = w.Write(payload)
		case strings.Contains(r.URL.Path, "/blobs/"):
			http.Redirect(w, r, location(srv.URL), http.StatusTemporaryRedirect)
		default:
			reg.ServeHTTP(w, r)
		}
	})
	if useTLS {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

// proxyFor is a Proxy in front of one upstream "registry.example" at srv.
func proxyFor(t *testing.T, srv *httptest.Server, follow []string, opts ...any) *testProxy {
	t.Helper()
	up := UpstreamConfig{Registry: "registry.example", Endpoint: mustURL(srv.URL), FollowHosts: follow}
	if srv.TLS != nil {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		up.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	p, err := newProxy([]UpstreamConfig{up}, append([]any{WithGate(AllowAllUnsafe{})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &testProxy{Proxy: p, Server: newHTTPTest(t, p)}
}

// TestRedirectRules: a blob GET redirected by the endpoint is followed to the
// endpoint itself and to followHosts, and nowhere else: not to a host that
// followHosts does not list (localhost included: it is not 127.0.0.1), not to
// a listed name that resolves to loopback, and never from https to http,
// even on the endpoint's own address. A refused target gets no request.
func TestRedirectRules(t *testing.T) {
	payload := []byte("a blob kept in an object store")
	sum := sha256.Sum256(payload)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	store := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(payload) })
	ip, localhost := "http://127.0.0.1:"+store.port()+"/b", "http://localhost:"+store.port()+"/b"
	cases := []struct {
		Description string
		TLS         bool
		Location    string // "self" is the endpoint's own /elsewhere
		FollowHosts []string
		Code        int
	}{
		{Description: "to the endpoint itself", Location: "self", Code: 200},
		{Description: "https: to the endpoint itself", TLS: true, Location: "self", Code: 200},
		{Description: "to an IP-literal followHosts entry", Location: ip, FollowHosts: []string{"127.0.0.1:" + store.port()}, Code: 200},
		{Description: "to an address not in followHosts", Location: ip, Code: 502},
		{Description: "to a followHosts entry on another port", Location: ip, FollowHosts: []string{"127.0.0.1"}, Code: 502},
		{Description: "to localhost, not in followHosts", Location: localhost, FollowHosts: []string{"127.0.0.1:" + store.port()}, Code: 502},
		{Description: "to a followHosts name resolving to loopback", Location: localhost, FollowHosts: []string{"localhost:" + store.port()}, Code: 502},
		{Description: "https: to http on the endpoint's own address", TLS: true, Location: ip, Code: 502},
		{Description: "https: to http even when listed", TLS: true, Location: ip, FollowHosts: []string{"127.0.0.1:" + store.port()}, Code: 502},
	}
	for _, tc := range cases {
		t.Run(tc.Description, func(t *testing.T) {
			before := store.hits.Load()
			up := redirectingUpstream(t, tc.TLS, func(self string) string {
				if tc.Location == "self" {
					return self + "/elsewhere"
				}
				return tc.Location
			}, payload)
			tp := proxyFor(t, up, tc.FollowHosts)
			resp, body := tp.do(t, "GET", "/v2/registry.example/acme/app/blobs/"+digest, nil)
			mustEqual(t, "status", resp.StatusCode, tc.Code)
			if tc.Code == 200 {
				mustEqual(t, "body", body, payload)
				return
			}
			mustEqual(t, "code", errorCode(t, body), "UPSTREAM_ERROR")
			if !strings.Contains(string(body), "refusing to contact") {
				t.Errorf("the error does not say what was refused: %s", body)
			}
			mustEqual(t, "requests to the refused target", store.hits.Load()-before, int32(0))
		})
	}
}

// TestEndpointOnLocalhost: the endpoint is contacted as configured; that
// localhost resolves to a loopback address does not matter.
func TestEndpointOnLocalhost(t *testing.T) {
	up := newUpstreamServer(t)
	up.push(t, "acme/app", "v1", randomImage(t, 100, 1))
	_, port, _ := net.SplitHostPort(up.host())
	p, err := newProxy([]UpstreamConfig{{Registry: "registry.example", Endpoint: mustURL("http://localhost:" + port)}}, WithGate(AllowAllUnsafe{}))
	if err != nil {
		t.Fatal(err)
	}
	tp := &testProxy{Proxy: p, Server: newHTTPTest(t, p)}
	resp, body := tp.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", nil)
	mustEqual(t, "status", resp.StatusCode, 200)
	_ = body
}

// tokenRegistry is ggcr's registry behind a bearer challenge whose realm is
// realm(self); "/token" on it answers as token says.
func tokenRegistry(t *testing.T, realm func(self string) string, token http.HandlerFunc) *countingServer {
	t.Helper()
	reg := registry.New(registry.Logger(discardLogger()))
	var s *countingServer
	s = newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			token(w, r)
		case r.Header.Get("Authorization") != "Bearer tok-1":
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm(s.URL)+`",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			reg.ServeHTTP(w, r)
		}
	})
	return s
}

const realmSecret = "internal-page-do-not-leak"

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// TestTokenRealmRules: a realm is asked only where a redirect could go, and
// what a refused or failed realm answered never reaches the client.
func TestTokenRealmRules(t *testing.T) {
	other := newCountingServer(t, answer(http.StatusUnauthorized, realmSecret))
	onLocalhost := "http://localhost:" + other.port() + "/token"
	self := func(s string) string { return s + "/token" }
	cases := []struct {
		Description string
		Realm       func(self string) string
		Token       http.HandlerFunc
		FollowHosts []string
		Code        int
		ErrCode     string
		OtherHits   bool
	}{
		{Description: "realm on the endpoint", Realm: self, Token: answer(200, `{"token":"tok-1"}`), Code: 200},
		{Description: "realm on localhost, not in followHosts", Realm: func(string) string { return onLocalhost },
			Code: 502, ErrCode: "UPSTREAM_ERROR"},
		{Description: "realm on a followHosts name resolving to loopback", Realm: func(string) string { return onLocalhost },
			FollowHosts: []string{"localhost:" + other.port()}, Code: 502, ErrCode: "UPSTREAM_ERROR"},
		{Description: "realm refuses the credentials", Realm: self, Token: answer(http.StatusUnauthorized, realmSecret),
			Code: 502, ErrCode: "UPSTREAM_ERROR"},
		{Description: "realm fails", Realm: self, Token: answer(http.StatusInternalServerError, `{"errors":[{"code":"UNKNOWN","message":"`+realmSecret+`"}]}`),
			Code: 502, ErrCode: "UPSTREAM_ERROR"},
		{Description: "realm answers no token", Realm: self, Token: answer(200, `{"detail":"`+realmSecret+`"}`),
			Code: 502, ErrCode: "UPSTREAM_ERROR"},
		{Description: "realm answers garbage", Realm: self, Token: answer(200, realmSecret),
			Code: 502, ErrCode: "UPSTREAM_ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.Description, func(t *testing.T) {
			before := other.hits.Load()
			up := tokenRegistry(t, tc.Realm, tc.Token)
			tp := proxyFor(t, up.Server, tc.FollowHosts)
			resp, body := tp.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", nil)
			if tc.Code == 200 {
				// Authenticated: the registry itself answers (nothing is pushed).
				mustEqual(t, "status", resp.StatusCode, 404)
				return
			}
			mustEqual(t, "status", resp.StatusCode, tc.Code)
			mustEqual(t, "code", errorCode(t, body), tc.ErrCode)
			if strings.Contains(string(body), realmSecret) {
				t.Fatalf("the realm's answer reached the client: %s", body)
			}
			mustEqual(t, "requests to the other realm", other.hits.Load()-before, int32(0))
		})
	}
}
