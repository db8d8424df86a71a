//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/verify/signing"
)

// The verification gate end to end: real clients through a proxy with a
// policy file (see gated_env_test.go for the policy and the fixtures).

// unsignedReason is what the policy says of an image with no signature.
const unsignedReason = "no signatures found"

// wantUnsignedAudit checks the proxy's audit line for an unsigned image the
// test policy refused.
func wantUnsignedAudit(t *testing.T, p *proxyProc, f fixture) {
	t.Helper()
	l := p.waitAudit(t, repoOf(f.ref), f.digest.String())
	if l.Result != "deny" || l.Cause != "policy" || l.Level != "warn" {
		t.Errorf("audit line for %s: result %q cause %q level %q, want deny, policy, warn", f.ref, l.Result, l.Cause, l.Level)
	}
	for _, part := range []string{repoOf(f.ref) + "@" + f.digest.String(), `refused by policy "acme-release"`, unsignedReason} {
		if !strings.Contains(l.Message, part) {
			t.Errorf("audit line for %s: message lacks %q: %q", f.ref, part, l.Message)
		}
	}
	if l.Revision == "" {
		t.Errorf("audit line for %s has no policy revision: %+v", f.ref, l)
	}
	t.Logf("audit: %+v", l)
}

// wantAllowAudit checks the proxy's audit line for an allowed image.
func wantAllowAudit(t *testing.T, p *proxyProc, f fixture, cause string) auditLine {
	t.Helper()
	l := p.waitAudit(t, repoOf(f.ref), f.digest.String())
	if l.Result != "allow" || l.Cause != cause {
		t.Errorf("audit line for %s: result %q cause %q, want allow, %s (message %q)", f.ref, l.Result, l.Cause, cause, l.Message)
	}
	t.Logf("audit: %s %s@%s (%s, identity %q) in %vs", l.Result, l.Image, l.Digest, l.Reason, l.Identity, l.Duration)
	return l
}

// TestGatedManifestRefusals checks the gate's answers on the wire: what is
// served, and the 403 DENIED body of each kind of refusal.
func TestGatedManifestRefusals(t *testing.T) {
	e := setup(t)
	p := e.startGatedProxy(t)

	for _, ref := range []string{legacySignedImage, bundleSignedImage, vendorImage} {
		f := e.gatedFixture(t, ref)
		r := registryGet(t, http.MethodGet, p.addr, manifestPath(ref, ""))
		if r.status != http.StatusOK {
			t.Errorf("GET %s: %d, want 200\n%s", ref, r.status, r.body)
			continue
		}
		if got := r.header.Get("Docker-Content-Digest"); got != f.digest.String() || sha256Digest(r.body) != f.digest.String() {
			t.Errorf("GET %s: Docker-Content-Digest %s, body hashes to %s; want %s", ref, got, sha256Digest(r.body), f.digest)
		}
		l := wantAllowAudit(t, p, f, "policy")
		if ref != vendorImage && !strings.Contains(l.Identity, "release-key") {
			t.Errorf("audit line for %s: identity %q does not name release-key", ref, l.Identity)
		}
	}

	app := e.fixture(t, appImage)
	r := registryGet(t, http.MethodGet, p.addr, manifestPath(appImage, ""))
	msg := wantDenied(t, "GET unsigned "+appImage, r,
		"registry.example/acme/app@"+app.digest.String()+` refused by policy "acme-release": needs 1 of its authorities, 0 passed: release-key: `+unsignedReason+" (looked in: ")
	t.Logf("unsigned: %s", msg)
	var oe ociErrorBody
	_ = json.Unmarshal(r.body, &oe)
	if len(oe.Errors) > 0 {
		// One failing policy: all of it is in the message, which ends with
		// how to ask why; no detail (crane prints it after the message).
		if d := oe.Errors[0].Detail; len(d) > 0 && string(d) != "null" {
			t.Errorf("DENIED detail = %s, want none for one failing policy", d)
		}
	}
	wantUnsignedAudit(t, p, app)

	// By digest and by HEAD too: a HEAD refusal has the status and no body.
	wantDenied(t, "GET unsigned by digest", registryGet(t, http.MethodGet, p.addr, manifestPath(appImage, app.digest.String())), unsignedReason)
	if r := registryGet(t, http.MethodHead, p.addr, manifestPath(appImage, "")); r.status != http.StatusForbidden || r.header.Get("Docker-Content-Digest") != "" {
		t.Errorf("HEAD unsigned %s: %d, Docker-Content-Digest %q; want 403 and none", appImage, r.status, r.header.Get("Docker-Content-Digest"))
	}

	forged := e.gatedFixture(t, forgedImage)
	msg = wantDenied(t, "GET "+forgedImage+" (signed by an untrusted key)", registryGet(t, http.MethodGet, p.addr, manifestPath(forgedImage, "")),
		"registry.example/acme/forged@"+forged.digest.String()+` refused by policy "acme-release"`, "none verified")
	t.Logf("forged: %s", msg)

	hub := e.fixture(t, hubImage)
	msg = wantDenied(t, "GET "+hubImage+" (no policy matches)", registryGet(t, http.MethodGet, p.addr, "/v2/docker.io/library/busybox/manifests/latest"),
		"docker.io/library/busybox@"+hub.digest.String()+" refused: no policy matches docker.io/library/busybox; default deny")
	t.Logf("default deny: %s", msg)
	if l := p.waitAudit(t, "docker.io/library/busybox", hub.digest.String()); l.Result != "deny" || l.Reason != "default-deny" {
		t.Errorf("audit line for %s: %+v, want deny, reason default-deny", hubImage, l)
	}
}

