package gate

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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

// ghaAuthority is a keyless authority of the TUF-loaded root "mirror",
// as the last entry of a policy's authorities.
const ghaAuthority = `      - name: gha
        trustRoot: mirror
        keyless:
          identities:
            - issuer: https://token.actions.githubusercontent.com
              subjectRegExp: ^https://github\.com/acme/
`

// TestTUFRootNotLoadedYet: a policy whose TUF mirror cannot be reached at
// start (and has no cache) still loads; /readyz's status names the root;
// an image that needs it gets no decision (503) naming it, not a refusal;
// once the mirror appears, the retry loads it and decisions are made.
func TestTUFRootNotLoadedYet(t *testing.T) {
	repo := tuftest.NewRepo(t)
	repo.SetTarget("trusted_root.json", realdata(t, "trusted-root", "trusted_root.json"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there yet
	f := newGateFixture(t, true)
	writeTestFile(t, f.dir, "root.json", string(repo.RootJSON()))
	mirror := fmt.Sprintf("trustRoots:\n  - name: mirror\n    tuf: {url: \"http://%s\", rootFile: root.json, cacheDir: cache}\n", addr)
	path := writeTestFile(t, f.dir, "policy.yaml", mirror+fmt.Sprintf(`policies:
  - name: ci
    images: ["%s/acme/**"]
    authorities:
`, f.host)+ghaAuthority)
	builder := &Loader{}
	snap, err := builder.Load(path)
	if err != nil {
		t.Fatalf("a policy whose TUF mirror is unreachable does not load: %v", err)
	}
	f.gate.SetSnapshot(snap)
	r := NewReloader(path, builder, f.gate, zap.NewNop(), prometheus.NewRegistry())
	if d := r.Degraded(); !strings.Contains(d, `trust root "mirror" not loaded yet: `) {
		t.Fatalf("degraded %q", d)
	}
	_, err = f.gate.Manifest(context.Background(), &ManifestRequest{Repo: f.repo, Reference: "unsigned", Digest: f.unsigned.digest, Bytes: f.unsigned.bytes})
	if err == nil || !strings.Contains(err.Error(), `trust root "mirror" not loaded yet`) {
		t.Fatalf("an image needing the missing root: %v, want no decision naming the root", err)
	}
	// A missing root that only a warn-mode policy needs does not stop an
	// enforcing policy's refusal.
	both := writeTestFile(t, f.dir, "both.yaml", mirror+fmt.Sprintf(`policies:
  - name: release
    images: ["%s/acme/**"]
    authorities:
      - name: release-key
        key: {path: cosign.pub}
  - name: ci-rollout
    mode: warn
    images: ["%s/acme/**"]
    authorities:
`, f.host, f.host)+ghaAuthority)
	bothSnap, err := builder.Load(both)
	if err != nil {
		t.Fatal(err)
	}
	f.gate.SetSnapshot(bothSnap)
	v, err := f.gate.Manifest(context.Background(), &ManifestRequest{Repo: f.repo, Reference: "unsigned", Digest: f.unsigned.digest, Bytes: f.unsigned.bytes})
	if err != nil || v.Allowed() || v.Outcome.FirstFailure() == nil || v.Outcome.FirstFailure().Policy != "release" {
		t.Fatalf("a root missing for a warn policy only: %+v %v, want release's refusal", v, err)
	}
	f.gate.SetSnapshot(snap)

	target, _ := url.Parse(repo.URL())
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r.RefreshTUF()
	if d := r.Degraded(); d != "" {
		t.Fatalf("still degraded after the mirror appeared: %q", d)
	}
	v, err = f.gate.Manifest(context.Background(), &ManifestRequest{Repo: f.repo, Reference: "unsigned", Digest: f.unsigned.digest, Bytes: f.unsigned.bytes})
	if err != nil || v.Allowed() || !strings.Contains(v.Message(), "no signatures found") {
		t.Fatalf("after the root loaded: %v %v, want a refusal for want of signatures", v, err)
	}
}
