package main

// In-process cold first GETs, for CPU profiles of what the cold phase
// measures from outside: Portcullis wired as in manifest_profile_test.go,
// in front of go-containerregistry's in-memory registry holding b.N fresh
// signed images, each GET by tag once.
//
//	go test ./test/bench -run '^$' -bench '^BenchmarkCold$' -benchtime 300x -cpuprofile /tmp/cpu.out
//	go tool pprof -top -nodecount 40 -focus 'portcullis|net/http.\(\*conn\).serve' /tmp/cpu.out
//
// Pushing and signing the images runs in the same process before the
// timer starts; it is in the profile too (signing, registry frames), so
// focus on what Portcullis runs.

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

func BenchmarkCold(b *testing.B) {
	for _, format := range signedFormats {
		b.Run(format, func(b *testing.B) { benchCold(b, format) })
	}
}

func benchCold(b *testing.B, format string) {
	ctx := context.Background()
	dir := b.TempDir()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(srv.Close)
	up, err := url.Parse(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	sg, err := newSigner(up.Host)
	if err != nil {
		b.Fatal(err)
	}
	if err := sg.writeTrust(dir); err != nil {
		b.Fatal(err)
	}
	ims := make([]signedImage, b.N+1)
	for i := range ims {
		if ims[i], err = sg.pushSigned(ctx, "acme/cold", fmt.Sprintf("c%04d", i), format); err != nil {
			b.Fatal(err)
		}
	}
	front := httptest.NewServer(newGatedProxy(b, up, dir))
	b.Cleanup(front.Close)
	c := noProxyClient()
	defer c.CloseIdleConnections()
	// The first GET opens the connections and asks for the auth challenge.
	if _, err := manifestGetter(c, front.URL, "acme/cold", ims[0].Tag, ims[0].Digest)(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for _, im := range ims[1:] {
		if _, err := manifestGetter(c, front.URL, im.Repo, im.Tag, im.Digest)(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
