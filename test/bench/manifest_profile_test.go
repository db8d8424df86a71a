package main

// In-process warm manifest benchmarks, for CPU profiles of what the
// manifest phase measures from outside: Portcullis wired as `portcullis
// serve` wires it (proxy, verification gate enforcing the bench policy,
// JSON request log to a file, Prometheus registry), in front of
// go-containerregistry's in-memory registry holding a signed image, and a
// plain ReverseProxy for comparison.
//
//	go test ./test/bench -run '^$' -bench ManifestWarm -cpuprofile /tmp/cpu.out
//	go tool pprof -top -nodecount 40 /tmp/cpu.out
//
// The client and the upstream run in the test process too; look at the
// proxy, verify and net/http server frames.

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/upstream"
)

// warmUpstream is an in-memory registry with one image at acme/app:v1,
// signed (legacy and bundle) by a new key written as cosign.pub beside
// policy.yaml in dir.
func warmUpstream(b *testing.B, dir string) (*url.URL, v1.Descriptor) {
	b.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	sg, err := newSigner(u.Host)
	if err != nil {
		b.Fatal(err)
	}
	if err := sg.writeTrust(dir); err != nil {
		b.Fatal(err)
	}
	repo, _ := name.NewRepository(u.Host+"/acme/app", name.Insecure)
	img, _ := random.Image(1024, 2)
	if err := remote.Write(repo.Tag("v1"), img); err != nil {
		b.Fatal(err)
	}
	desc, err := describe(img)
	if err != nil {
		b.Fatal(err)
	}
	if err := sg.sign(context.Background(), "acme/app", desc, formatLegacy, formatBundle); err != nil {
		b.Fatal(err)
	}
	return u, desc
}

// newGatedProxy is Portcullis as `portcullis serve` builds it, with the
// request log going to a file in dir.
func newGatedProxy(b *testing.B, up *url.URL, dir string) http.Handler {
	b.Helper()
	cfg := zap.NewProductionConfig()
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	cfg.OutputPaths = []string{filepath.Join(dir, "portcullis.log")}
	logger, err := cfg.Build()
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	client, err := upstream.New([]upstream.Config{{Registry: benchRegistry, Endpoint: up}},
		upstream.WithLogger(logger), upstream.WithRegisterer(reg))
	if err != nil {
		b.Fatal(err)
	}
	pol, err := policyfile.Load(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	snap, err := gate.NewSnapshot(pol, nil)
	if err != nil {
		b.Fatal(err)
	}
	g, err := gate.New(client, snap, gate.WithLogger(logger.Named("gate")), gate.WithRegisterer(reg))
	if err != nil {
		b.Fatal(err)
	}
	p, err := proxy.New(client, proxy.WithDefaultRegistry(benchRegistry), proxy.WithLogger(logger),
		proxy.WithRegisterer(reg), proxy.WithGate(g))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func benchManifestWarm(b *testing.B, handler func(up *url.URL, dir string) http.Handler, byDigest bool) {
	dir := b.TempDir()
	up, desc := warmUpstream(b, dir)
	front := httptest.NewServer(handler(up, dir))
	b.Cleanup(front.Close)
	ref := "v1"
	if byDigest {
		ref = desc.Digest.String()
	}
	l := newLoader(loadSpec{url: front.URL + "/v2/acme/app/manifests/" + ref, accept: containerdAccept,
		wantDigest: desc.Digest.String(), wantSize: -1}, 1)
	if err := l.prime(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := noProxyClient()
		defer c.CloseIdleConnections()
		req, _ := l.request(context.Background())
		for pb.Next() {
			if err := l.once(c, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkManifestWarmPortcullisTag(b *testing.B) {
	benchManifestWarm(b, func(up *url.URL, dir string) http.Handler { return newGatedProxy(b, up, dir) }, false)
}

func BenchmarkManifestWarmPortcullisDigest(b *testing.B) {
	benchManifestWarm(b, func(up *url.URL, dir string) http.Handler { return newGatedProxy(b, up, dir) }, true)
}

func BenchmarkManifestWarmReverseProxy(b *testing.B) {
	benchManifestWarm(b, func(up *url.URL, _ string) http.Handler { return newReverseProxy(up) }, true)
}
