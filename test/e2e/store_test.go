//go:build e2e

package e2e

import (
	"math/rand"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/verify/signing"
)

// TestStoreOffline: a proxy with a content store
// in front of an upstream of its own (the CNCF distribution registry).
// podman and containerd pull allowed images, and one is put in the store
// with "cache warm"; then the upstream is stopped. With fresh client
// storage, both clients pull every stored image again, every layer from
// the store; a refused image stays refused and one never seen gets 503;
// a policy reload that revokes a stored image refuses it, the upstream
// still down. One of the images is signed in another repository (its
// policy's signaturesFrom): it is decided offline from what the store
// kept of that repository's signature too.
func TestStoreOffline(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	podman := needTool(t, "podman")
	ctr := needTool(t, "ctr")
	registryBin := needTool(t, "registry")

	up, err := startRegistry(registryBin, filepath.Join(t.TempDir(), "upstream"), "registry.example (store test)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Stop() })
	pub, fixtures, err := pushSigned(t.Context(), up.addr)
	if err != nil {
		t.Fatal(err)
	}
	own := &env{binary: e.binary, upstreams: map[string]*process{"registry.example": up, "docker.io": up}}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cosign.pub"), string(pub))
	other, _ := signing.NewSigner()
	otherPub, _ := other.PublicKeyPEM()
	writeFile(t, filepath.Join(dir, "other.pub"), string(otherPub))
	mirrorPub, mirrored := pushSignedElsewhere(t, up.addr, "mirrored/app:v1", "mirrored/signatures")
	writeFile(t, filepath.Join(dir, "mirror.pub"), string(mirrorPub))
	policy := strings.Replace(gatedPolicy, "default: deny", mirroredPolicy+"default: deny", 1)
	writeFile(t, filepath.Join(dir, "policy.yaml"), policy)
	p := own.startProxyIn(t, dir, gatedConfig+"cache: {dir: store, maxSize: 1GiB, maxStale: 0s}\n")

	pulls := []string{legacySignedImage, signedIndexImage, mirroredImage}
	podmanPull := func(ref string) cmdResult {
		env, global, pull := podmanSetup(t, p.addr)
		return runCmd(t.Context(), env, podman, append(append(append(slices.Clone(global), "pull", "--quiet"), pull...), ref)...)
	}
	ctrPull := func(ref string) cmdResult {
		socket := startContainerd(t)
		hosts := renderHostsDir(t, p.addr, "registry.example", "docker.io")
		return runCmd(t.Context(), nil, ctr, "--address", socket, "images", "pull", "--hosts-dir", hosts, "--snapshotter", "native", ref)
	}
	for _, ref := range pulls {
		if r := podmanPull(ref); r.err != nil {
			t.Fatalf("podman pull %s with the upstream up: %v\n%s", ref, r.err, r.stdout+r.stderr)
		}
		if r := ctrPull(ref); r.err != nil {
			t.Fatalf("ctr pull %s with the upstream up: %v\n%s", ref, r.err, r.stdout+r.stderr)
		}
	}
	if r := podmanPull(forgedImage); r.err == nil {
		t.Fatalf("podman pulled %s, signed by a key the policy does not trust", forgedImage)
	}
	warm := run(t, nil, e.binary, "cache", "warm", "--config", p.configPath, "--admin", "http://"+p.adminAddr, bundleSignedImage)
	if !strings.Contains(warm, "allowed and stored: "+bundleSignedImage) {
		t.Fatalf("cache warm %s:\n%s", bundleSignedImage, warm)
	}

	if err := up.Stop(); err != nil {
		t.Logf("stopping the upstream: %v", err)
	}
	for _, ref := range append(pulls, bundleSignedImage) {
		if r := podmanPull(ref); r.err != nil {
			t.Errorf("podman pull %s with the upstream down: %v\n%s", ref, r.err, r.stdout+r.stderr)
		}
		if r := ctrPull(ref); r.err != nil {
			t.Errorf("ctr pull %s with the upstream down: %v\n%s", ref, r.err, r.stdout+r.stderr)
		}
	}
	// A refused image was never stored: with the upstream down it is not
	// served (403 while the gate's memory has the denial, else 503).
	if r := podmanPull(forgedImage); r.err == nil {
		t.Errorf("podman pulled %s with the upstream down", forgedImage)
	}
	if r := registryGet(t, http.MethodGet, p.addr, manifestPath(forgedImage, "")); r.status == http.StatusOK {
		t.Errorf("%s with the upstream down: served", forgedImage)
	}
	never := registryGet(t, http.MethodGet, p.addr, manifestPath("registry.example/acme/never-seen:v1", ""))
	if never.status != http.StatusServiceUnavailable || !strings.Contains(string(never.body), "not in the content store") {
		t.Errorf("an image never seen, with the upstream down: %d %s, want 503 saying it is not stored", never.status, never.body)
	}

	writeAtomic(t, filepath.Join(dir, "policy.yaml"), strings.Replace(policy, "cosign.pub", "other.pub", 1))
	deadline := time.Now().Add(20 * time.Second)
	for !p.logContains("policy reloaded") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	r := registryGet(t, http.MethodGet, p.addr, manifestPath(legacySignedImage, fixtures[legacySignedImage].digest.String()))
	if r.status != http.StatusForbidden {
		t.Errorf("a stored image the new policy revokes, upstream down: %d %s, want 403", r.status, r.body)
	}
	// The new policy is a new revision: the image signed elsewhere is
	// decided again, offline, from the signature kept from the other
	// repository.
	if r := registryGet(t, http.MethodGet, p.addr, manifestPath(mirroredImage, mirrored.String())); r.status != http.StatusOK {
		t.Errorf("%s, signed in another repository, decided again with the upstream down: %d %s, want 200", mirroredImage, r.status, r.body)
	}
}

// mirroredImage's policy reads its signatures from another repository.
const mirroredImage = "registry.example/mirrored/app:v1"

const mirroredPolicy = `  - name: mirrored
    images: ["registry.example/mirrored/app"]
    authorities:
      - name: mirror-key
        key: {path: mirror.pub}
        signaturesFrom: registry.example/mirrored/signatures
`

// pushSignedElsewhere pushes an image to repoAndTag of the registry at
// addr and signs it (legacy .sig) into the repository sigs, with a new
// key: it returns the key's public PEM and the image's digest.
func pushSignedElsewhere(t *testing.T, addr, repoAndTag, sigs string) ([]byte, v1.Hash) {
	t.Helper()
	signer, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	img, err := ociImageOf("linux", runtime.GOARCH, random.WithSource(rand.NewSource(signedSeed+7)))
	if err != nil {
		t.Fatal(err)
	}
	if err := pushTo(t.Context(), addr, repoAndTag, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(addr+"/"+sigs, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := signer.SignLegacy(repo, d, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	pub, err := signer.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return pub, d
}
