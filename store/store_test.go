package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// TestWarmPullsTouchNoUpstream: once an image was pulled, pulling it again
// (after a restart, so nothing is in memory) by digest makes no upstream
// request at all; by tag none within tagTTL, and one HEAD after it.
func TestWarmPullsTouchNoUpstream(t *testing.T) {
	w := newWorld(t)
	img := w.push("acme/app", "v1", 3, 64<<10)
	d := w.mustPull("acme/app:v1")
	if d != mustDigest(t, img) {
		t.Fatalf("pulled %s, pushed %s", d, mustDigest(t, img))
	}
	for _, b := range layerDigests(t, img) {
		if _, ok := w.store.HasBlob(b); !ok {
			t.Fatalf("blob %s was not kept", b)
		}
	}

	w.restart()
	w.counter.reset()
	w.mustPull("acme/app@" + d.String())
	if n := w.counter.total(); n != 0 {
		t.Fatalf("a warm pull by digest after a restart made %d upstream requests: %s", n, describe(w.counter))
	}
	w.mustPull("acme/app:v1")
	if n := w.counter.total(); n != 0 {
		t.Fatalf("a warm pull by tag within tagTTL made %d upstream requests: %s", n, describe(w.counter))
	}

	later := time.Now().Add(2 * w.tagTTL)
	w.now = func() time.Time { return later }
	for range 3 {
		w.mustPull("acme/app:v1")
	}
	if got := w.counter.count("HEAD manifest"); got != 1 {
		t.Fatalf("after tagTTL: %d HEADs of the tag, want 1: %s", got, describe(w.counter))
	}
	if got := w.counter.count("GET manifest") + w.counter.count("GET manifest-digest") + w.counter.count("GET blob"); got != 0 {
		t.Fatalf("after tagTTL: %d manifest or blob GETs, want 0: %s", got, describe(w.counter))
	}
}

// TestHerdMakesOneUpstreamFetch: 64 concurrent first GETs of one blob make
// one upstream GET, and every client gets the whole blob with its digest.
func TestHerdMakesOneUpstreamFetch(t *testing.T) {
	w := newWorld(t)
	img := w.push("acme/big", "v1", 1, 2<<20)
	w.mustPull("acme/big:v1") // nothing of the layer is fetched...
	layer := layerDigests(t, img)[1]
	w.store.forget(blobPath(layer)) // ...as if it were new
	w.counter.reset()
	hold := make(chan struct{})
	w.counter.mu.Lock()
	w.counter.hold = hold
	w.counter.mu.Unlock()

	const clients = 64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			resp, b, err := w.get("/v2/acme/big/blobs/" + layer.String())
			switch {
			case err != nil:
				errs <- err
			case resp.StatusCode != http.StatusOK:
				errs <- fmt.Errorf("status %d: %s", resp.StatusCode, b)
			case "sha256:"+hexSum(b) != layer.String():
				errs <- fmt.Errorf("got %d bytes hashing to %s", len(b), hexSum(b))
			}
		})
	}
	// Let every request arrive while the upstream holds its answer.
	deadline := time.Now().Add(10 * time.Second)
	for waitingOn(w.store) < clients-1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	w.counter.mu.Lock()
	gets := w.counter.blobGets[layer.String()]
	w.counter.mu.Unlock()
	if gets != 1 {
		t.Fatalf("%d concurrent GETs made %d upstream GETs of the blob, want 1", clients, gets)
	}
	if _, ok := w.store.HasBlob(layer); !ok {
		t.Fatal("the blob was not kept")
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestSecondProcessIsRefused: the store's directory is one process's; a
// second Open names the holder.
func TestSecondProcessIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second Open: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	_ = s2.Close()
}

