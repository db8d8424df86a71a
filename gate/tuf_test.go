package gate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/verify/tuftrust/tuftest"
)

func realdata(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"..", "..", "shared", "realdata"}, parts...)...))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return b
}

// TestTUFTrustRoot: a policy whose trust root is a TUF mirror (generated
// and served on loopback) loads through TUF; a new trusted root published
// there becomes a new revision in force; a dead mirror keeps the last one.
func TestTUFTrustRoot(t *testing.T) {
	repo := tuftest.NewRepo(t)
	repo.SetTarget("trusted_root.json", realdata(t, "trusted-root", "trusted_root.json"))
	dir := t.TempDir()
	writeTestFile(t, dir, "root.json", string(repo.RootJSON()))
	path := writeTestFile(t, dir, "policy.yaml", fmt.Sprintf(`trustRoots:
  - name: mirror
    tuf: {url: %q, rootFile: root.json, cacheDir: cache}
policies:
  - name: ci
    images: ["r.example/**"]
    authorities:
      - name: gha
        trustRoot: mirror
        keyless:
          identities:
            - issuer: https://token.actions.githubusercontent.com
              subjectRegExp: ^https://github\.com/acme/
`, repo.URL()))
	builder := &Loader{}
	snap, err := builder.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(snap.Revision, "+tuf:") {
		t.Fatalf("revision %q does not include the TUF root", snap.Revision)
	}
	g, err := New(unusedUpstream(t), snap)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReloader(path, builder, g, zap.NewNop(), prometheus.NewRegistry())
	r.RefreshTUF()
	if g.Snapshot().Revision != snap.Revision {
		t.Fatal("a refresh without a new root changed the revision")
	}
	repo.SetTarget("trusted_root.json", realdata(t, "trusted-root", "sigstore-go-v1.3.0-public-good.json"))
	r.RefreshTUF()
	second := g.Snapshot().Revision
	if second == snap.Revision {
		t.Fatal("a new trusted root did not take effect")
	}
	repo.Close()
	r.RefreshTUF()
	if g.Snapshot().Revision != second {
		t.Fatal("a dead mirror changed the trusted root")
	}
}
