package main

// The world of the model-based test (model_test.go): a real registry (ggcr's
// pkg/registry on loopback) filled with signed, unsigned and wrongly signed
// images, multi-arch indexes, cosign signatures in both formats (and .sig
// signatures pushed to another repository, as COSIGN_REPOSITORY does, for
// a policy that reads them from there: signaturesFrom), and every
// decoy an attacker who can push to the upstream might try. Each object
// pushed is recorded with the ground truth the oracle needs: what it is
// (a runnable image, an index, well-shaped signature material, a decoy),
// which subject material is about, which keys validly signed what.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/portcullis-dev/portcullis/verify/signing"
)

const (
	modelRegistry = "registry.model"
	ociManifest   = "application/vnd.oci.image.manifest.v1+json"
	ociIndex      = "application/vnd.oci.image.index.v1+json"
	simpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	bundleLayer   = "application/vnd.dev.sigstore.bundle.v0.3+json"
	dsseLayer     = "application/vnd.dsse.envelope.v1+json"
	emptyConfig   = "application/vnd.oci.empty.v1+json"
)

// modelRepos are the world's repositories: images live in the first
// modelSource; modelSource itself (sigs/acme) holds only signatures cosign
// put there for images of the others (COSIGN_REPOSITORY), which a policy
// may read (signaturesFrom).
var modelRepos = []string{"acme/r0", "acme/r1", "acme/r2", "sigs/acme"}

const modelSource = 3

// objKind is what an object really is, whatever it claims.
type objKind int

const (
	kImage    objKind = iota // a runnable image (config with os and architecture, tar layers)
	kIndex                   // an index of runnable images
	kMaterial                // signature material of a shape the rules accept for its kind
	kDecoy                   // looks like signature material, but its shape is refused
)

// object is one manifest pushed to the world.
type object struct {
	name     string // what made it, for reproductions
	repo     int
	digest   v1.Hash
	bytes    []byte
	kind     objKind
	as       string    // for kMaterial: "sig", "att", "referrer", "fallback"
	subject  *v1.Hash  // for material and decoys: what it is about (its subject field, or the tag it was first stored at)
	subjects []v1.Hash // every subject it was stored for (the same bytes may be replayed at another tag)
	blobs    []v1.Descriptor
	children []v1.Hash
}

// world is one randomly built upstream and its ground truth.
type world struct {
	t    testing.TB
	rng  *rand.Rand
	srv  *httptest.Server
	host string
	api  bool // the registry has the referrers API
	// store: the proxy has a content store (cache.dir), whose content is
	// checked after every operation (see checkStore).
	store bool
	// startPolicy: the index of the modelPolicies entry in force at start.
	startPolicy int
	keys        [3]*signing.Signer
	objects     []*object
	byDigest    map[string]*object      // repo index + digest
	tags        []modelTag              // every tag ever pushed or worth asking for
	current     map[string]v1.Hash      // repo/tag -> digest now
	signed      map[string]map[int]bool // repo index + digest -> keys with a valid signature
	bundles     map[string]map[int]bool // the same, of bundle signatures only
	// attested: repo index + digest -> keys with a valid provenance
	// attestation (a bundle referrer) whose predicate meets the model's
	// condition.
	attested map[string]map[int]bool
	// sourced: subject digest -> the key whose .sig in modelSource signs
	// it now (its payload names the image's own repository).
	sourced  map[string]map[int]bool
	images   map[int][]*object    // runnable images by repo, for moving tags
	listedBy map[string][]*object // repo+digest -> indexes listing it
	blobList []blobKey            // every blob digest known, for requests
	blobSeen map[string]bool
	subjects map[string]map[string]int // repo -> subject digest -> referrers pushed
}

type modelTag struct {
	repo int
	tag  string
}

type blobKey struct {
	repo int // the repository the blob was pushed in (requests may ask another)
	d    v1.Hash
	size int64
}

func objKey(repo int, d v1.Hash) string { return fmt.Sprintf("%d@%s", repo, d) }

