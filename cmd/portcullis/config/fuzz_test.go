package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// keeps the promises Config makes.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	for name, content := range map[string]string{"tls.crt": "c", "tls.key": "k", "ca.pem": "ca", "pw": "s3cret\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	seeds := []string{
		"",
		"~",
		"- a",
		"upstreams: [{registry: r.example}]",
		"upstreams: [{registry: r.example}]\nunverified: true\n",
		y(
			"listen: 127.0.0.1:5050",
			"adminListen: 127.0.0.1:9090",
			"tls: {certFile: tls.crt, keyFile: tls.key, clientCAFile: ca.pem}",
			"allowAnonymousClients: false",
			"upstreams:",
			"  - registry: &r registry.example",
			"    endpoint: https://mirror.internal:5000",
			"    insecure: false",
			"    caFile: ca.pem",
			"    auth: {username: bot, passwordFile: pw}",
			"  - registry: index.docker.io",
			"  - {registry: plain.example, endpoint: 'http://10.0.0.7:8080', insecure: true}",
			"defaultRegistry: *r",
			"tagTTL: 0",
			"manifestCacheBytes: 67108864",
			"upstreamTimeout: 30s",
			"clientIdleTimeout: 30s",
			"shutdownTimeout: 30s",
			"verdictTTL: 10m",
			"denyTTL: 30s",
			"staleIfError: 1h",
			"maxSignatures: 32",
			"decisionTimeout: 10s",
			"unverified: true",
		),
		y("listne: x", "upstreams:", "  - registry: HTTPS://x", "    endpoint: ftp://y", "tagTTL: 30", "tagTTL: -1s"),
		y("a: &a {b: *a}", "upstreams: &u [*u]", "tls: &t {certFile: *t}"),
		y("upstreams:", "\t- registry: x"),
		y("upstreams: [{registry: r.example}]", "---", "x: 1"),
		y("? [a]", ": b", "upstreams: {}"),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml", dir)
		if err != nil {
			if c != nil {
				t.Errorf("got a Config with error %v", err)
			}
			return
		}
		if len(c.Upstreams) == 0 {
			t.Error("accepted a config without upstreams")
		}
		seen := make(map[string]bool)
		for _, u := range c.Upstreams {
			if u.Registry == "" || u.Registry != NormalizeRegistry(u.Registry) || seen[u.Registry] {
				t.Errorf("accepted registry %q (seen before: %v)", u.Registry, seen[u.Registry])
			}
			seen[u.Registry] = true
			if u.Endpoint == nil || (u.Endpoint.Scheme != "https" && !(u.Endpoint.Scheme == "http" && u.Insecure)) {
				t.Errorf("accepted endpoint %v for %q (insecure %v)", u.Endpoint, u.Registry, u.Insecure)
			}
			if u.Auth != nil && u.Password() == "" {
				t.Errorf("accepted auth for %q without a password", u.Registry)
			}
		}
		if (c.PolicyFile == "") != c.Unverified {
			t.Errorf("accepted policyFile %q with unverified %v: want exactly one of them", c.PolicyFile, c.Unverified)
		}
		if c.DefaultRegistry != "" && !seen[c.DefaultRegistry] {
			t.Errorf("accepted defaultRegistry %q, not an upstream", c.DefaultRegistry)
		}
		if c.TagTTL < 0 || c.VerdictTTL < 0 || c.DenyTTL < 0 || c.TagStaleIfError < 0 || c.VerdictStaleIfError < 0 ||
			c.UpstreamTimeout <= 0 || c.ClientIdleTimeout <= 0 || c.ShutdownTimeout <= 0 || c.DecisionTimeout <= 0 ||
			c.ManifestCacheBytes <= 0 || c.MaxSignatures < 1 || c.Listen == "" || c.AdminListen == "" {
			t.Errorf("accepted out-of-range settings: %+v", c)
		}
	})
}
