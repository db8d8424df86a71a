package store

import (
	"bytes"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/signing"
)

const keyPolicy = `policies:
  - name: acme-release
    images: ["registry.example/acme/**"]
    authorities:
      - name: release-key
        key: {path: KEY}
`

// gated is a world whose proxy verifies with a real gate against a key
// policy; reload switches the policy to trust another key.
type gated struct {
	*world
	signer *signing.Signer
	g      *gate.Gate
	dir    string
}

func newGated(t *testing.T) *gated {
	t.Helper()
	signer, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	gw := &gated{signer: signer, dir: t.TempDir()}
	pem, _ := signer.PublicKeyPEM()
	other, _ := signing.NewSigner()
	otherPEM, _ := other.PublicKeyPEM()
	for file, b := range map[string][]byte{"cosign.pub": pem, "other.pub": otherPEM} {
		if err := os.WriteFile(filepath.Join(gw.dir, file), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw.writePolicy(t, "cosign.pub")
	w := &world{t: t, dir: t.TempDir(), tagTTL: time.Minute, maxStale: time.Hour, now: time.Now}
	w.gate = func(r *Reader) proxy.Gate {
		g, err := gate.New(r, gw.snapshot(t))
		if err != nil {
			t.Fatal(err)
		}
		gw.g = g
		return g
	}
	gw.world = w
	startWorld(t, w)
	return gw
}

func (gw *gated) writePolicy(t *testing.T, key string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(gw.dir, "policy.yaml"), []byte(strings.ReplaceAll(keyPolicy, "KEY", key)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (gw *gated) snapshot(t *testing.T) *gate.Snapshot {
	t.Helper()
	p, err := policyfile.Load(filepath.Join(gw.dir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := gate.NewSnapshot(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pushSigned pushes repo:tag, signed in the given format ("legacy",
// "bundle" or "" for unsigned), and returns its digest.
func (gw *gated) pushSigned(repo, tag, format string) string {
	t := gw.t
	t.Helper()
	img := gw.push(repo, tag, 2, 4<<10)
	r, err := name.NewRepository(strings.TrimPrefix(gw.up.URL, "http://")+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d := mustDigest(t, img)
	switch format {
	case "legacy":
		err = gw.signer.SignLegacy(r, d)
	case "bundle":
		var desc *remote.Descriptor
		if desc, err = remote.Get(r.Tag(tag)); err == nil {
			err = gw.signer.SignBundle(r, desc.Descriptor)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestDecidesOfflineFromStoredMaterial: an allowed image's signature
// material is stored with it; after a restart, pulls by digest read no
// manifest or blob by digest upstream; with the upstream failing, stored
// images are decided again from their stored material (allowed under the
// policy, refused at once under one that revokes them); a refused image
// leaves nothing on disk, not even its digest.
func TestDecidesOfflineFromStoredMaterial(t *testing.T) {
	gw := newGated(t)
	legacy := gw.pushSigned("acme/app", "legacy", "legacy")
	bundled := gw.pushSigned("acme/app", "bundled", "bundle")
	unsigned := gw.pushSigned("acme/app", "unsigned", "")
	gw.mustPull("acme/app:legacy")
	gw.mustPull("acme/app:bundled")
	if _, err := gw.pull("acme/app:unsigned"); err == nil {
		t.Fatal("an unsigned image was served")
	}
	gw.settle()
	gw.nothingOnDisk(strings.TrimPrefix(unsigned, "sha256:"))

	gw.restart()
	gw.counter.reset()
	gw.mustPull("acme/app@" + legacy)
	gw.mustPull("acme/app@" + bundled)
	if n := gw.counter.count("GET manifest-digest") + gw.counter.count("GET blob"); n != 0 {
		t.Fatalf("warm pulls by digest after a restart read %d manifests or blobs by digest upstream: %s", n, describe(gw.counter))
	}

	gw.restart()
	gw.counter.setDown(true)
	later := time.Now().Add(2 * gw.tagTTL)
	gw.now = func() time.Time { return later }
	for _, ref := range []string{"acme/app@" + legacy, "acme/app@" + bundled, "acme/app:legacy"} {
		if _, err := gw.pull(ref); err != nil {
			t.Fatalf("with the upstream failing, %s: %v", ref, err)
		}
	}
	if _, err := gw.pull("acme/app@" + unsigned); err == nil {
		t.Fatal("with the upstream failing, the unsigned image was served")
	}

	gw.writePolicy(t, "other.pub")
	gw.g.SetSnapshot(gw.snapshot(t))
	resp, body, err := gw.get("/v2/acme/app/manifests/" + legacy)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a stored image the new policy revokes, upstream failing: %d %s", resp.StatusCode, body)
	}
	d, _ := v1.NewHash(legacy)
	if _, ok := gw.store.Manifest(repoOf("acme/app"), d); ok {
		t.Fatal("a refused image's manifest is still stored")
	}
	if _, ok := gw.store.record(repoOf("acme/app"), d); ok {
		t.Fatal("a refused image's signature material is still stored")
	}
}

const sourcedPolicy = `policies:
  - name: acme-release
    images: ["registry.example/acme/**"]
    authorities:
      - name: release-key
        signaturesFrom: registry.example/sigs/acme
        key: {path: KEY}
`

// TestDecidesOfflineFromSourcedMaterial: signatures read from another
// repository (an authority's signaturesFrom) are kept with the image they
// are about, under its material; with the upstream failing after a
// restart, the image is decided again from them; a policy that revokes it
// refuses it and drops them.
func TestDecidesOfflineFromSourcedMaterial(t *testing.T) {
	gw := newGated(t)
	write := func(key string) {
		p := strings.ReplaceAll(sourcedPolicy, "KEY", key)
		if err := os.WriteFile(filepath.Join(gw.dir, "policy.yaml"), []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
		gw.g.SetSnapshot(gw.snapshot(t))
	}
	write("cosign.pub")
	sigs, err := name.NewRepository(strings.TrimPrefix(gw.up.URL, "http://")+"/sigs/acme", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	legacyImg := gw.push("acme/app", "legacy", 2, 4<<10)
	legacy := mustDigest(t, legacyImg)
	if err := gw.signer.SignLegacy(sigs, legacy); err != nil {
		t.Fatal(err)
	}
	bundledImg := gw.push("acme/app", "bundled", 2, 4<<10)
	bundled := mustDigest(t, bundledImg)
	desc, err := remote.Get(sigs.Registry.Repo("acme/app").Tag("bundled"))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.signer.SignBundle(sigs, desc.Descriptor); err != nil {
		t.Fatal(err)
	}
	// Signed in its own repository only: not what the policy reads.
	ownImg := gw.push("acme/app", "own", 2, 4<<10)
	own := mustDigest(t, ownImg)
	appRepo, _ := name.NewRepository(sigs.Registry.Name()+"/acme/app", name.Insecure)
	if err := gw.signer.SignLegacy(appRepo, own); err != nil {
		t.Fatal(err)
	}
	gw.mustPull("acme/app:legacy")
	gw.mustPull("acme/app:bundled")
	if _, err := gw.pull("acme/app:own"); err == nil {
		t.Fatal("an image signed only in its own repository was served")
	}
	gw.settle()
	for _, d := range []v1.Hash{legacy, bundled} {
		rec := filepath.Join(gw.world.dir, "repos", registryName, "acme/app", "_material", d.Algorithm, d.Hex,
			"from", registryName, "sigs/acme", recordFile)
		if _, err := os.Stat(rec); err != nil {
			t.Fatalf("the material read from sigs/acme about %s is not kept with it: %v", d, err)
		}
	}

	gw.restart()
	gw.counter.setDown(true)
	later := time.Now().Add(2 * gw.tagTTL)
	gw.now = func() time.Time { return later }
	for _, ref := range []string{"acme/app@" + legacy.String(), "acme/app@" + bundled.String(), "acme/app:legacy"} {
		if _, err := gw.pull(ref); err != nil {
			t.Fatalf("with the upstream failing, %s: %v", ref, err)
		}
	}
	if _, err := gw.pull("acme/app@" + own.String()); err == nil {
		t.Fatal("with the upstream failing, an image signed only in its own repository was served")
	}

	write("other.pub")
	resp, body, err := gw.get("/v2/acme/app/manifests/" + legacy.String())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a stored image the new policy revokes, upstream failing: %d %s", resp.StatusCode, body)
	}
	if _, ok := gw.store.record(repoOf("sigs/acme"), legacy); ok {
		t.Fatal("a refused image's material from sigs/acme is still stored")
	}
	if _, ok := gw.store.record(repoOf("sigs/acme"), bundled); !ok {
		t.Fatal("the material of an image not asked for since is gone")
	}
}

// oneImageTwice puts policy in force, pushes one image as acme/app:v1 and
// as other:v1, and signs it into sigs/acme; it returns its digest.
func (gw *gated) oneImageTwice(t *testing.T, policy, other string) v1.Hash {
	t.Helper()
	if err := os.WriteFile(filepath.Join(gw.dir, "policy.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	gw.g.SetSnapshot(gw.snapshot(t))
	host := strings.TrimPrefix(gw.up.URL, "http://")
	img := gw.push("acme/app", "v1", 2, 4<<10)
	d := mustDigest(t, img)
	tag, err := name.NewTag(host+"/"+other+":v1", name.Insecure)
	if err == nil {
		err = remote.Write(tag, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	sigs, _ := name.NewRepository(host+"/sigs/acme", name.Insecure)
	if err := gw.signer.SignLegacy(sigs, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSourcedIndexSurvivesOneHolder: two images of one digest in two
// repositories, both reading signatures from sigs/acme, each keep a copy
// of what was read there; dropping the one found first leaves the other
// found.
func TestSourcedIndexSurvivesOneHolder(t *testing.T) {
	gw := newGated(t)
	d := gw.oneImageTwice(t, strings.ReplaceAll(sourcedPolicy, "KEY", "cosign.pub"), "acme/mirror")
	gw.mustPull("acme/app:v1")
	gw.settle()
	gw.mustPull("acme/mirror:v1")
	gw.settle()
	for _, r := range []string{"acme/app", "acme/mirror"} {
		rec := filepath.Join(gw.world.dir, "repos", registryName, r, "_material", d.Algorithm, d.Hex, "from", registryName, "sigs/acme", recordFile)
		if _, err := os.Stat(rec); err != nil {
			t.Fatalf("%s holds no sigs/acme record: %v", r, err)
		}
	}
	if _, ok := gw.store.record(repoOf("sigs/acme"), d); !ok {
		t.Fatal("no record before any drop")
	}
	holder, _ := gw.store.indexed(recordKey("repos/"+registryName+"/sigs/acme", d))
	victim := "acme/mirror"
	if strings.Contains(holder, "/acme/app/") {
		victim = "acme/app"
	}
	gw.store.drop(repoOf(victim), d)
	gw.settle()
	if _, ok := gw.store.record(repoOf("sigs/acme"), d); !ok {
		t.Fatalf("after dropping %s@%s, the other image's sigs/acme record is on disk but record() no longer finds it", victim, d)
	}
}

// twoPolicies is sourcedPolicy beside a policy of its own for team/.
var twoPolicies = strings.ReplaceAll(sourcedPolicy, "KEY", "cosign.pub") + `  - name: team
    images: ["registry.example/team/**"]
    authorities:
      - name: team-key
        key: {path: cosign.pub}
`

// TestRefusedRepositorysMaterialIsNotKept: one digest is refused in
// team/app (no signature there) and then allowed in acme/app (signed in
// sigs/acme, its policy's signaturesFrom): what the gate read in team/app
// for the refusal is kept nowhere; only what was read in sigs/acme is.
func TestRefusedRepositorysMaterialIsNotKept(t *testing.T) {
	gw := newGated(t)
	d := gw.oneImageTwice(t, twoPolicies, "team/app")
	if _, err := gw.pull("team/app:v1"); err == nil {
		t.Fatal("team/app served without a signature in team/app")
	}
	gw.mustPull("acme/app:v1")
	gw.settle()
	_ = filepath.WalkDir(gw.world.dir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && strings.Contains(filepath.ToSlash(path), "/team/") {
			t.Errorf("something of team/app, where %s was refused, is stored: %s", d, path)
		}
		return err
	})
	if _, ok := gw.store.record(repoOf("sigs/acme"), d); !ok {
		t.Error("what was read in sigs/acme about the allowed image is not kept")
	}
}

// TestByDigestFindsSignaturesWhileFetching: on a first GET by digest the
// gate looks for the image's signatures while the proxy fetches its
// manifest. The upstream holds the manifest GET until the .sig lookup for
// that digest arrives, which happens before the manifest is answered only
// if discovery started ahead (else the hold times out and the GET is
// answered late).
func TestByDigestFindsSignaturesWhileFetching(t *testing.T) {
	gw := newGated(t)
	d := gw.pushSigned("acme/app", "v1", "legacy")
	sigTag := "sha256-" + strings.TrimPrefix(d, "sha256:") + ".sig"
	seen := make(chan struct{})
	var once sync.Once
	var overlapped atomic.Bool
	gw.counter.mu.Lock()
	gw.counter.before = func(r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/"+sigTag):
			once.Do(func() { close(seen) })
		case strings.HasSuffix(r.URL.Path, "/manifests/"+d):
			select {
			case <-seen:
				overlapped.Store(true)
			case <-time.After(5 * time.Second):
			}
		}
	}
	gw.counter.mu.Unlock()
	resp, body, err := gw.get("/v2/acme/app/manifests/" + d)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET by digest: %v %v %s", resp, err, body)
	}
	if !overlapped.Load() {
		t.Fatal("the manifest was fetched before the signatures were looked for: discovery did not start ahead")
	}
	resp, body, err = gw.get("/v2/acme/app/manifests/" + gw.pushSigned("acme/app", "unsigned", ""))
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned by digest: %v %v %s", resp, err, body)
	}
}

var _ verify.Keeper = (*Reader)(nil)

// TestRebuiltPayloadIsKept: a legacy signature whose payload names the
// image as clients name it is verified without reading the payload (the
// gate rebuilds it from its digest), and the payload is still kept with
// the image's material, as a payload read is: after a restart with the
// upstream failing, the image is decided again.
func TestRebuiltPayloadIsKept(t *testing.T) {
	gw := newGated(t)
	img := gw.push("acme/app", "v1", 1, 1<<10)
	d := mustDigest(t, img)
	payload := gw.signAsClients(gw.signer, "acme/app", d)

	gw.counter.reset()
	gw.mustPull("acme/app:v1")
	gw.settle()
	if n := gw.counter.blobGets[payload.String()]; n != 0 {
		t.Fatalf("the payload was read %d times upstream; want 0 (rebuilt from its digest)", n)
	}
	gw.keptAndDecidedOffline("acme/app", d, payload)
}

// TestSourcedRebuiltPayloadIsKept: a payload in the policy's
// signaturesFrom repository naming the image as clients pull it is
// rebuilt, not read; it is kept with the allowed image's material from
// that repository, and after a restart with the upstream failing the image
// is decided again. Signed there by a key the policy does not trust, its
// image is refused and neither its digest nor its payload is on disk.
func TestSourcedRebuiltPayloadIsKept(t *testing.T) {
	gw := newGated(t)
	if err := os.WriteFile(filepath.Join(gw.dir, "policy.yaml"), []byte(strings.ReplaceAll(sourcedPolicy, "KEY", "cosign.pub")), 0o600); err != nil {
		t.Fatal(err)
	}
	gw.g.SetSnapshot(gw.snapshot(t))
	d := mustDigest(t, gw.push("acme/app", "v1", 1, 1<<10))
	payload := gw.signAsClientsIn(gw.signer, "sigs/acme", "acme/app", d)
	untrusted, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	bad := mustDigest(t, gw.push("acme/app", "bad", 1, 1<<10))
	badPayload := gw.signAsClientsIn(untrusted, "sigs/acme", "acme/app", bad)

	gw.counter.reset()
	gw.mustPull("acme/app:v1")
	if _, err := gw.pull("acme/app:bad"); err == nil {
		t.Fatal("an image signed in sigs/acme with an untrusted key was served")
	}
	gw.settle()
	for _, p := range []v1.Hash{payload, badPayload} {
		if n := gw.counter.blobGets[p.String()]; n != 0 {
			t.Errorf("payload %s was read %d times upstream; want 0 (rebuilt from its digest)", p, n)
		}
	}
	rec := filepath.Join(gw.world.dir, "repos", registryName, "acme/app", "_material", d.Algorithm, d.Hex, "from", registryName, "sigs/acme", recordFile)
	if _, err := os.Stat(rec); err != nil {
		t.Fatalf("the material read from sigs/acme is not kept with the image: %v", err)
	}
	gw.nothingOnDisk(bad.Hex, badPayload.Hex)
	gw.keptAndDecidedOffline("acme/app", d, payload)
}

// TestRefusedRebuiltPayloadIsNotKept: a rebuilt payload of a refused image
// (signed with a key the policy does not trust) leaves nothing on disk:
// not the payload, and not the image's digest.
func TestRefusedRebuiltPayloadIsNotKept(t *testing.T) {
	gw := newGated(t)
	d := mustDigest(t, gw.push("acme/app", "v1", 1, 1<<10))
	untrusted, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	payload := gw.signAsClients(untrusted, "acme/app", d)
	gw.counter.reset()
	if _, err := gw.pull("acme/app:v1"); err == nil {
		t.Fatal("an image signed with an untrusted key was served")
	}
	gw.settle()
	if n := gw.counter.blobGets[payload.String()]; n != 0 {
		t.Errorf("the payload was read %d times upstream; want 0 (rebuilt)", n)
	}
	if f, _, ok := gw.store.Blob(payload); ok {
		f.Close()
		t.Error("the refused image's rebuilt payload is stored")
	}
	gw.nothingOnDisk(d.Hex, payload.Hex)
}

// signAsClients pushes a legacy signature of d in repo by s whose payload
// names the image as clients pull it (registryName/repo), and returns the
// payload's digest.
func (gw *gated) signAsClients(s *signing.Signer, repo string, d v1.Hash) v1.Hash {
	gw.t.Helper()
	return gw.signAsClientsIn(s, repo, repo, d)
}

// signAsClientsIn is signAsClients with the signature pushed to into (a
// signaturesFrom repository, as cosign's COSIGN_REPOSITORY puts it).
func (gw *gated) signAsClientsIn(s *signing.Signer, into, repo string, d v1.Hash) v1.Hash {
	t := gw.t
	t.Helper()
	r, err := name.NewRepository(strings.TrimPrefix(gw.up.URL, "http://")+"/"+into, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ref := registryName + "/" + repo
	if err := s.SignLegacyAs(r, ref, d); err != nil {
		t.Fatal(err)
	}
	payload, _, err := v1.SHA256(bytes.NewReader(signing.Payload(ref, d)))
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// nothingOnDisk fails the test if any file under the store's directory
// has one of hexes (a refused image's digest, its payload's) in its path
// or its contents.
func (gw *gated) nothingOnDisk(hexes ...string) {
	t := gw.t
	t.Helper()
	_ = filepath.WalkDir(gw.world.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, hex := range hexes {
			if strings.Contains(path, hex) || bytes.Contains(b, []byte(hex)) {
				t.Errorf("on disk after a refusal: %s names %s", path, hex)
			}
		}
		return nil
	})
}

// keptAndDecidedOffline checks that the rebuilt payload of repo@d is
// stored with its material, and that after a restart with the upstream
// failing (tags stale) repo@d is decided again without reading it.
func (gw *gated) keptAndDecidedOffline(repo string, d, payload v1.Hash) {
	t := gw.t
	t.Helper()
	if f, _, ok := gw.store.Blob(payload); !ok {
		t.Fatal("the rebuilt payload is not stored with the image's material")
	} else {
		f.Close()
	}
	gw.restart()
	gw.counter.setDown(true)
	later := time.Now().Add(2 * gw.tagTTL)
	gw.now = func() time.Time { return later }
	if _, err := gw.pull(repo + "@" + d.String()); err != nil {
		t.Fatalf("with the upstream failing, after a restart: %v", err)
	}
	if n := gw.counter.blobGets[payload.String()]; n != 0 {
		t.Fatalf("the payload was read %d times upstream", n)
	}
}