// newWorld builds a world from seed: the same seed gives the same objects
// in the same order (signature bytes differ, as ECDSA signatures do).
func newWorld(t testing.TB, seed int64) *world {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	w := &world{
		t: t, rng: rng, api: rng.Intn(2) == 0, store: seed&2 != 0,
		byDigest: map[string]*object{}, current: map[string]v1.Hash{},
		signed: map[string]map[int]bool{}, bundles: map[string]map[int]bool{}, attested: map[string]map[int]bool{}, sourced: map[string]map[int]bool{}, images: map[int][]*object{},
		listedBy: map[string][]*object{}, blobSeen: map[string]bool{},
		subjects: map[string]map[string]int{},
	}
	w.srv = httptest.NewServer(registry.New(registry.WithReferrersSupport(w.api), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(w.srv.Close)
	w.host = strings.TrimPrefix(w.srv.URL, "http://")
	for i := range w.keys {
		s, err := signing.NewSigner()
		if err != nil {
			t.Fatal(err)
		}
		w.keys[i] = s
	}
	for r := range modelSource {
		n := 2 + rng.Intn(3)
		for i := range n {
			img := w.pushImage(r, fmt.Sprintf("v%d", i))
			if rng.Intn(3) == 0 {
				w.attestRandomly(r, img)
			}
			switch rng.Intn(6) {
			case 0: // unsigned
			case 1:
				w.signLegacy(r, img, 0)
			case 2:
				w.signBundle(r, img, 0)
			case 3:
				w.signLegacy(r, img, 1)
			case 4:
				w.signBundle(r, img, 2) // a key no policy trusts
			case 5:
				w.signLegacy(r, img, 0)
				w.signBundle(r, img, 1)
			}
			// Into sigs/acme (cosign's COSIGN_REPOSITORY): often for acme/r1,
			// whose policy may read from there, sometimes for the others,
			// whose policies never do. Key 2 is one no policy trusts.
			if r == 1 && rng.Intn(2) == 0 {
				w.signInto(r, img, []int{0, 0, 1, 2}[rng.Intn(4)])
			} else if rng.Intn(4) == 0 {
				w.signInto(r, img, rng.Intn(3))
			}
		}
		if rng.Intn(2) == 0 {
			idx := w.pushIndex(r, "multi", 2)
			if rng.Intn(3) > 0 {
				w.signLegacy(r, idx, rng.Intn(2))
			}
		}
	}
	w.recordFallbackIndexes()
	w.addDecoys()
	// Tags worth asking for that nobody pushed.
	for r := range modelRepos {
		w.tags = append(w.tags, modelTag{r, "sha256-" + strings.Repeat("0", 64)}, modelTag{r, "nosuch"})
		for _, o := range w.objects {
			if rng.Intn(8) == 0 {
				w.tags = append(w.tags, modelTag{r, "sha256-" + o.digest.Hex + ".sig"}, modelTag{r, "sha256-" + o.digest.Hex})
			}
		}
	}
	w.startPolicy = rng.Intn(len(modelPolicies))
	return w
}

func (w *world) repoRef(r int) name.Repository {
	repo, err := name.NewRepository(w.host+"/"+modelRepos[r], name.Insecure)
	if err != nil {
		w.t.Fatal(err)
	}
	return repo
}

// runnable makes a small image with an os and architecture, as real ones have.
func (w *world) runnable() v1.Image {
	img, err := random.Image(int64(64+w.rng.Intn(512)), int64(1+w.rng.Intn(2)), random.WithSource(rand.NewSource(w.rng.Int63())))
	if err != nil {
		w.t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		w.t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", []string{"amd64", "arm64"}[w.rng.Intn(2)]
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		w.t.Fatal(err)
	}
	return mutate.MediaType(mutate.ConfigMediaType(img, types.OCIConfigJSON), types.OCIManifestSchema1)
}

// add records an object pushed (by remote.Write or putManifest).
func (w *world) add(o *object) *object {
	if o.subject != nil {
		o.subjects = []v1.Hash{*o.subject}
	}
	if prev, ok := w.byDigest[objKey(o.repo, o.digest)]; ok {
		prev.subjects = append(prev.subjects, o.subjects...)
		return prev
	}
	w.objects = append(w.objects, o)
	w.byDigest[objKey(o.repo, o.digest)] = o
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(o.bytes, &m); err != nil {
		w.t.Fatal(err)
	}
	if m.Config != nil {
		o.blobs = append(o.blobs, *m.Config)
	}
	o.blobs = append(o.blobs, m.Layers...)
	for _, d := range m.Manifests {
		o.children = append(o.children, d.Digest)
		w.listedBy[objKey(o.repo, d.Digest)] = append(w.listedBy[objKey(o.repo, d.Digest)], o)
	}
	for _, b := range o.blobs {
		if k := objKey(o.repo, b.Digest); !w.blobSeen[k] {
			w.blobSeen[k] = true
			w.blobList = append(w.blobList, blobKey{o.repo, b.Digest, b.Size})
		}
	}
	return o
}

func (w *world) tagged(r int, tag string, d v1.Hash) {
	k := modelRepos[r] + ":" + tag
	if _, ok := w.current[k]; !ok {
		w.tags = append(w.tags, modelTag{r, tag})
	}
	w.current[k] = d
}

func (w *world) pushImage(r int, tag string) *object {
	img := w.runnable()
	if err := remote.Write(w.repoRef(r).Tag(tag), img); err != nil {
		w.t.Fatal(err)
	}
	o := w.add(&object{name: "image " + tag, repo: r, digest: mustDigest(w.t, img), bytes: mustRaw(w.t, img), kind: kImage})
	w.tagged(r, tag, o.digest)
	w.images[r] = append(w.images[r], o)
	return o
}

func (w *world) pushIndex(r int, tag string, n int) *object {
	var adds []mutate.IndexAddendum
	for range n {
		img := w.runnable()
		adds = append(adds, mutate.IndexAddendum{Add: img})
		if err := remote.Write(w.repoRef(r).Digest(mustDigest(w.t, img).String()), img); err != nil {
			w.t.Fatal(err)
		}
		w.add(&object{name: "child of " + tag, repo: r, digest: mustDigest(w.t, img), bytes: mustRaw(w.t, img), kind: kImage})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	if err := remote.WriteIndex(w.repoRef(r).Tag(tag), idx); err != nil {
		w.t.Fatal(err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		w.t.Fatal(err)
	}
	d, _ := idx.Digest()
	o := w.add(&object{name: "index " + tag, repo: r, digest: d, bytes: raw, kind: kIndex})
	w.tagged(r, tag, d)
	return o
}

func (w *world) markSigned(r int, d v1.Hash, key int) {
	k := objKey(r, d)
	if w.signed[k] == nil {
		w.signed[k] = map[int]bool{}
	}
	w.signed[k][key] = true
}

// signLegacy pushes key's cosign .sig signature of o (replacing any).
func (w *world) signLegacy(r int, o *object, key int) {
	w.pushSig(r, r, o, key, fmt.Sprintf("key %d .sig of %s", key, o.name))
	w.markSigned(r, o.digest, key)
}

// signInto pushes key's cosign .sig of o, an image of r, into modelSource,
// as cosign sign with COSIGN_REPOSITORY does: its payload names o's own
// repository (as clients pull it). It replaces any .sig of o's digest there.
func (w *world) signInto(r int, o *object, key int) {
	w.pushSig(modelSource, r, o, key, fmt.Sprintf("key %d .sig of %s in %s", key, o.name, modelRepos[modelSource]))
	w.sourced[o.digest.String()] = map[int]bool{key: true}
}

// pushSig pushes key's cosign .sig of o, an image of r whose name its
// payload gives, to repository into at o's .sig tag, recorded as name.
func (w *world) pushSig(into, r int, o *object, key int, name string) {
	img, err := w.keys[key].LegacyImage(modelRegistry+"/"+modelRepos[r], o.digest)
	if err != nil {
		w.t.Fatal(err)
	}
	tag := signing.LegacyTag(o.digest)
	if err := remote.Write(w.repoRef(into).Tag(tag), img); err != nil {
		w.t.Fatal(err)
	}
	subject := o.digest
	w.add(&object{name: name, repo: into, digest: mustDigest(w.t, img), bytes: mustRaw(w.t, img), kind: kMaterial, as: "sig", subject: &subject})
	w.tagged(into, tag, mustDigest(w.t, img))
}

// signBundle pushes key's cosign v3 bundle referrer of o.
func (w *world) signBundle(r int, o *object, key int) {
	desc := v1.Descriptor{MediaType: types.MediaType(mediaTypeOf(o.bytes)), Digest: o.digest, Size: int64(len(o.bytes))}
	img, err := w.keys[key].BundleImage(desc)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := remote.Write(w.repoRef(r).Digest(mustDigest(w.t, img).String()), img); err != nil {
		w.t.Fatal(err)
	}
	subject := o.digest
	w.add(&object{name: fmt.Sprintf("key %d bundle of %s", key, o.name), repo: r, digest: mustDigest(w.t, img), bytes: mustRaw(w.t, img), kind: kMaterial, as: "referrer", subject: &subject})
	w.markSigned(r, o.digest, key)
	k := objKey(r, o.digest)
	if w.bundles[k] == nil {
		w.bundles[k] = map[int]bool{}
	}
	w.bundles[k][key] = true
	w.noteReferrer(r, o.digest)
}

// Provenance predicates: one meeting the model policy's condition, one not.
const (
	goodProvenance = `{"buildDefinition":{"externalParameters":{"workflow":{"repository":"https://github.com/acme/app"}}}}`
	badProvenance  = `{"buildDefinition":{"externalParameters":{"workflow":{"repository":"https://github.com/evil/app"}}}}`
	slsaV1         = "https://slsa.dev/provenance/v1"
)

// attestRandomly pushes one of: a good provenance attestation of o by a
// trusted key, one by an untrusted key, one whose predicate fails the
// condition, or a decoy: a good statement about another image of the
// repository pushed as o's referrer (its artifact subject lies).
func (w *world) attestRandomly(r int, o *object) {
	switch w.rng.Intn(4) {
	case 0:
		w.attest(r, o, o, w.rng.Intn(2), goodProvenance)
	case 1:
		w.attest(r, o, o, 2, goodProvenance)
	case 2:
		w.attest(r, o, o, 0, badProvenance)
	case 3:
		if others := w.images[r]; len(others) > 1 {
			w.attest(r, o, others[0], 0, goodProvenance)
		}
	}
}

// attest pushes key's SLSA attestation about the image about, with
// predicate, as a bundle referrer of o.
func (w *world) attest(r int, o, about *object, key int, predicate string) {
	desc := v1.Descriptor{MediaType: types.MediaType(mediaTypeOf(o.bytes)), Digest: o.digest, Size: int64(len(o.bytes))}
	img, err := w.keys[key].AttestationImage(desc, slsaV1, predicate)
	if err != nil {
		w.t.Fatal(err)
	}
	if about != o {
		aboutDesc := v1.Descriptor{MediaType: types.MediaType(mediaTypeOf(about.bytes)), Digest: about.digest, Size: int64(len(about.bytes))}
		// The statement names about; the manifest's subject names o.
		lie, err := w.keys[key].AttestationImage(aboutDesc, slsaV1, predicate)
		if err != nil {
			w.t.Fatal(err)
		}
		img = mutate.Subject(lie, desc).(v1.Image)
	}
	if err := remote.Write(w.repoRef(r).Digest(mustDigest(w.t, img).String()), img); err != nil {
		w.t.Fatal(err)
	}
	subject := o.digest
	w.add(&object{name: fmt.Sprintf("key %d attestation about %s as referrer of %s", key, about.name, o.name), repo: r, digest: mustDigest(w.t, img),
		bytes: mustRaw(w.t, img), kind: kMaterial, as: "referrer", subject: &subject})
	if about == o && predicate == goodProvenance {
		k := objKey(r, o.digest)
		if w.attested[k] == nil {
			w.attested[k] = map[int]bool{}
		}
		w.attested[k][key] = true
	}
	w.noteReferrer(r, o.digest)
}

// overwriteFallback notes that the fallback tag of subject was replaced:
// without the referrers API, its bundle signatures cannot be found any more
// (a key that also signed with a .sig still counts).
func (w *world) overwriteFallback(r int, subject v1.Hash) {
	if w.api {
		return
	}
	k := objKey(r, subject)
	for key := range w.bundles[k] {
		if !w.legacyBy(r, subject, key) {
			delete(w.signed[k], key)
		}
	}
	delete(w.bundles, k)
	delete(w.attested, k) // attestations are bundles too
}

func (w *world) legacyBy(r int, subject v1.Hash, key int) bool {
	d, ok := w.current[modelRepos[r]+":"+"sha256-"+subject.Hex+".sig"]
	if !ok {
		return false
	}
	o := w.byDigest[objKey(r, d)]
	return o != nil && o.kind == kMaterial && o.as == "sig" && strings.HasPrefix(o.name, fmt.Sprintf("key %d ", key)) &&
		o.subject != nil && *o.subject == subject
}

func (w *world) noteReferrer(r int, subject v1.Hash) {
	if w.subjects[modelRepos[r]] == nil {
		w.subjects[modelRepos[r]] = map[string]int{}
	}
	w.subjects[modelRepos[r]][subject.String()]++
}

// recordFallbackIndexes records the referrers fallback indexes ggcr wrote
// for a registry without the referrers API.
func (w *world) recordFallbackIndexes() {
	if w.api {
		return
	}
	for r, repo := range modelRepos {
		for _, s := range slices.Sorted(maps.Keys(w.subjects[repo])) {
			d, _ := v1.NewHash(s)
			tag := "sha256-" + d.Hex
			raw, dd := w.getManifest(r, tag)
			if raw == nil {
				continue
			}
			subject := d
			w.add(&object{name: "fallback index of " + s[:15], repo: r, digest: dd, bytes: raw, kind: kMaterial, as: "fallback", subject: &subject})
			w.tagged(r, tag, dd)
		}
	}
}

func (w *world) getManifest(r int, ref string) ([]byte, v1.Hash) {
	req, _ := http.NewRequest(http.MethodGet, w.srv.URL+"/v2/"+modelRepos[r]+"/manifests/"+ref, nil)
	req.Header.Set("Accept", ociIndex+","+ociManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, v1.Hash{}
	}
	b, _ := io.ReadAll(resp.Body)
	return b, sha(b)
}

// putManifest pushes raw manifest bytes at ref (a tag or a digest).
func (w *world) putManifest(r int, ref string, b []byte) v1.Hash {
	req, _ := http.NewRequest(http.MethodPut, w.srv.URL+"/v2/"+modelRepos[r]+"/manifests/"+ref, bytes.NewReader(b))
	req.Header.Set("Content-Type", mediaTypeOf(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		w.t.Fatalf("PUT manifest %s: %d", ref, resp.StatusCode)
	}
	return sha(b)
}

func (w *world) putBlob(r int, b []byte, mt string) v1.Descriptor {
	l := static.NewLayer(b, types.MediaType(mt))
	if err := remote.WriteLayer(w.repoRef(r), l); err != nil {
		w.t.Fatal(err)
	}
	return v1.Descriptor{MediaType: types.MediaType(mt), Digest: sha(b), Size: int64(len(b))}
}

// pick returns a random runnable image of repo r.
func (w *world) pick(r int) *object { imgs := w.images[r]; return imgs[w.rng.Intn(len(imgs))] }

// addDecoys pushes what an attacker who can push to the upstream would.
func (w *world) addDecoys() {
	rng := w.rng
	for r := range modelSource {
		victim, other := w.pick(r), w.pick(r)
		vs, os := victim.digest, other.digest
		junk := base64.StdEncoding.EncodeToString([]byte("not a signature"))
		switch rng.Intn(2) {
		case 0: // 1: a bogus legacy signature whose payload is the victim's manifest
			payload := w.putBlob(r, victim.bytes, simpleSigning)
			cfg := w.putBlob(r, []byte(`{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`), "application/vnd.oci.image.config.v1+json")
			payload.Annotations = map[string]string{"dev.cosignproject.cosign/signature": junk}
			b := manifestJSON(ociManifest, cfg, []v1.Descriptor{payload}, nil)
			subject := vs
			if rng.Intn(2) == 0 {
				subject = os // attached to another image, payload still the victim's bytes
			}
			tag := "sha256-" + subject.Hex + ".sig"
			if _, taken := w.current[modelRepos[r]+":"+tag]; !taken {
				d := w.putManifest(r, tag, b)
				w.add(&object{name: "bogus .sig (payload = manifest of " + victim.name + ")", repo: r, digest: d, bytes: b, kind: kMaterial, as: "sig", subject: &subject})
				w.tagged(r, tag, d)
			}
		case 1: // replayed signature: another image's .sig copied to the victim's tag
			if raw, _ := w.getManifest(r, "sha256-"+os.Hex+".sig"); raw != nil {
				tag := "sha256-" + vs.Hex + ".sig"
				if _, taken := w.current[modelRepos[r]+":"+tag]; !taken {
					d := w.putManifest(r, tag, raw)
					subject := vs
					w.add(&object{name: "replayed .sig of " + other.name, repo: r, digest: d, bytes: raw, kind: kMaterial, as: "sig", subject: &subject})
					w.tagged(r, tag, d)
				}
			}
		}
		// 2: a signature-shaped referrer whose "bundle" layer is a real image layer.
		layer := victim.blobs[len(victim.blobs)-1]
		layer.MediaType = bundleLayer
		subject := []v1.Hash{vs, os}[rng.Intn(2)]
		sdesc := &v1.Descriptor{MediaType: ociManifest, Digest: subject, Size: 1}
		b := manifestJSON(ociManifest, emptyDesc(w, r), []v1.Descriptor{layer}, sdesc)
		d := w.putManifest(r, sha(b).String(), b)
		w.add(&object{name: "referrer with a real layer as bundle (" + victim.name + ")", repo: r, digest: d, bytes: b, kind: kMaterial, as: "referrer", subject: &subject})
		w.noteReferrer(r, subject)

		// 3: a runnable image dressed as signature material, at a normal tag.
		cfg := victim.blobs[0]
		l := victim.blobs[len(victim.blobs)-1]
		l.MediaType = simpleSigning
		b = manifestJSON(ociManifest, cfg, []v1.Descriptor{l}, sdesc)
		d = w.putManifest(r, "dressed", b)
		w.add(&object{name: "runnable image dressed as a signature", repo: r, digest: d, bytes: b, kind: kDecoy, subject: &subject})
		w.tagged(r, "dressed", d)

		// 4: an unsigned index tagged v1idx and sha256-<zeros> (or a real subject's fallback tag).
		var entries []v1.Descriptor
		for _, c := range []*object{victim, other} {
			entries = append(entries, v1.Descriptor{MediaType: ociManifest, Digest: c.digest, Size: int64(len(c.bytes))})
		}
		ib := indexJSON(entries)
		id := w.putManifest(r, "v1idx", ib)
		w.tagged(r, "v1idx", id)
		zeros := "sha256-" + strings.Repeat("0", 64)
		w.putManifest(r, zeros, ib)
		w.tagged(r, zeros, id)
		fb := &object{name: "unsigned index at v1idx and " + zeros[:12], repo: r, digest: id, bytes: ib, kind: kIndex}
		if !w.api && rng.Intn(3) == 0 {
			// Also as the fallback index of another image: it lists only
			// manifests, so it has the shape of one.
			tag := "sha256-" + os.Hex
			w.putManifest(r, tag, ib)
			w.tagged(r, tag, id)
			w.overwriteFallback(r, os)
			subject := os
			fb.kind, fb.as, fb.subject = kMaterial, "fallback", &subject
		}
		w.add(fb)

		// 5: an unsigned image manifest stored under a fallback tag.
		if !w.api && rng.Intn(2) == 0 {
			tag := "sha256-" + vs.Hex
			w.putManifest(r, tag, victim.bytes)
			w.tagged(r, tag, vs)
			w.overwriteFallback(r, vs)
		}

		// A huge artifact: a referrer of an image with too many layers.
		if rng.Intn(3) == 0 {
			var layers []v1.Descriptor
			for i := range 1001 {
				layers = append(layers, v1.Descriptor{MediaType: bundleLayer, Digest: sha(fmt.Appendf(nil, "l%d", i)), Size: 10})
			}
			b := manifestJSON(ociManifest, emptyDesc(w, r), layers, &v1.Descriptor{MediaType: ociManifest, Digest: os, Size: 1})
			d := w.putManifest(r, sha(b).String(), b)
			s := os
			w.add(&object{name: "referrer with 1001 layers", repo: r, digest: d, bytes: b, kind: kDecoy, subject: &s})
			w.noteReferrer(r, os)
		}
	}
}

func emptyDesc(w *world, r int) v1.Descriptor {
	return w.putBlob(r, []byte("{}"), emptyConfig)
}

func manifestJSON(mt string, config v1.Descriptor, layers []v1.Descriptor, subject *v1.Descriptor) []byte {
	b, _ := json.Marshal(struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Config        v1.Descriptor   `json:"config"`
		Layers        []v1.Descriptor `json:"layers"`
		Subject       *v1.Descriptor  `json:"subject,omitempty"`
	}{2, mt, config, layers, subject})
	return b
}

func indexJSON(entries []v1.Descriptor) []byte {
	b, _ := json.Marshal(struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     []v1.Descriptor `json:"manifests"`
	}{2, ociIndex, entries})
	return b
}

func mediaTypeOf(b []byte) string {
	var p struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(b, &p)
	return p.MediaType
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func mustDigest(t testing.TB, img v1.Image) v1.Hash {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustRaw(t testing.TB, img v1.Image) []byte {
	b, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
