package proxy

import (
	"context"
	"errors"
	"net/http"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestReader(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	repo := Repository{Registry: "registry.example", Name: "acme/app"}

	d, mt, b, err := f.proxy.Manifest(ctx, repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "digest", d.String(), f.appDigest)
	mustEqual(t, "bytes", b, f.app)
	if mt == "" {
		t.Fatal("no media type")
	}
	if _, _, _, err := f.proxy.Manifest(ctx, repo, "sha256-"+d.Hex+".sig"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing .sig tag: %v, want ErrNotFound", err)
	}
	if _, _, _, err := f.proxy.Manifest(ctx, Repository{Registry: "elsewhere.example", Name: "x"}, "v1"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("unconfigured registry: %v", err)
	}

	ld, _ := v1.NewHash(f.layerHex)
	blob, err := f.proxy.Blob(ctx, repo, ld, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "blob", blob, f.layer)
	if _, err := f.proxy.Blob(ctx, repo, ld, 10); err == nil {
		t.Fatal("a blob over the limit was returned")
	}

	idx, err := f.proxy.Referrers(ctx, repo, d)
	if err != nil {
		t.Fatal(err)
	}
	if string(idx) == "" {
		t.Fatal("no referrers index")
	}

	// An upstream that fails is an error, never "not found".
	f.reg.setFault(func(w http.ResponseWriter, r *http.Request) bool { w.WriteHeader(500); return true })
	if _, _, _, err := f.proxy.Manifest(ctx, repo, "sha256-"+d.Hex+".sig"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("upstream 500: %v", err)
	}
}
