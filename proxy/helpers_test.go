package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/upstream"
)

// upstreamServer is ggcr's in-memory registry on loopback, wrapped so tests
// can count requests and inject faults.
type upstreamServer struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int // "METHOD path" -> requests seen
	fault  atomic.Pointer[func(http.ResponseWriter, *http.Request) bool]
	total  atomic.Int64
}

func newUpstreamServer(t testing.TB, opts ...registry.Option) *upstreamServer {
	t.Helper()
	reg := registry.New(append([]registry.Option{registry.Logger(discardLogger())}, opts...)...)
	u := &upstreamServer{counts: map[string]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.total.Add(1)
		u.mu.Lock()
		u.counts[r.Method+" "+r.URL.Path]++
		u.mu.Unlock()
		if f := u.fault.Load(); f != nil && (*f)(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// setFault makes f see every request first; it returns true when it answered.
func (u *upstreamServer) setFault(f func(http.ResponseWriter, *http.Request) bool) { u.fault.Store(&f) }

func (u *upstreamServer) count(method, path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[method+" "+path]
}

func (u *upstreamServer) host() string { return strings.TrimPrefix(u.URL, "http://") }

func (u *upstreamServer) endpoint() *url.URL { return &url.URL{Scheme: "http", Host: u.host()} }

// push writes img to repo:tag on the upstream and returns its digest.
func (u *upstreamServer) push(t testing.TB, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	ref, err := name.NewTag(u.host()+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func randomImage(t testing.TB, layerSize int64, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testProxy is a Proxy on loopback in front of upstreams named as given.
type testProxy struct {
	*Proxy
	*httptest.Server
}

// Upstream is upstream.Config, for brevity.
type UpstreamConfig = upstream.Config

// newProxy is a Proxy over an upstream client for ups. opts are Options of
// either package, each applied where it belongs.
func newProxy(ups []UpstreamConfig, opts ...any) (*Proxy, error) {
	var popts []Option
	var uopts []upstream.Option
	for _, o := range opts {
		switch o := o.(type) {
		case Option:
			popts = append(popts, o)
		case upstream.Option:
			uopts = append(uopts, o)
		default:
			panic(fmt.Sprintf("newProxy: %T is not an option", o))
		}
	}
	up, err := upstream.New(ups, uopts...)
	if err != nil {
		return nil, err
	}
	return New(up, popts...)
}

func newTestProxy(t testing.TB, ups map[string]*upstreamServer, opts ...any) *testProxy {
	t.Helper()
	var list []UpstreamConfig
	for name, u := range ups {
		list = append(list, UpstreamConfig{Registry: name, Endpoint: u.endpoint()})
	}
	p, err := newProxy(list, append([]any{WithGate(AllowAllUnsafe{})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return &testProxy{Proxy: p, Server: srv}
}

// do sends one request to the proxy and returns the response with its body read.
func (tp *testProxy) do(t *testing.T, method, path string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, tp.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := tp.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

func rawManifest(t *testing.T, img v1.Image) []byte {
	t.Helper()
	b, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func layerBytes(t *testing.T, img v1.Image) (v1.Hash, []byte) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return d, b
}

func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if gb, ok := got.([]byte); ok {
		if !bytes.Equal(gb, want.([]byte)) {
			t.Fatalf("%s: bytes differ (%d vs %d bytes)", what, len(gb), len(want.([]byte)))
		}
		return
	}
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func newHTTPTest(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func digestOf(alg string, b []byte) v1.Hash {
	d, err := oci.Digest(alg, b)
	if err != nil {
		panic(err)
	}
	return d
}
