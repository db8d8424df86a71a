package tuftrust

import (
	"os"
	"path/filepath"
	"testing"

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

	p, err := New([]Source{src})
	if err != nil {
		t.Fatal(err)
	}
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
	p2, err := New([]Source{src})
	if err != nil {
		t.Fatalf("restart from cache: %v", err)
	}
	if p2.Revision() != rev2 {
		t.Fatal("restart from cache has another root")
	}
	// No cache and no repository: no root, an error.
	if _, err := New([]Source{{Name: "x", URL: repo.URL(), Root: repo.RootJSON(), CacheDir: t.TempDir()}}); err == nil {
		t.Fatal("New without repository or cache succeeded")
	}
}

// TestProviderRejectsForgedMetadata: a repository whose metadata is not
// signed by the pinned root's keys is refused.
func TestProviderRejectsForgedMetadata(t *testing.T) {
	good := tuftest.NewRepo(t)
	evil := tuftest.NewRepo(t)
	evil.SetTarget(trustedRootTarget, []byte(`{}`))
	_, err := New([]Source{{Name: "m", URL: evil.URL(), Root: good.RootJSON(), CacheDir: t.TempDir()}})
	if err == nil {
		t.Fatal("metadata signed by other keys was accepted")
	}
}
