package tuftrust

import (
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/tuftrust/tuftest"
)

func realRoot(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "realdata", "trusted-root", name))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return b
}

func TestProvider(t *testing.T) {
	first := realRoot(t, "trusted_root.json")
	second := realRoot(t, "sigstore-go-v1.3.0-public-good.json")
	repo := tuftest.NewRepo(t)
	repo.SetTarget(trustedRootTarget, first)
	cache := t.TempDir()
	src := Source{Name: "mirror", URL: repo.URL(), Root: repo.RootJSON(), CacheDir: cache}

	p := New([]Source{src})
	tm, err := p.TrustedMaterial("mirror")
	if err != nil || len(tm.FulcioCertificateAuthorities()) == 0 {
		t.Fatalf("material %v, %v", tm, err)
	}
	rev1 := p.Revision()

	// Unchanged repository: same revision.
	if err := p.Refresh(); err != nil {
		t.Fatal(err)
	}
	if p.Revision() != rev1 {
		t.Fatal("revision changed without a new root")
	}
	// A new trusted root is published: a refresh brings it.
	repo.SetTarget(trustedRootTarget, second)
	if err := p.Refresh(); err != nil {
		t.Fatal(err)
	}
	rev2 := p.Revision()
	if rev2 == rev1 {
		t.Fatal("revision did not change with a new root")
	}
	// The repository goes away: refresh fails, the last good root stays.
	repo.Close()
	if err := p.Refresh(); err == nil {
		t.Fatal("refresh against a dead repository succeeded")
	}
	if p.Revision() != rev2 {
		t.Fatal("the last good root was dropped")
	}
	if _, err := p.TrustedMaterial("mirror"); err != nil {
		t.Fatal(err)
	}
	// A restart while the repository is down starts from the disk cache.
	p2 := New([]Source{src})
	if pending := p2.Pending(); len(pending) != 0 {
		t.Fatalf("restart from cache: %v", pending)
	}
	if p2.Revision() != rev2 {
		t.Fatal("restart from cache has another root")
	}
	// No cache and no repository: no root yet, which says so.
	p3 := New([]Source{{Name: "x", URL: repo.URL(), Root: repo.RootJSON(), CacheDir: t.TempDir()}})
	_, err = p3.TrustedMaterial("x")
	if tnl := (*verify.TrustNotLoadedError)(nil); !errors.As(err, &tnl) || !strings.HasPrefix(err.Error(), `trust root "x" not loaded yet: `) {
		t.Fatalf("a root never loaded: %v", err)
	}
}

// TestProviderRootAppearsLater: started with the repository unreachable
// and no cache, the root is pending (named, with why); once the
// repository appears, a refresh loads it.
func TestProviderRootAppearsLater(t *testing.T) {
	repo := tuftest.NewRepo(t)
	repo.SetTarget(trustedRootTarget, realRoot(t, "trusted_root.json"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there yet
	p := New([]Source{{Name: "mirror", URL: "http://" + addr, Root: repo.RootJSON(), CacheDir: t.TempDir()}})
	if pending := p.Pending(); len(pending) != 1 || !strings.HasPrefix(pending[0], `trust root "mirror" not loaded yet: `) {
		t.Fatalf("pending %v", pending)
	}
	if err := p.Refresh(); err == nil {
		t.Fatal("a refresh with no repository succeeded")
	}
	// The repository appears at that address.
	target, _ := url.Parse(repo.URL())
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if err := p.Refresh(); err != nil {
		t.Fatal(err)
	}
	if pending := p.Pending(); len(pending) != 0 {
		t.Fatalf("still pending after the repository appeared: %v", pending)
	}
	if tm, err := p.TrustedMaterial("mirror"); err != nil || len(tm.FulcioCertificateAuthorities()) == 0 {
		t.Fatalf("material %v, %v", tm, err)
	}
}

// TestProviderRejectsForgedMetadata: a repository whose metadata is not
// signed by the pinned root's keys is refused.
func TestProviderRejectsForgedMetadata(t *testing.T) {
	good := tuftest.NewRepo(t)
	evil := tuftest.NewRepo(t)
	evil.SetTarget(trustedRootTarget, []byte(`{}`))
	p := New([]Source{{Name: "m", URL: evil.URL(), Root: good.RootJSON(), CacheDir: t.TempDir()}})
	if _, err := p.TrustedMaterial("m"); err == nil {
		t.Fatal("metadata signed by other keys was accepted")
	}
}