// TestGatedContainerd: containerd, configured from deploy/containerd/
// hosts.toml, pulls a signed image and fails on an unsigned one. containerd
// 1.6 reports only the status, so the reason is checked in the audit log.
func TestGatedContainerd(t *testing.T) {
	e := setup(t)
	ctr := needTool(t, "ctr")
	p := e.startGatedProxy(t)
	socket := startContainerd(t)
	hostsDir := renderHostsDir(t, p.addr, "registry.example")
	base := []string{"--address", socket, "images"}

	signed := e.gatedFixture(t, legacySignedImage)
	run(t, nil, ctr, append(slices.Clone(base), "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", legacySignedImage)...)
	if got := ctrImageDigest(t, ctr, socket, legacySignedImage); got != signed.digest.String() {
		t.Errorf("ctr images ls: %s has digest %q, want %s", legacySignedImage, got, signed.digest)
	}
	out := run(t, nil, ctr, append(slices.Clone(base), "check", "name=="+legacySignedImage)...)
	if !strings.Contains(out, "complete") {
		t.Errorf("ctr images check %s: not complete:\n%s", legacySignedImage, out)
	}
	wantAllowAudit(t, p, signed, "policy")

	unsigned := e.fixture(t, appImage)
	r := fails(t, nil, ctr, append(slices.Clone(base), "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", appImage)...)
	if !strings.Contains(r.stderr, "403") {
		t.Errorf("ctr pull %s: stderr does not mention the 403:\n%s", appImage, r.stderr)
	}
	if got := ctrImageDigest(t, ctr, socket, appImage); got != "" {
		t.Errorf("ctr images ls lists refused %s (digest %s)", appImage, got)
	}
	wantUnsignedAudit(t, p, unsigned)

	// ctr printed a bare 403 (containerd resolves the tag with HEAD, whose
	// errors have no body): the operator asks the proxy why.
	why := runCmd(t.Context(), nil, e.binary, "why", "--admin", "http://"+p.adminAddr, appImage)
	t.Logf("portcullis why %s:\n%s%s", appImage, why.stdout, why.stderr)
	if code := exitCode(why.err); code != 1 {
		t.Errorf("portcullis why %s: exit %d (%v), want 1 (refused)", appImage, code, why.err)
	}
	for _, want := range []string{unsigned.digest.String(), "REFUSED", `refused by policy "acme-release"`, "no signatures found", "client:"} {
		if !strings.Contains(why.stdout, want) {
			t.Errorf("portcullis why %s does not say %q", appImage, want)
		}
	}
}

