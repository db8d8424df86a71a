package proxy

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/upstream"
)

// settle waits for ristretto's asynchronous Sets.
func (tp *testProxy) settle() {
	tp.up.(*upstream.Client).Wait()
}

func TestHotManifestCostsNoUpstreamRoundTrip(t *testing.T) {
	f := newFixture(t)
	byDigest := "/v2/registry.example/acme/app/manifests/" + f.appDigest
	for i := 0; i < 3; i++ {
		resp, _ := f.proxy.do(t, "GET", byDigest, nil)
		mustEqual(t, "status", resp.StatusCode, 200)
		f.proxy.settle()
	}
	mustEqual(t, "upstream GETs by digest", f.reg.count("GET", "/v2/acme/app/manifests/"+f.appDigest), 1)

	// By tag: a tag never seen is resolved by one GET (the bytes are hashed),
	// then reused for tagTTL.
	heads := f.reg.count("HEAD", "/v2/acme/app/manifests/v1") // the push's own
	for i := 0; i < 3; i++ {
		resp, _ := f.proxy.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", nil)
		mustEqual(t, "status", resp.StatusCode, 200)
		f.proxy.settle()
	}
	mustEqual(t, "upstream GETs of the tag", f.reg.count("GET", "/v2/acme/app/manifests/v1"), 1)
	mustEqual(t, "upstream HEADs of the tag", f.reg.count("HEAD", "/v2/acme/app/manifests/v1")-heads, 0)
	mustEqual(t, "upstream GETs by digest", f.reg.count("GET", "/v2/acme/app/manifests/"+f.appDigest), 1)

	// The cache is per repository: the same digest asked in another repo goes upstream (and is unknown there).
	resp, _ := f.proxy.do(t, "GET", "/v2/registry.example/other/app/manifests/"+f.appDigest, nil)
	mustEqual(t, "other repo status", resp.StatusCode, 404)
}

func TestTagTTLZeroAsksEveryTime(t *testing.T) {
	f := newFixture(t, upstream.WithTagTTL(0))
	heads := f.reg.count("HEAD", "/v2/acme/app/manifests/v1") // the push's own
	for i := 0; i < 3; i++ {
		resp, _ := f.proxy.do(t, "HEAD", "/v2/registry.example/acme/app/manifests/v1", nil)
		mustEqual(t, "status", resp.StatusCode, 200)
		f.proxy.settle()
	}
	// The first resolution GETs the tag; the next ones HEAD it (the manifest
	// is cached by digest).
	mustEqual(t, "upstream GETs of the tag", f.reg.count("GET", "/v2/acme/app/manifests/v1"), 1)
	mustEqual(t, "upstream HEADs of the tag", f.reg.count("HEAD", "/v2/acme/app/manifests/v1")-heads, 2)
}

func TestAcceptIsForwardedAndKeysTheTagCache(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var seen []string
	f.reg.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			mu.Lock()
			seen = append(seen, r.Method+" "+r.Header.Get("Accept"))
			mu.Unlock()
		}
		return false
	})
	a := "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
	b := "application/vnd.docker.distribution.manifest.v2+json"
	for _, accept := range []string{a, b, a} {
		resp, _ := f.proxy.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", http.Header{"Accept": {accept}})
		mustEqual(t, "status", resp.StatusCode, 200)
		f.proxy.settle()
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"GET " + a, "GET " + b}
	mustEqual(t, "upstream manifest requests", strings.Join(seen, " | "), strings.Join(want, " | "))
}

// TestConcurrentFetchesCollapse: identical concurrent cold requests make one
// upstream fetch, and a client that disconnects does not fail the others.
func TestConcurrentFetchesCollapse(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	f.reg.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			<-release
		}
		return false
	})
	const n = 32
	path := "/v2/registry.example/acme/app/manifests/" + f.appDigest
	// The first client gives up early.
	quitter, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(quitter, "GET", f.proxy.URL+path, nil)
	quitErr := make(chan error, 1)
	go func() {
		resp, err := f.proxy.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		quitErr <- err
	}()
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := f.proxy.Client().Get(f.proxy.URL + path)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-quitErr; err == nil {
		t.Error("the quitting client got a response")
	}
	close(release)
	wg.Wait()
	mustEqual(t, "successful clients", ok.Load(), int32(n))
	mustEqual(t, "upstream GETs", f.reg.count("GET", "/v2/acme/app/manifests/"+f.appDigest), 1)
}

// TestStaleIfError: during an upstream outage a tag resolution past its TTL
// is used for up to staleIfError; a "not found" is never papered over.
func TestStaleIfError(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale time.Duration
		fault int
		want  int
	}{
		{"outage within staleIfError", time.Hour, 503, 200},
		{"outage without staleIfError", 0, 503, 502},
		{"tag deleted upstream", time.Hour, 404, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, upstream.WithTagTTL(20*time.Millisecond), upstream.WithStaleIfError(tc.stale))
			path := "/v2/registry.example/acme/app/manifests/v1"
			resp, _ := f.proxy.do(t, "GET", path, nil)
			mustEqual(t, "first status", resp.StatusCode, 200)
			f.proxy.settle()
			time.Sleep(40 * time.Millisecond)
			f.reg.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, "/manifests/v1") {
					w.WriteHeader(tc.fault)
					return true
				}
				return false
			})
			resp, body := f.proxy.do(t, "GET", path, nil)
			mustEqual(t, "status during the fault", resp.StatusCode, tc.want)
			if tc.want == 200 {
				mustEqual(t, "stale body", body, f.app)
			}
		})
	}
}