// TestRestartKeepsEverything: what was stored is indexed again on Open,
// from names and sizes; what an earlier process left in tmp/ is removed.
func TestRestartKeepsEverything(t *testing.T) {
	w := newWorld(t)
	img := w.push("acme/app", "v1", 2, 4<<10)
	w.mustPull("acme/app:v1")
	before := w.store.usage()
	w.stop()
	if err := os.WriteFile(filepath.Join(w.dir, "tmp", "blob-123"), []byte("half a blob"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.start()
	if got := w.store.usage(); got != before {
		t.Fatalf("after a restart the store holds %d bytes, before %d", got, before)
	}
	if _, ok := w.store.Manifest(repoOf("acme/app"), mustDigest(t, img)); !ok {
		t.Fatal("the manifest is gone after a restart")
	}
	if entries, _ := os.ReadDir(filepath.Join(w.dir, "tmp")); len(entries) != 0 {
		t.Fatalf("tmp/ holds %d files after Open", len(entries))
	}
}

// TestEvictionKeepsTheRecentlyUsed: above maxSize the least recently used
// go first, down to 90%, and blobs no stored manifest lists go with them.
func TestEvictionKeepsTheRecentlyUsed(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tick := func() { mu.Lock(); now = now.Add(time.Minute); mu.Unlock() }
	const limit = 300 << 10
	w := newWorld(t, WithMaxSize(limit))
	w.now = clock
	w.restart()
	var imgs []v1.Image
	for i := range 11 { // about 27 KiB each (a layer is kept if at most a tenth of the limit)
		imgs = append(imgs, w.push(fmt.Sprintf("acme/app%d", i), "v1", 1, 25<<10))
		w.mustPull(fmt.Sprintf("acme/app%d:v1", i))
		tick()
	}
	w.mustPull("acme/app0:v1") // used again: app1 is now the least recent
	tick()
	w.push("acme/last", "v1", 1, 25<<10)
	w.mustPull("acme/last:v1")
	// A pass starts once the store is above its limit and goes down to 90%
	// of it; what is added after the pass may bring it above 90% again.
	deadline := time.Now().Add(10 * time.Second)
	for w.store.usage() > limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if u := w.store.usage(); u > limit {
		t.Fatalf("the store holds %d bytes, over its limit of %d", u, limit)
	}
	if n := testutilEvictions(w.store); n == 0 {
		t.Fatal("no eviction pass ran")
	}
	if _, ok := w.store.HasBlob(layerDigests(t, imgs[1])[1]); ok {
		t.Fatal("the least recently used image's layer is still stored")
	}
	if _, ok := w.store.HasBlob(layerDigests(t, imgs[0])[1]); !ok {
		t.Fatal("a recently used image's layer was evicted")
	}
}

// TestLargeBlobsBypassTheStore: a blob larger than a tenth of maxSize is
// served from the upstream, not kept (it would evict most of the store).
func TestLargeBlobsBypassTheStore(t *testing.T) {
	w := newWorld(t, WithMaxSize(1<<20))
	w.restart()
	img := w.push("acme/big", "v1", 1, 200<<10)
	w.mustPull("acme/big:v1")
	w.mustPull("acme/big:v1")
	if _, ok := w.store.HasBlob(layerDigests(t, img)[1]); ok {
		t.Fatal("a blob of a fifth of maxSize was kept")
	}
	if _, ok := w.store.HasBlob(layerDigests(t, img)[0]); !ok {
		t.Fatal("the small config blob was not kept")
	}
}

// TestUpstreamDown: with the upstream gone, a stored image pulls by tag
// (its resolution stale, within maxStale) and by digest; past maxStale the
// tag does not, and an image never stored fails saying it is not stored.
func TestUpstreamDown(t *testing.T) {
	w := newWorld(t)
	img := w.push("acme/app", "v1", 2, 16<<10)
	w.push("acme/other", "v1", 1, 1<<10)
	w.mustPull("acme/app:v1")
	w.restart() // nothing in memory
	w.up.Close()
	later := time.Now().Add(2 * w.tagTTL)
	w.now = func() time.Time { return later }
	w.mustPull("acme/app:v1")
	w.mustPull("acme/app@" + mustDigest(t, img).String())

	// A client with another Accept set gets the stored resolution too,
	// when it accepts the stored manifest's type.
	req, _ := http.NewRequest(http.MethodGet, w.proxy.URL+"/v2/acme/app/manifests/v1", nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != mustDigest(t, img).String() {
		t.Fatalf("another Accept set with the upstream down: %d %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}

	resp, body, err := w.get("/v2/acme/other/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not in the content store") {
		t.Fatalf("never-seen image with the upstream down: %d %s", resp.StatusCode, body)
	}

	tooLate := time.Now().Add(w.tagTTL + w.maxStale + time.Minute)
	w.now = func() time.Time { return tooLate }
	if _, err := w.pull("acme/app:v1"); err == nil {
		t.Fatal("a tag resolution older than maxStale was used")
	}
}

// TestListPruneVerify: ls shows what is stored; prune removes what was
// not used lately (and the blobs only it listed); verify drops an object
// whose bytes were damaged on disk.
func TestListPruneVerify(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	w := newWorld(t)
	w.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w.restart()
	old := w.push("acme/old", "v1", 1, 8<<10)
	w.mustPull("acme/old:v1")
	mu.Lock()
	now = now.Add(48 * time.Hour)
	mu.Unlock()
	fresh := w.push("acme/new", "v1", 1, 8<<10)
	w.mustPull("acme/new:v1")

	list := w.store.List()
	if len(list) != 2 || list[0].Image != registryName+"/acme/new" || list[0].Digest != mustDigest(t, fresh).String() ||
		len(list[0].Tags) != 1 || list[0].Tags[0] != "v1" || list[0].Size < 8<<10 {
		t.Fatalf("List: %+v", list)
	}

	if n, _ := w.store.Prune(24 * time.Hour); n == 0 {
		t.Fatal("Prune removed nothing")
	}
	if _, ok := w.store.Manifest(repoOf("acme/old"), mustDigest(t, old)); ok {
		t.Fatal("Prune kept a manifest unused for 48h")
	}
	if _, ok := w.store.HasBlob(layerDigests(t, old)[1]); ok {
		t.Fatal("Prune kept the layer only the pruned manifest listed")
	}
	if len(w.store.List()) != 1 {
		t.Fatalf("after Prune: %+v", w.store.List())
	}

	layer := layerDigests(t, fresh)[1]
	p := filepath.Join(w.store.dir, blobPath(layer))
	b, _ := os.ReadFile(p)
	b[0] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := w.store.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dropped) != 1 || res.Dropped[0] != blobPath(layer) || res.Checked < 3 {
		t.Fatalf("Verify: %+v", res)
	}
	if _, ok := w.store.HasBlob(layer); ok {
		t.Fatal("Verify kept a damaged blob")
	}
	w.mustPull("acme/new:v1") // fetched again, whole
}

// TestSharedBlobsKeepEachRepositorysAccess: blobs are stored once for every
// repository, but a repository gets a stored blob only if it was fetched
// for it or its upstream has it: an allowed manifest that lists another
// repository's layer does not reach that layer through the store.
func TestSharedBlobsKeepEachRepositorysAccess(t *testing.T) {
	w := newWorld(t)
	img := w.push("acme/private", "v1", 1, 8<<10)
	w.mustPull("acme/private:v1")
	layer := layerDigests(t, img)[1]
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	req, _ := http.NewRequest(http.MethodPut, w.up.URL+"/v2/acme/other/manifests/v1", bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(mt))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("put the manifest in acme/other: %v %v", resp, err)
	}
	w.counter.mu.Lock()
	w.counter.hide = func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/v2/acme/other/blobs/") }
	w.counter.mu.Unlock()
	if _, err := w.pull("acme/other:v1"); err == nil {
		t.Fatal("acme/other got acme/private's layer from the store")
	}
	resp, _, err := w.get("/v2/acme/other/blobs/" + layer.String())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("acme/other's GET of acme/private's layer: %d, want 404", resp.StatusCode)
	}
	w.counter.mu.Lock()
	w.counter.hide = nil
	w.counter.mu.Unlock()
	w.counter.reset()
	w.mustPull("acme/other:v1") // the upstream has it there now: one HEAD, then from the store
	if n := w.counter.count("GET blob"); n != 0 {
		t.Fatalf("%d blob GETs upstream for blobs the store holds", n)
	}
}

// TestAcceptKeyIsBounded: only the manifest types count in an Accept key,
// so no client can make more than a few keys per tag.
func TestAcceptKeyIsBounded(t *testing.T) {
	got := AcceptKey([]string{"application/vnd.oci.image.index.v1+json, x/" + strings.Repeat("a", 4000),
		"application/vnd.docker.distribution.manifest.v2+json;q=0.9", "*/*", "APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON"})
	want := "*/*,application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.index.v1+json"
	if got != want {
		t.Fatalf("AcceptKey = %q, want %q", got, want)
	}
}

func testutilEvictions(s *Store) float64 {
	m := &dto.Metric{}
	_ = s.metrics.evictions.Write(m)
	return m.GetCounter().GetValue()
}

// TestRateLimitedUpstream: with the upstream answering 429, a stored image
// pulls (its tag resolution stale), and one never stored gets the 429 with
// its Retry-After, saying it is not in the content store.
func TestRateLimitedUpstream(t *testing.T) {
	w := newWorld(t)
	w.push("acme/app", "v1", 1, 4<<10)
	w.push("acme/other", "v1", 1, 1<<10)
	w.mustPull("acme/app:v1")
	w.restart()
	// One request through first, so that the upstream client has pinged
	// the registry (a 429 to the ping itself carries no Retry-After through
	// ggcr's transport).
	if resp, _, err := w.get("/v2/acme/other/tags/list"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("tags list: %v %v", resp, err)
	}
	w.counter.mu.Lock()
	w.counter.limited = true
	w.counter.mu.Unlock()
	later := time.Now().Add(2 * w.tagTTL)
	w.now = func() time.Time { return later }
	w.mustPull("acme/app:v1")
	resp, body, err := w.get("/v2/acme/other/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "120" ||
		!strings.Contains(string(body), "not in the content store") {
		t.Fatalf("never stored, upstream rate limited: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// TestStoredBlobsAnswerRangesAndConditions: a stored blob answers a Range
// (206 with those bytes), If-None-Match with its digest (304) and HEAD
// from disk, with no upstream request.
func TestStoredBlobsAnswerRangesAndConditions(t *testing.T) {
	w := newWorld(t)
	img := w.push("acme/app", "v1", 1, 8<<10)
	w.mustPull("acme/app:v1")
	ls, _ := img.Layers()
	rc, _ := ls[0].Compressed()
	want, _ := io.ReadAll(rc)
	_ = rc.Close()
	layer := layerDigests(t, img)[1]
	w.counter.reset()
	served := w.store.metrics.served.WithLabelValues("store")
	before := testutil.ToFloat64(served)
	sent := func(what string, want int) {
		t.Helper()
		// The proxy closes the file after the response's last byte
		// reached the client's connection; give it that moment.
		waitFor(t, func() bool { return testutil.ToFloat64(served)-before == float64(want) })
		before = testutil.ToFloat64(served)
	}
	do := func(method string, hdr map[string]string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, w.proxy.URL+"/v2/acme/app/blobs/"+layer.String(), nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, b := do(http.MethodGet, map[string]string{"Range": "bytes=10-19"}); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, want[10:20]) {
		t.Fatalf("Range: %d, %d bytes", resp.StatusCode, len(b))
	}
	sent("a Range of 10 bytes", 10)
	if resp, _ := do(http.MethodGet, map[string]string{"If-None-Match": `"` + layer.String() + `"`}); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	if resp, _ := do(http.MethodHead, nil); resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) {
		t.Fatalf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	if resp, b := do(http.MethodGet, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(b, want) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(b))
	}
	sent("a 304, a HEAD and a whole GET", len(want))
	if n := w.counter.total(); n != 0 {
		t.Fatalf("%d upstream requests for a stored blob: %s", n, describe(w.counter))
	}
}