// ctrImageDigest is the digest `ctr images ls` lists for ref, or "".
func ctrImageDigest(t *testing.T, ctr, socket, ref string) string {
	t.Helper()
	out := run(t, nil, ctr, "--address", socket, "images", "ls")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == ref {
			return f[2]
		}
	}
	return ""
}

// TestGatedPodman: podman, configured from deploy/registries.conf, pulls an
// image signed with a cosign v3 bundle and shows the DENIED message for an
// unsigned one.
func TestGatedPodman(t *testing.T) {
	e := setup(t)
	podman := needTool(t, "podman")
	p := e.startGatedProxy(t)
	env, global, pull := podmanSetup(t, p.addr)
	pullArgs := func(ref string) []string {
		return append(append(append(slices.Clone(global), "pull", "--quiet"), pull...), ref)
	}

	signed := e.gatedFixture(t, bundleSignedImage)
	run(t, env, podman, pullArgs(bundleSignedImage)...)
	out := run(t, env, podman, append(slices.Clone(global), "image", "inspect", "--format", "{{.Digest}}", bundleSignedImage)...)
	if got := strings.TrimSpace(out); got != signed.digest.String() {
		t.Errorf("podman image inspect %s: digest %q, want %s", bundleSignedImage, got, signed.digest)
	}
	l := wantAllowAudit(t, p, signed, "policy")
	if !strings.Contains(l.Identity, "bundle") {
		t.Errorf("audit line for %s: identity %q does not say the bundle passed", bundleSignedImage, l.Identity)
	}

	r := fails(t, env, podman, pullArgs(appImage)...)
	if !strings.Contains(r.stderr, "refused by policy") && !strings.Contains(r.stderr, "DENIED") {
		t.Errorf("podman pull %s: stderr shows neither the refusal nor DENIED:\n%s", appImage, r.stderr)
	}
	if !strings.Contains(r.stderr, "portcullis why registry.example/acme/app@sha256:") {
		t.Errorf("podman pull %s: the refusal does not say how to ask why:\n%s", appImage, r.stderr)
	}
	wantUnsignedAudit(t, p, e.fixture(t, appImage))
}

// TestGatedSkopeo: skopeo copies a signed image and shows the DENIED
// message for an unsigned one.
func TestGatedSkopeo(t *testing.T) {
	e := setup(t)
	skopeo := needTool(t, "skopeo")
	p := e.startGatedProxy(t)
	env, global := skopeoEnv(t)
	src := func(ref string) string { return "docker://" + p.addr + "/" + ref }

	for _, ref := range []string{legacySignedImage, bundleSignedImage} {
		f := e.gatedFixture(t, ref)
		layout := filepath.Join(t.TempDir(), "layout")
		run(t, env, skopeo, append(slices.Clone(global), "copy", "--preserve-digests", "--src-tls-verify=false", "--src-no-creds",
			src(ref), "oci:"+layout)...)
		assertLayoutTop(t, layout, f.digest)
		for _, l := range f.layers {
			assertBlob(t, layout, l)
		}
	}

	for _, args := range [][]string{
		{"inspect", "--raw", "--tls-verify=false", "--no-creds", src(appImage)},
		{"copy", "--src-tls-verify=false", "--src-no-creds", src(appImage), "oci:" + filepath.Join(t.TempDir(), "refused")},
	} {
		r := fails(t, env, skopeo, append(slices.Clone(global), args...)...)
		if !strings.Contains(r.stderr, "refused by policy") && !strings.Contains(r.stderr, "DENIED") {
			t.Errorf("skopeo %s: stderr shows neither the refusal nor DENIED:\n%s", args[0], r.stderr)
		}
		if !strings.Contains(r.stderr, "portcullis why registry.example/acme/app@sha256:") {
			t.Errorf("skopeo %s: the refusal does not say how to ask why:\n%s", args[0], r.stderr)
		}
	}
	wantUnsignedAudit(t, p, e.fixture(t, appImage))
}

