package upstream

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/portcullis-dev/portcullis/oci"
)

func TestDockerHubFollowHosts(t *testing.T) {
	c, err := New([]Config{{Registry: "index.docker.io", Endpoint: mustURL("https://registry-1.docker.io")}})
	if err != nil {
		t.Fatal(err)
	}
	g := c.registries[oci.DockerHub].guard
	for _, target := range []string{"https://auth.docker.io/token", "https://production.cloudflare.docker.com/registry-v2/x",
		"https://docker-images-prod.6aa30f8b08e16409b46e0173d6de2f56.r2.cloudflarestorage.com/x"} {
		if _, err := g.check(mustURL(target)); err != nil {
			t.Errorf("%s: %v", target, err)
		}
	}
	if _, err := g.check(mustURL("https://other.r2.cloudflarestorage.com/x")); err == nil {
		t.Error("another cloudflarestorage bucket is followed")
	}
}

func TestParseFollowHost(t *testing.T) {
	for _, ok := range []string{"auth.docker.io", "Storage.Example:8443", "*.blob.core.windows.net", "*.s3.amazonaws.com:443",
		"127.0.0.1:5000", "[fd00::1]:5000", "[::1]", "localhost"} {
		if err := CheckFollowHost(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*", "*.", "https://auth.docker.io", "auth.docker.io/token", "a.*.example", "*.10.0.0.1",
		"host:0", "host:65536", "host:", "host:08", "::1", "bot@host", "127.1", "0x7f000001", "a..b", "-a.example", "fe80::1%eth0", "a b"} {
		if err := CheckFollowHost(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestCheckRedirect: redirect chains stop at 10 and never go from https to http.
func TestCheckRedirect(t *testing.T) {
	req := func(s string) *http.Request { return &http.Request{URL: mustURL(s)} }
	if err := checkRedirect(req("http://b.example/"), []*http.Request{req("https://a.example/")}); err == nil {
		t.Error("https -> http followed")
	}
	if err := checkRedirect(req("http://b.example/"), []*http.Request{req("http://a.example/"), req("https://c.example/")}); err == nil {
		t.Error("https -> http later in the chain followed")
	}
	if err := checkRedirect(req("https://b.example/"), []*http.Request{req("http://a.example/")}); err != nil {
		t.Errorf("http -> https: %v", err)
	}
	via := make([]*http.Request, 10)
	for i := range via {
		via[i] = req("https://a.example/")
	}
	if err := checkRedirect(req("https://a.example/"), via); err == nil {
		t.Error("an 11th redirect followed")
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestHostGuardCheck: the rules on URLs alone, compared as text.
func TestHostGuardCheck(t *testing.T) {
	cases := []struct {
		Endpoint, Target string
		Follow           []string
		OK, CheckDial    bool
	}{
		{Endpoint: "https://registry.example", Target: "https://REGISTRY.example:443/v2/", OK: true},
		{Endpoint: "http://127.0.0.1:5000", Target: "http://127.0.0.1:5000/token", OK: true},
		{Endpoint: "http://127.0.0.1:5000", Target: "http://localhost:5000/token"},
		{Endpoint: "http://localhost:5000", Target: "http://127.0.0.1:5000/token"},
		{Endpoint: "https://127.0.0.1:5000", Target: "http://127.0.0.1:5000/v2/"},
		{Endpoint: "http://127.0.0.1:5000", Target: "https://127.0.0.1:5000/v2/"},
		{Endpoint: "https://registry.example", Target: "https://registry.example:8443/x"},
		{Endpoint: "https://registry.example", Target: "https://storage.example/blob?sig=1"},
		{Endpoint: "https://registry.example", Target: "https://storage.example/blob", Follow: []string{"storage.example"}, OK: true, CheckDial: true},
		{Endpoint: "https://registry.example", Target: "https://storage.example:8443/blob", Follow: []string{"storage.example"}},
		{Endpoint: "https://registry.example", Target: "https://storage.example:8443/blob", Follow: []string{"storage.example:8443"}, OK: true, CheckDial: true},
		{Endpoint: "https://registry.example", Target: "http://storage.example/blob", Follow: []string{"storage.example"}},
		{Endpoint: "http://registry.example", Target: "http://storage.example/blob", Follow: []string{"storage.example"}, OK: true, CheckDial: true},
		{Endpoint: "https://registry.example", Target: "https://a.b.blob.example/x", Follow: []string{"*.blob.example"}, OK: true, CheckDial: true},
		{Endpoint: "https://registry.example", Target: "https://blob.example/x", Follow: []string{"*.blob.example"}},
		{Endpoint: "https://registry.example", Target: "https://evilblob.example/x", Follow: []string{"*.blob.example"}},
		{Endpoint: "https://registry.example", Target: "https://10.0.0.5:9000/x", Follow: []string{"10.0.0.5:9000"}, OK: true},
		{Endpoint: "https://registry.example", Target: "https://[::1]:9000/x", Follow: []string{"[0:0::1]:9000"}, OK: true},
		{Endpoint: "https://registry.example", Target: "https://169.254.169.254/latest/meta-data", Follow: []string{"*.example"}},
		{Endpoint: "https://registry.example", Target: "ftp://registry.example/x"},
	}
	for _, tc := range cases {
		g, err := newHostGuard(mustURL(tc.Endpoint), tc.Follow, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkDial, err := g.check(mustURL(tc.Target))
		if (err == nil) != tc.OK || checkDial != tc.CheckDial {
			t.Errorf("endpoint %s, followHosts %q, target %s: checkDial=%v err=%v; want ok=%v checkDial=%v",
				tc.Endpoint, tc.Follow, tc.Target, checkDial, err, tc.OK, tc.CheckDial)
		}
	}
}
