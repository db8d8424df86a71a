package verify

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDiscoverReadsAhead: a candidate's first read starts as soon as the
// list naming it arrives, not when the other list has arrived too. The
// registry holds one list back until the other list's first candidate
// read has reached it; without the read-ahead that read only comes after
// both lists, and the held list gives up waiting (the test fails).
// Nothing is read twice.
func TestDiscoverReadsAhead(t *testing.T) {
	isReferrers := func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/referrers/") }
	isSigTag := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, ".sig") }
	isPayload := func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/blobs/") }
	isReferrerManifest := func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/manifests/sha256:") }
	cases := map[string]struct{ hold, until func(*http.Request) bool }{
		"legacy payload before the referrers": {hold: isReferrers, until: isPayload},
		"referrer manifest before the .sig":   {hold: isSigTag, until: isReferrerManifest},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			arrived := make(chan struct{})
			var once sync.Once
			var armed, timedOut bool
			var mu sync.Mutex
			gets := map[string]int{}
			tr := newRegistry(t, true, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					on := armed
					if on && r.Method == http.MethodGet {
						gets[r.URL.Path]++
					}
					mu.Unlock()
					if on && r.Method == http.MethodGet && c.until(r) {
						once.Do(func() { close(arrived) })
					}
					if on && c.hold(r) {
						select {
						case <-arrived:
						case <-time.After(3 * time.Second):
							mu.Lock()
							timedOut = true
							mu.Unlock()
						}
					}
					h.ServeHTTP(w, r)
				})
			})
			repo, img := signedBothWays(t, tr)
			mu.Lock()
			armed = true
			mu.Unlock()
			disc, err := Discover(context.Background(), tr.Reader, repo, img.Digest, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if timedOut {
				t.Error("the held list waited for a read that only started after it")
			}
			for path, n := range gets {
				if n > 1 {
					t.Errorf("GET %s %d times", path, n)
				}
			}
			if len(disc.Signatures) != 2 || disc.Signatures[0].Malformed != "" || disc.Signatures[1].Malformed != "" {
				t.Errorf("signatures = %+v", disc.Signatures)
			}
		})
	}
}
