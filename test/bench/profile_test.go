package main

// In-process blob benchmarks, for CPU profiles of what the side-by-side run
// measures from outside (Portcullis has no pprof endpoint):
//
//	go test ./test/bench -run '^$' -bench Blob -benchtime 20x -cpuprofile /tmp/cpu.out
//	go tool pprof -top -nodecount 30 /tmp/cpu.out
//
// The upstream, the proxy and the client all run in the test process, over
// loopback, so the profile shows all three; compare the Portcullis and
// ReverseProxy profiles to see what the proxy adds.

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/store"
	"github.com/portcullis-dev/portcullis/upstream"
)

const profileBlobSize = 64 << 20

// blobUpstream serves one in-memory blob at /v2/acme/big/blobs/<digest>.
func blobUpstream(b *testing.B) (*httptest.Server, string) {
	b.Helper()
	blob, err := io.ReadAll(newBlobReader(1, profileBlobSize))
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v2/acme/big/blobs/"+digest, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		_, _ = w.Write(blob)
	})
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return srv, digest
}

func benchBlobThrough(b *testing.B, handler func(up *url.URL) http.Handler) {
	up, digest := blobUpstream(b)
	u, _ := url.Parse(up.URL)
	front := httptest.NewServer(handler(u))
	b.Cleanup(front.Close)
	client := noProxyClient()
	target := front.URL + "/v2/acme/big/blobs/" + digest
	b.SetBytes(profileBlobSize)
	for b.Loop() {
		if _, err := getBlob(b.Context(), client, target, digest, profileBlobSize, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlobPortcullis(b *testing.B) {
	benchBlobThrough(b, func(up *url.URL) http.Handler {
		client, err := upstream.New([]upstream.Config{{Registry: "registry.example", Endpoint: up}})
		if err != nil {
			b.Fatal(err)
		}
		p, err := proxy.New(client, proxy.WithDefaultRegistry("registry.example"), proxy.WithGate(proxy.AllowAllUnsafe{}))
		if err != nil {
			b.Fatal(err)
		}
		return p
	})
}

func BenchmarkBlobReverseProxy(b *testing.B) {
	benchBlobThrough(b, func(up *url.URL) http.Handler { return newReverseProxy(up) })
}

func newReverseProxy(up *url.URL) http.Handler {
	return &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(up) }}
}

// BenchmarkBlobStoreCold is the cold GET through the content store: each
// round a new store in a new directory, so the blob is fetched, hashed,
// written to disk and streamed from the file as it lands (the store-cold
// CPU goal of make bench).
//
//	go test ./test/bench -run '^$' -bench BlobStoreCold -benchtime 20x -cpuprofile /tmp/cpu.out
func BenchmarkBlobStoreCold(b *testing.B) {
	up, digest := blobUpstream(b)
	u, _ := url.Parse(up.URL)
	client, err := upstream.New([]upstream.Config{{Registry: "registry.example", Endpoint: u}})
	if err != nil {
		b.Fatal(err)
	}
	h := &swapHandler{}
	front := httptest.NewServer(h)
	b.Cleanup(front.Close)
	c := noProxyClient()
	target := front.URL + "/v2/acme/big/blobs/" + digest
	b.SetBytes(profileBlobSize)
	for i := 0; b.Loop(); i++ {
		s, err := store.Open(filepath.Join(b.TempDir(), strconv.Itoa(i)), store.WithMaxSize(1<<40))
		if err != nil {
			b.Fatal(err)
		}
		p, err := proxy.New(store.NewClient(client, s, time.Minute, 0, zap.NewNop()),
			proxy.WithDefaultRegistry("registry.example"), proxy.WithGate(proxy.AllowAllUnsafe{}))
		if err != nil {
			b.Fatal(err)
		}
		h.h.Store(&p)
		if _, err := getBlob(b.Context(), c, target, digest, profileBlobSize, false); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// swapHandler serves with the handler last stored in h.
type swapHandler struct{ h atomic.Pointer[*proxy.Proxy] }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}