// TestGatedCraneIndex: an index whose digest is signed is served, and so is
// each child by digest (allowed through the allowed parent); an unsigned
// index, and a child of it by digest, are refused.
func TestGatedCraneIndex(t *testing.T) {
	e := setup(t)
	crane := needTool(t, "crane")
	p := e.startGatedProxy(t)
	signed := e.gatedFixture(t, signedIndexImage)
	src := p.addr + "/" + signedIndexImage

	raw := run(t, nil, crane, "manifest", "--insecure", src)
	if got := sha256Digest([]byte(raw)); got != signed.digest.String() {
		t.Errorf("crane manifest %s hashes to %s, want %s", signedIndexImage, got, signed.digest)
	}
	wantAllowAudit(t, p, signed, "policy")
	for platform, child := range signed.children {
		ref := p.addr + "/" + repoOf(signedIndexImage) + "@" + child.String()
		raw := run(t, nil, crane, "manifest", "--insecure", ref)
		if got := sha256Digest([]byte(raw)); got != child.String() {
			t.Errorf("crane manifest %s (%s) hashes to %s", ref, platform, got)
		}
		l := p.waitAudit(t, repoOf(signedIndexImage), child.String())
		if l.Result != "allow" || l.Cause != "allowed-parent" {
			t.Errorf("audit line for child %s: result %q cause %q, want allow, allowed-parent", platform, l.Result, l.Cause)
		}
	}
	// The whole index with every child's blobs.
	layout := filepath.Join(t.TempDir(), "layout")
	run(t, nil, crane, "pull", "--insecure", "--format=oci", src, layout)
	assertLayoutTop(t, layout, signed.digest)
	for _, d := range signed.children {
		assertBlob(t, layout, d)
	}

	unsigned := e.fixture(t, multiImage)
	r := fails(t, nil, crane, "manifest", "--insecure", p.addr+"/"+multiImage)
	if !strings.Contains(r.stderr, "DENIED") || !strings.Contains(r.stderr, unsignedReason) {
		t.Errorf("crane manifest %s: stderr lacks DENIED and %q:\n%s", multiImage, unsignedReason, r.stderr)
	}
	if !strings.Contains(r.stderr, "; to ask why: portcullis why registry.example/acme/multi@sha256:") || strings.Contains(r.stderr, "map[") {
		t.Errorf("crane manifest %s: want the message to end with how to ask why, and no Go map dump:\n%s", multiImage, r.stderr)
	}
	wantUnsignedAudit(t, p, unsigned)
	child := unsigned.children[hostPlatform]
	r = fails(t, nil, crane, "manifest", "--insecure", p.addr+"/"+repoOf(multiImage)+"@"+child.String())
	if !strings.Contains(r.stderr, "DENIED") {
		t.Errorf("crane manifest of a child of the refused index: stderr lacks DENIED:\n%s", r.stderr)
	}
}

