package upstream

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseRange: no panic, and a parsed range always resolves inside the blob.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=5-", "bytes=-3", "bytes=0-1,2-3", "bytes=9-2", "items=0-1", "bytes=-0", "bytes= 1-2"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		r := ParseRange(h)
		if r == nil || size < 0 {
			return
		}
		if ParseRange(r.Header()) == nil {
			t.Fatalf("%q -> %q does not parse again", h, r.Header())
		}
		first, last, ok := r.Resolve(size)
		if ok && (first < 0 || last < first || last >= size) {
			t.Fatalf("%q in %d bytes resolved to %d-%d", h, size, first, last)
		}
	})
}

// FuzzContentRange: no panic, and what parses is well-formed.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-1/2", "bytes 5-9/*", "bytes */10", "bytes 3-1/5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		first, last, _, ok := ParseContentRange(h)
		if ok && (first < 0 || last < first) {
			t.Fatalf("%q parsed to %d-%d", h, first, last)
		}
	})
}

// FuzzFollowHosts: parsing a followHosts entry and checking a target URL
// against it never panics; an entry that parses follows its own host (on
// its port, or the default port) in any letter case; a wildcard never
// follows its bare suffix; and nothing is followed from https to http.
func FuzzFollowHosts(f *testing.F) {
	for _, s := range []string{"auth.docker.io", "*.blob.core.windows.net", "127.0.0.1:5000", "[fd00::1]:5000", "Storage.Example:8443", "*.", "a:0", "::1"} {
		f.Add(s, "https://"+strings.TrimPrefix(s, "*.")+"/x")
		f.Add(s, "http://x."+strings.TrimPrefix(s, "*.")+"/x")
	}
	f.Fuzz(func(t *testing.T, entry, target string) {
		g, err := newHostGuard(mustURL("https://registry.example"), []string{entry}, nil)
		if err != nil {
			return
		}
		r := g.follow[0]
		host := strings.TrimPrefix(r.host, ".")
		if r.suffix {
			if _, err := g.check(&url.URL{Scheme: "https", Host: joinPort(host, r.port)}); err == nil {
				t.Fatalf("%q follows its bare suffix %q", entry, host)
			}
			host = "sub." + host
		}
		if r.addr.IsValid() {
			host = r.addr.String()
			if r.addr.Is6() {
				host = "[" + host + "]"
			}
		}
		own := &url.URL{Scheme: "https", Host: strings.ToUpper(joinPort(host, r.port))}
		if _, err := g.check(own); err != nil {
			t.Fatalf("%q does not follow %s: %v", entry, own, err)
		}
		u, err := url.Parse(target)
		if err != nil {
			return
		}
		if _, err := g.check(u); err == nil && !strings.EqualFold(u.Scheme, "https") {
			t.Fatalf("%q: followed %s from an https endpoint", entry, target)
		}
		if o, ok := originOf(u); ok {
			if ou, err := url.Parse(o); err == nil {
				if again, _ := originOf(ou); again != o {
					t.Fatalf("origin of %q is %q, then %q", target, o, again)
				}
			}
		}
	})
}

func joinPort(host, port string) string {
	if port == "" {
		return host
	}
	return host + ":" + port
}
