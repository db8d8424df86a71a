//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"

	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/verify/signing"
)

// day2Policy enforces the test's key on acme/ and, in warn mode, on
// vendor/, whose images are otherwise allowed unsigned.
const day2Policy = `policies:
  - name: acme-release
    images: ["registry.example/acme/**"]
    authorities: [{name: release-key, key: {path: cosign.pub}}]
  - name: vendor
    images: ["registry.example/vendor/**"]
    allow: unsigned
  - name: sbom-rollout
    mode: warn
    images: ["registry.example/vendor/**"]
    authorities: [{name: release-key, key: {path: cosign.pub}}]
default: deny
`

// TestGatedWarnAndPurge, with crane: every pull served despite a warn-mode
// violation is recorded and summarised (what an admin reads before
// enforcing); a denial says how long it is cached, and a signature pushed
// after it is seen at once after a purge on the admin listener, or after
// SIGHUP.
func TestGatedWarnAndPurge(t *testing.T) {
	e := setup(t)
	crane := needTool(t, "crane")
	signer, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signer.PublicKeyPEM()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cosign.pub"), string(pub))
	writeFile(t, filepath.Join(dir, "policy.yaml"), day2Policy)
	p := e.startProxyIn(t, dir, gatedConfig)
	up := e.upstreams["registry.example"].addr
	// push puts a new image on the shared upstream: under names of this
	// test's own (day2-*), never over another test's fixtures.
	push := func(repoTag string) name.Digest {
		t.Helper()
		img, _ := random.Image(1024, 1)
		if err := pushTo(t.Context(), up, repoTag, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		ref, _ := name.NewDigest(up+"/"+strings.Split(repoTag, ":")[0]+"@"+d.String(), name.Insecure)
		return ref
	}
	sign := func(d name.Digest) {
		t.Helper()
		h, _ := remote.Head(d)
		if err := signer.SignLegacy(d.Context(), h.Digest); err != nil {
			t.Fatal(err)
		}
	}
	manifest := func(repoTag string) cmdResult {
		return runCmd(t.Context(), nil, crane, "manifest", "--insecure", p.addr+"/registry.example/"+repoTag)
	}

	// Warn mode: each pull is recorded and summarised.
	push("vendor/day2-tool:v1")
	for range 2 {
		if r := manifest("vendor/day2-tool:v1"); r.err != nil {
			t.Fatalf("crane manifest of a warn-mode image: %v\n%s", r.err, r.stderr)
		}
	}
	var sum []struct {
		Image, Policy, Result string
		Count                 int
	}
	adminJSON(t, p, "/decisions/summary?result=warn", &sum)
	if len(sum) != 1 || sum[0].Policy != "sbom-rollout" || sum[0].Count != 2 || sum[0].Image != "registry.example/vendor/day2-tool" {
		t.Errorf("warn summary: %+v, want sbom-rollout on registry.example/vendor/day2-tool twice", sum)
	}

	// A signature pushed after a refusal: seen after a purge.
	late := push("acme/day2-late:v1")
	if r := manifest("acme/day2-late:v1"); r.err == nil || !strings.Contains(r.stderr, "cached for") {
		t.Fatalf("unsigned acme/late: %v\n%s", r.err, r.stderr)
	}
	sign(late)
	if r := manifest("acme/day2-late:v1"); r.err == nil {
		t.Fatal("a cached denial was not reused (denyTTL)")
	}
	resp, err := http.Post("http://"+p.adminAddr+"/cache/verdicts/purge?image=registry.example/acme/day2-late", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("purge: %v %v", resp, err)
	}
	resp.Body.Close()
	if r := manifest("acme/day2-late:v1"); r.err != nil {
		t.Fatalf("signed acme/late after the purge: %v\n%s", r.err, r.stderr)
	}
	if !p.logContains(`"msg":"verdicts purged"`) {
		t.Error("the purge was not logged")
	}

	// ... or after SIGHUP, with no file changed.
	later := push("acme/day2-later:v1")
	if r := manifest("acme/day2-later:v1"); r.err == nil {
		t.Fatal("unsigned acme/later served")
	}
	sign(later)
	if err := syscall.Kill(p.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !p.logContains("cached denials dropped") {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP not handled")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := manifest("acme/day2-later:v1"); r.err != nil {
		t.Fatalf("signed acme/later after SIGHUP: %v\n%s", r.err, r.stderr)
	}
}

func adminJSON(t *testing.T, p *proxyProc, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + p.adminAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
