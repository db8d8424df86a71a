//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"

	"path/filepath"
	"slices"
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
	d2 := newDay2(t, e)
	p, push, sign := d2.p, d2.push, d2.sign
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
	d2.purge("registry.example/acme/day2-late")
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
	d2.hup()
	if r := manifest("acme/day2-later:v1"); r.err != nil {
		t.Fatalf("signed acme/later after SIGHUP: %v\n%s", r.err, r.stderr)
	}
}

// day2 is a proxy under day2Policy, with the signer its cosign.pub is of.
type day2 struct {
	t      *testing.T
	p      *proxyProc
	up     string // the upstream of registry.example
	signer *signing.Signer
}

func newDay2(t *testing.T, e *env) *day2 {
	t.Helper()
	signer, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signer.PublicKeyPEM()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cosign.pub"), string(pub))
	writeFile(t, filepath.Join(dir, "policy.yaml"), day2Policy)
	return &day2{t: t, p: e.startProxyIn(t, dir, gatedConfig), up: e.upstreams["registry.example"].addr, signer: signer}
}

// push puts a new image on the shared upstream, under a name of the
// test's own (day2-*: never over another test's fixtures), and returns
// it by digest.
func (d *day2) push(repoTag string) name.Digest {
	d.t.Helper()
	img, _ := random.Image(1024, 1)
	if err := pushTo(d.t.Context(), d.up, repoTag, img); err != nil {
		d.t.Fatal(err)
	}
	dg, _ := img.Digest()
	ref, _ := name.NewDigest(d.up+"/"+strings.Split(repoTag, ":")[0]+"@"+dg.String(), name.Insecure)
	return ref
}

// sign signs the image with the policy's key (a legacy .sig).
func (d *day2) sign(ref name.Digest) {
	d.t.Helper()
	h, err := remote.Head(ref)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.signer.SignLegacy(ref.Context(), h.Digest); err != nil {
		d.t.Fatal(err)
	}
}

// purge drops the verdicts of the images pattern matches.
func (d *day2) purge(pattern string) {
	d.t.Helper()
	resp, err := http.Post("http://"+d.p.adminAddr+"/cache/verdicts/purge?image="+pattern, "", nil)
	if err != nil || resp.StatusCode != 200 {
		d.t.Fatalf("purge %s: %v %v", pattern, resp, err)
	}
	resp.Body.Close()
}

// hup sends SIGHUP and waits until the proxy dropped its cached denials.
func (d *day2) hup() {
	d.t.Helper()
	before := strings.Count(d.p.Log(0, 1<<20), "cached denials dropped")
	if err := syscall.Kill(d.p.Pid(), syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(d.p.Log(0, 1<<20), "cached denials dropped") == before {
		if time.Now().After(deadline) {
			d.t.Fatal("SIGHUP not handled")
		}
		time.Sleep(50 * time.Millisecond)
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

// TestDay2Clients: the same with containerd's ctr, podman and
// skopeo: each pull of a warn-mode image is recorded (one record per
// manifest request, each with its own request ID), and a signature pushed
// after a refusal is seen after a purge (ctr), SIGHUP (podman) or a purge
// of everything (skopeo).
func TestDay2Clients(t *testing.T) {
	e := setup(t)
	ctr, podman, skopeo := needTool(t, "ctr"), needTool(t, "podman"), needTool(t, "skopeo")
	d2 := newDay2(t, e)
	socket := startContainerd(t)
	hostsDir := renderHostsDir(t, d2.p.addr, "registry.example")
	penv, pglobal, ppull := podmanSetup(t, d2.p.addr)
	senv, sglobal := skopeoEnv(t)
	pulls := map[string]func(image string) cmdResult{
		"ctr": func(image string) cmdResult {
			return runCmd(t.Context(), nil, ctr, "--address", socket, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", image)
		},
		"podman": func(image string) cmdResult {
			return runCmd(t.Context(), penv, podman, append(append(slices.Clone(pglobal), "pull", "--quiet"), append(ppull, image)...)...)
		},
		"skopeo": func(image string) cmdResult {
			return runCmd(t.Context(), senv, skopeo, append(slices.Clone(sglobal), "inspect", "--raw", "--tls-verify=false", "--no-creds",
				"docker://"+d2.p.addr+"/"+image)...)
		},
	}

	d2.push("vendor/day2-clients:v1")
	for _, client := range []string{"ctr", "podman", "skopeo"} {
		if r := pulls[client]("registry.example/vendor/day2-clients:v1"); r.err != nil {
			t.Fatalf("%s pull of a warn-mode image: %v\n%s", client, r.err, r.stderr)
		}
	}
	var recs []struct {
		Result, Policy, RequestID string
	}
	adminJSON(t, d2.p, "/decisions?result=warn&image=registry.example/vendor/day2-clients", &recs)
	ids := map[string]bool{}
	for _, r := range recs {
		ids[r.RequestID] = true
	}
	if len(recs) < 3 || len(ids) != len(recs) {
		t.Errorf("warn records of three clients' pulls: %+v, want at least 3, each its own request", recs)
	}

	for client, renew := range map[string]func(){
		"ctr":    func() { d2.purge("registry.example/acme/day2-ctr") },
		"podman": d2.hup,
		"skopeo": func() { d2.purge("**") },
	} {
		image := "registry.example/acme/day2-" + client + ":v1"
		ref := d2.push(strings.TrimPrefix(image, "registry.example/"))
		if r := pulls[client](image); r.err == nil {
			t.Fatalf("%s pulled unsigned %s", client, image)
		}
		d2.sign(ref)
		if r := pulls[client](image); r.err == nil {
			t.Fatalf("%s: a cached denial of %s was not reused", client, image)
		}
		renew()
		if r := pulls[client](image); r.err != nil {
			t.Errorf("%s pull of %s, signed after its refusal, once its verdicts were dropped: %v\n%s", client, image, r.err, r.stderr)
		}
	}
}
