package store

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/upstream"
)

// This file is the tests' world: a real registry (ggcr's) as the upstream,
// behind a decorator that counts what reaches it, and a real proxy over a
// store client, pulled from with ggcr's remote package.

const registryName = "registry.example"

// counter counts the requests that reach the upstream, by "METHOD kind"
// (kind: manifest (by tag), manifest-digest, blob, other), and the blob
// GETs by digest.
type counter struct {
	next http.Handler
	mu   sync.Mutex
	seen map[string]int
	// blobGets counts GETs of each blob digest.
	blobGets map[string]int
	// hold, when not nil, is waited on by every blob GET before it is
	// answered (to line up concurrent requests).
	hold chan struct{}
	// down makes every request fail with 503 as a broken upstream would;
	// limited, with 429 and a Retry-After, as a rate-limited one.
	down, limited bool
	// hide, when set, answers 404 to the requests it matches (a blob a
	// repository does not have).
	hide func(*http.Request) bool
	// before, when set, runs before each request is served (a test's way
	// to order requests).
	before func(*http.Request)
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := "other"
	switch {
	case strings.Contains(r.URL.Path, "/manifests/sha256:"):
		kind = "manifest-digest"
	case strings.Contains(r.URL.Path, "/manifests/"):
		kind = "manifest"
	case strings.Contains(r.URL.Path, "/blobs/"):
		kind = "blob"
	}
	c.mu.Lock()
	c.seen[r.Method+" "+kind]++
	if kind == "blob" && r.Method == http.MethodGet {
		c.blobGets[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]++
	}
	hold, down, hide, limited, before := c.hold, c.down, c.hide, c.limited, c.before
	c.mu.Unlock()
	if before != nil {
		before(r)
	}
	if limited {
		w.Header().Set("Retry-After", "120")
		http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}`, http.StatusTooManyRequests)
		return
	}
	if hide != nil && hide(r) {
		http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`, http.StatusNotFound)
		return
	}
	if down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if hold != nil && kind == "blob" && r.Method == http.MethodGet {
		<-hold
	}
	c.next.ServeHTTP(w, r)
}

func (c *counter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[key]
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.seen {
		n += v
	}
	return n
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen, c.blobGets = map[string]int{}, map[string]int{}
}

func (c *counter) setDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
}

// world is an upstream registry, and a proxy with a store in dir in front
// of it (restart makes a new proxy, client and store on the same dir).
type world struct {
	t        *testing.T
	dir      string
	up       *httptest.Server
	counter  *counter
	store    *Store
	client   *Client
	proxy    *httptest.Server
	tagTTL   time.Duration
	maxStale time.Duration
	now      func() time.Time
	opts     []Option
	// gate, when set, makes the proxy's gate from the store's reader
	// (default: AllowAllUnsafe).
	gate func(*Reader) proxy.Gate
}

func newWorld(t *testing.T, opts ...Option) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), tagTTL: time.Minute, maxStale: time.Hour, now: time.Now, opts: opts}
	startWorld(t, w)
	return w
}

// startWorld starts w's upstream (with the referrers API) and proxy.
func startWorld(t *testing.T, w *world) {
	t.Helper()
	w.counter = &counter{next: registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0)))}
	w.counter.reset()
	w.up = httptest.NewServer(w.counter)
	t.Cleanup(w.up.Close)
	w.start()
	t.Cleanup(w.stop)
}

// start opens the store and serves a proxy from it.
func (w *world) start() {
	w.t.Helper()
	u, _ := url.Parse(w.up.URL)
	up, err := upstream.New([]upstream.Config{{Registry: registryName, Endpoint: u}},
		upstream.WithTagTTL(w.tagTTL), upstream.WithStaleIfError(0), upstream.WithTimeout(30*time.Second))
	if err != nil {
		w.t.Fatal(err)
	}
	logger := zaptest.NewLogger(w.t, zaptest.Level(zap.WarnLevel))
	if w.store, err = Open(w.dir, append([]Option{WithClock(func() time.Time { return w.now() }), WithLogger(logger)}, w.opts...)...); err != nil {
		w.t.Fatal(err)
	}
	w.client = NewClient(up, w.store, w.tagTTL, w.maxStale, logger)
	var g proxy.Gate = proxy.AllowAllUnsafe{}
	if w.gate != nil {
		g = w.gate(w.client.Reader())
	}
	p, err := proxy.New(w.client, proxy.WithGate(g), proxy.WithDefaultRegistry(registryName), proxy.WithLogger(logger))
	if err != nil {
		w.t.Fatal(err)
	}
	w.proxy = httptest.NewServer(p)
}

func (w *world) stop() {
	if w.proxy != nil {
		w.proxy.Close()
		_ = w.store.Close()
		w.proxy = nil
	}
}

// restart is a new process on the same directory.
func (w *world) restart() {
	w.t.Helper()
	w.stop()
	w.start()
}

// push writes a random image to the upstream as repo:tag.
func (w *world) push(repo, tag string, layers int, size int64) v1.Image {
	w.t.Helper()
	img, err := random.Image(size, int64(layers))
	if err != nil {
		w.t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(w.up.URL, "http://") + "/" + repo + ":" + tag)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		w.t.Fatal(err)
	}
	return img
}

// pull pulls ref (repo:tag or repo@digest) through the proxy, reading
// every layer and checking every digest (ggcr's remote verifies them),
// and returns the manifest's digest.
func (w *world) pull(ref string) (v1.Hash, error) {
	r, err := name.ParseReference(strings.TrimPrefix(w.proxy.URL, "http://")+"/"+ref, name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	img, err := remote.Image(r, remote.WithContext(context.Background()))
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return v1.Hash{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}

func (w *world) mustPull(ref string) v1.Hash {
	w.t.Helper()
	d, err := w.pull(ref)
	if err != nil {
		w.t.Fatalf("pull %s: %v", ref, err)
	}
	w.settle()
	return d
}

// settle waits for the store's fetches to finish: a fetch's file is
// renamed into place just after its readers got the last byte.
func (w *world) settle() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.store.Wait(ctx); err != nil {
		w.t.Fatalf("fetches still running after 10s: %v", err)
	}
}

// get sends one GET to the proxy.
func (w *world) get(path string) (*http.Response, []byte, error) {
	resp, err := http.Get(w.proxy.URL + path)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func repoOf(name string) oci.Repository { return oci.Repository{Registry: registryName, Name: name} }

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []v1.Hash{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func describe(c *counter) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.seen)
}