// TestGatedVerifyCommand: `portcullis verify` decides without serving, with
// exit codes 0 (allowed), 1 (denied), 2 (no decision); `portcullis policy
// lint` checks the policy file.
func TestGatedVerifyCommand(t *testing.T) {
	e := setup(t)
	pub := e.signedFixtures(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cosign.pub"), string(pub))
	writeFile(t, filepath.Join(dir, "policy.yaml"), gatedPolicy)
	cfg, _, _, err := e.writeProxyConfig(dir, gatedConfig)
	if err != nil {
		t.Fatal(err)
	}

	verify := func(images ...string) (int, []map[string]any, cmdResult) {
		t.Helper()
		args := append([]string{"verify", "--config", cfg, "-o", "json"}, images...)
		t.Logf("$ portcullis %s", strings.Join(args, " "))
		// The binary is built with -race, whose runtime sleeps 1s on a
		// zero exit (atexit_sleep_ms) to catch late races: skip that.
		r := runCmd(t.Context(), []string{"GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0"}, e.binary, args...)
		var out []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("portcullis verify: stdout is not a JSON list (%v)\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
		}
		code := 0
		if r.err != nil {
			code = exitCode(r.err)
		}
		return code, out, r
	}
	for _, tc := range []struct {
		image, decision, cause string
		code                   int
		message                string
	}{
		{legacySignedImage, "allow", "policy", 0, "allowed"},
		{bundleSignedImage, "allow", "policy", 0, "allowed"},
		{appImage, "deny", "policy", 1, unsignedReason},
		{"registry.example/acme/missing:v1", "error", "", 2, "registry.example/acme/missing"},
	} {
		t.Run(tc.image, func(t *testing.T) {
			code, out, r := verify(tc.image)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, r.stdout, r.stderr)
			}
			if len(out) != 1 {
				t.Fatalf("%d results, want 1: %v", len(out), out)
			}
			got := out[0]
			if cause, _ := got["cause"].(string); got["image"] != tc.image || got["decision"] != tc.decision || cause != tc.cause {
				t.Errorf("result %v, want image %s decision %s cause %q", got, tc.image, tc.decision, tc.cause)
			}
			if msg, _ := got["message"].(string); !strings.Contains(msg, tc.message) {
				t.Errorf("message %q lacks %q", msg, tc.message)
			}
			if tc.code != 2 {
				if want := e.gatedFixture(t, tc.image).digest.String(); got["digest"] != want {
					t.Errorf("digest %v, want %s", got["digest"], want)
				}
			}
		})
	}
	// Several at once: the worst outcome sets the exit code.
	if code, out, r := verify(legacySignedImage, appImage); code != 1 || len(out) != 2 {
		t.Errorf("verify signed + unsigned: exit %d with %d results, want 1 with 2\n%s", code, len(out), r.stdout)
	}

	if r := runCmd(t.Context(), nil, e.binary, "policy", "lint", filepath.Join(dir, "policy.yaml")); r.err != nil {
		t.Errorf("portcullis policy lint (good policy): %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, brokenPolicy)
	r := runCmd(t.Context(), nil, e.binary, "policy", "lint", bad)
	if code := exitCode(r.err); code != 1 || !strings.Contains(r.stdout, "missing.pub") {
		t.Errorf("portcullis policy lint (broken policy): exit %d, want 1 and a problem naming missing.pub\n%s%s", code, r.stdout, r.stderr)
	}
}

// brokenPolicy does not load: its authority's key file does not exist.
const brokenPolicy = `policies:
  - name: acme-release
    images: ["registry.example/acme/**"]
    authorities:
      - name: release-key
        key: {path: missing.pub}
default: deny
`

// reloadedPolicy lets acme/app in unsigned; the rest of acme/** must still
// be signed.
const reloadedPolicy = `policies:
  - name: acme-release
    images: ["registry.example/acme/**"]
    excludeImages: ["registry.example/acme/app"]
    authorities:
      - name: release-key
        key: {path: cosign.pub}
  - name: acme-app-unsigned
    images: ["registry.example/acme/app"]
    allow: unsigned
default: deny
`

// TestGatedPolicyReload: the proxy re-reads its policy file (every 2s); a
// new policy takes effect without a restart, and a broken one keeps the
// last good policy in force and makes /readyz say degraded.
func TestGatedPolicyReload(t *testing.T) {
	e := setup(t)
	p := e.startGatedProxy(t)
	policyPath := filepath.Join(p.dir, "policy.yaml")
	app := e.fixture(t, appImage)
	get := func(ref string) httpResult { return registryGet(t, http.MethodGet, p.addr, manifestPath(ref, "")) }

	wantDenied(t, "before the reload: "+appImage, get(appImage), unsignedReason)
	if got := readyz(t, p); got != "ready" {
		t.Errorf("/readyz before the reload: %q, want ready", got)
	}

	writeAtomic(t, policyPath, reloadedPolicy)
	start := time.Now()
	for {
		r := get(appImage)
		if r.status == http.StatusOK {
			if sha256Digest(r.body) != app.digest.String() {
				t.Errorf("after the reload: %s body hashes to %s, want %s", appImage, sha256Digest(r.body), app.digest)
			}
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s still refused 10s after the policy allowed it: %d\n%s", appImage, r.status, r.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("reload took effect after %v", time.Since(start).Round(time.Millisecond))
	if !p.logContains(`"msg":"policy reloaded"`) {
		t.Error(`log has no "policy reloaded" line`)
	}
	// The app's blobs follow its now-allowed manifest.
	if r := registryGet(t, http.MethodGet, p.addr, blobPath(appImage, app.layers[0])); r.status != http.StatusOK || sha256Digest(r.body) != app.layers[0].String() {
		t.Errorf("blob %s of the now-allowed %s: %d", app.layers[0], appImage, r.status)
	}
	if !p.eventuallyAudit(t, func(l auditLine) bool {
		return l.Image == repoOf(appImage) && l.Digest == app.digest.String() && l.Result == "allow" && l.Reason == "allowed-unsigned"
	}) {
		t.Errorf("no audit line allows %s@%s as allowed-unsigned after the reload", repoOf(appImage), app.digest)
	}
	wantDenied(t, "after the reload: "+ociImage+" (still under acme-release)", get(ociImage), unsignedReason)

	writeAtomic(t, policyPath, brokenPolicy)
	var status string
	start = time.Now()
	for {
		if status = readyz(t, p); strings.HasPrefix(status, "degraded:") {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("/readyz 10s after a broken policy was written: %q, want degraded: ...", status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("/readyz: %s", status)
	if !strings.Contains(status, "missing.pub") {
		t.Errorf("/readyz does not say what is wrong (missing.pub): %q", status)
	}
	if !p.logContains("policy reload failed") {
		t.Error(`log has no "policy reload failed" line`)
	}
	// The last good policy (reloadedPolicy) stays in force.
	if r := get(appImage); r.status != http.StatusOK {
		t.Errorf("with a broken policy file: %s %d, want 200 (last good policy)\n%s", appImage, r.status, r.body)
	}
	wantDenied(t, "with a broken policy file: "+ociImage, get(ociImage), unsignedReason)
	if bundle := get(bundleSignedImage); bundle.status != http.StatusOK {
		t.Errorf("with a broken policy file: signed %s %d, want 200\n%s", bundleSignedImage, bundle.status, bundle.body)
	}

	// Fixing the file makes the proxy ready again.
	writeAtomic(t, policyPath, reloadedPolicy)
	start = time.Now()
	for status = readyz(t, p); status != "ready"; status = readyz(t, p) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("/readyz 10s after the policy was fixed: %q, want ready", status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readyz is the admin /readyz body, trimmed; anything but 200 fails.
func readyz(t *testing.T, p *proxyProc) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+p.adminAddr+"/readyz", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz: %s\n%s", resp.Status, b)
	}
	return strings.TrimSpace(string(b))
}

// TestGatedBlobs: a blob is served only when an allowed manifest of the same
// repository references it.
func TestGatedBlobs(t *testing.T) {
	e := setup(t)
	crane := needTool(t, "crane")
	p := e.startGatedProxy(t)
	app := e.fixture(t, appImage)

	// Fetched straight by digest, before and after its manifest was refused.
	for _, when := range []string{"before the manifest", "after the manifest was refused"} {
		for _, d := range append(slices.Clone(app.layers), configDigest(t, app)) {
			r := registryGet(t, http.MethodGet, p.addr, blobPath(appImage, d))
			wantDenied(t, "GET unsigned blob "+when, r,
				"registry.example/acme/app@"+d.String()+" refused: no manifest allowed in registry.example/acme/app references this blob")
			if r := registryGet(t, http.MethodHead, p.addr, blobPath(appImage, d)); r.status != http.StatusForbidden {
				t.Errorf("HEAD unsigned blob %s %s: %d, want 403", d, when, r.status)
			}
		}
		if when == "before the manifest" {
			wantDenied(t, "GET unsigned manifest", registryGet(t, http.MethodGet, p.addr, manifestPath(appImage, "")), unsignedReason)
		}
	}
	r := fails(t, nil, crane, "blob", "--insecure", p.addr+"/"+repoOf(appImage)+"@"+app.layers[0].String())
	if !strings.Contains(r.stderr, "DENIED") {
		t.Errorf("crane blob of the unsigned image: stderr lacks DENIED:\n%s", r.stderr)
	}

	// A signed image's blob: refused until its manifest is allowed, then
	// served; and only in its own repository.
	signed := e.gatedFixture(t, legacySignedImage)
	layer := signed.layers[0]
	wantDenied(t, "GET signed blob before its manifest", registryGet(t, http.MethodGet, p.addr, blobPath(legacySignedImage, layer)), "no manifest allowed")
	if r := registryGet(t, http.MethodGet, p.addr, manifestPath(legacySignedImage, "")); r.status != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", legacySignedImage, r.status, r.body)
	}
	if r := registryGet(t, http.MethodGet, p.addr, blobPath(legacySignedImage, layer)); r.status != http.StatusOK || sha256Digest(r.body) != layer.String() {
		t.Errorf("GET signed blob after its manifest: %d, body hashes to %s, want 200 and %s", r.status, sha256Digest(r.body), layer)
	}
	wantDenied(t, "GET the signed image's blob through another repository", registryGet(t, http.MethodGet, p.addr, blobPath(appImage, layer)), "no manifest allowed")
}

// configDigest is the config blob digest of an image fixture.
func configDigest(t *testing.T, f fixture) v1.Hash {
	t.Helper()
	m, err := v1.ParseManifest(bytes.NewReader(f.raw))
	if err != nil {
		t.Fatalf("%s: %v", f.ref, err)
	}
	return m.Config.Digest
}

// TestGatedSignatureMaterial: what cosign and admission controllers read
// through the proxy (the .sig tag, the referrers API and fallback tag, the
// bundle and the payloads) is served; a runnable image stored where
// signatures live is not exempt.
func TestGatedSignatureMaterial(t *testing.T) {
	e := setup(t)
	p := e.startGatedProxy(t)
	get := func(path string) httpResult { return registryGet(t, http.MethodGet, p.addr, path) }

	legacy := e.gatedFixture(t, legacySignedImage)
	sigTag := signing.LegacyTag(legacy.digest)
	r := get(manifestPath(legacySignedImage, sigTag))
	if r.status != http.StatusOK {
		t.Fatalf("GET %s:%s: %d\n%s", repoOf(legacySignedImage), sigTag, r.status, r.body)
	}
	sig, err := v1.ParseManifest(bytes.NewReader(r.body))
	if err != nil || len(sig.Layers) != 1 {
		t.Fatalf("the .sig manifest: %v\n%s", err, r.body)
	}
	if r := get(blobPath(legacySignedImage, sig.Layers[0].Digest)); r.status != http.StatusOK || sha256Digest(r.body) != sig.Layers[0].Digest.String() {
		t.Errorf("GET the signature payload blob: %d\n%s", r.status, r.body)
	}
	if l := p.waitAudit(t, repoOf(legacySignedImage), sha256Digest(r.body)); l.Result != "allow" || l.Cause != "signature-artifact" {
		t.Errorf("audit line for the .sig manifest: result %q cause %q, want allow, signature-artifact", l.Result, l.Cause)
	}

	bundle := e.gatedFixture(t, bundleSignedImage)
	for _, path := range []string{
		"/v2/" + repoOf(bundleSignedImage) + "/referrers/" + bundle.digest.String(),
		manifestPath(bundleSignedImage, "sha256-"+bundle.digest.Hex),
	} {
		r := get(path)
		var idx v1.IndexManifest
		// (verify/signing's bundle manifest has no artifactType, so the
		// index lists the config's media type; cosign v3 sets the bundle's.)
		if r.status != http.StatusOK || json.Unmarshal(r.body, &idx) != nil || len(idx.Manifests) != 1 {
			t.Errorf("GET %s: %d, want an index listing the bundle\n%s", path, r.status, r.body)
			continue
		}
		ref := get(manifestPath(bundleSignedImage, idx.Manifests[0].Digest.String()))
		m, err := v1.ParseManifest(bytes.NewReader(ref.body))
		if ref.status != http.StatusOK || err != nil || len(m.Layers) != 1 || m.Layers[0].MediaType != signing.BundleType {
			t.Errorf("GET the bundle manifest %s: %d (%v), want a manifest with one %s layer\n%s", idx.Manifests[0].Digest, ref.status, err, signing.BundleType, ref.body)
			continue
		}
		if b := get(blobPath(bundleSignedImage, m.Layers[0].Digest)); b.status != http.StatusOK || !strings.Contains(string(b.body), "dsseEnvelope") {
			t.Errorf("GET the bundle blob %s: %d\n%s", m.Layers[0].Digest, b.status, b.body)
		}
	}

	// Runnable, unsigned images where signature material lives: under a
	// .sig tag, under a referrers fallback tag, and as a referrer (with a
	// subject). Each is refused: as material its subject is not served in
	// acme/smuggled (the subject of the referrer lives in another
	// repository), and as an image it is unsigned.
	pushed, err := pushSmuggled(t, e)
	if err != nil {
		t.Fatal(err)
	}
	for what, ref := range pushed {
		why := `refused by policy "acme-release"`
		if strings.Contains(what, "subject") {
			why = "which is not served here"
		}
		wantDenied(t, "GET "+what, get("/v2/registry.example/acme/smuggled/manifests/"+ref), why)
	}
}

// pushSmuggled pushes a runnable unsigned image to registry.example/
// acme/smuggled under a .sig tag and a referrers fallback tag, and the same
// image with a subject (the legacy-signed image) by digest. It returns the
// references to ask for, by description.
func pushSmuggled(t *testing.T, e *env) (map[string]string, error) {
	t.Helper()
	img, err := ociImageOf("linux", runtime.GOARCH, random.WithSource(rand.NewSource(signedSeed+1)))
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	signed := e.gatedFixture(t, legacySignedImage)
	withSubject := mutate.Subject(img, v1.Descriptor{MediaType: signed.mediaType, Digest: signed.digest, Size: int64(len(signed.raw))}).(v1.Image)
	sd, err := withSubject.Digest()
	if err != nil {
		return nil, err
	}
	addr := e.upstreams["registry.example"].addr
	refs := map[string]string{
		"a runnable image under a .sig tag":               signing.LegacyTag(d),
		"a runnable image under a referrers fallback tag": "sha256-" + d.Hex,
		"a runnable image with a subject":                 sd.String(),
	}
	for _, tag := range []string{signing.LegacyTag(d), "sha256-" + d.Hex} {
		if err := pushTo(t.Context(), addr, "acme/smuggled:"+tag, img); err != nil {
			return nil, err
		}
	}
	ref, err := name.NewDigest(addr+"/acme/smuggled@"+sd.String(), name.Insecure)
	if err != nil {
		return nil, err
	}
	return refs, remote.Write(ref, withSubject, remote.WithContext(t.Context()))
}

// TestGatedKeyRotation: replacing the key file the policy names takes
// effect on the next reload; an image signed only by the old key is refused
// from then on, verdicts cached under the old policy notwithstanding.
func TestGatedKeyRotation(t *testing.T) {
	e := setup(t)
	p := e.startGatedProxy(t)
	signed := e.gatedFixture(t, legacySignedImage)
	if r := registryGet(t, http.MethodGet, p.addr, manifestPath(legacySignedImage, "")); r.status != http.StatusOK {
		t.Fatalf("GET %s before the rotation: %d\n%s", legacySignedImage, r.status, r.body)
	}
	other, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := other.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(p.dir, "cosign.pub"), string(pem))
	start := time.Now()
	var r httpResult
	for r = registryGet(t, http.MethodGet, p.addr, manifestPath(legacySignedImage, "")); r.status == http.StatusOK; r = registryGet(t, http.MethodGet, p.addr, manifestPath(legacySignedImage, "")) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s still served 10s after its key was replaced", legacySignedImage)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("key rotation took effect after %v", time.Since(start).Round(time.Millisecond))
	wantDenied(t, "GET "+legacySignedImage+" after the key rotation", r,
		"registry.example/acme/signed-legacy@"+signed.digest.String()+` refused by policy "acme-release"`, "none verified")
	wantDenied(t, "GET its layer after the key rotation", registryGet(t, http.MethodGet, p.addr, blobPath(legacySignedImage, signed.layers[0])), "no manifest allowed")
	if !p.logContains(`"msg":"policy reloaded"`) {
		t.Error(`log has no "policy reloaded" line`)
	}
}
