package gate

// Regression tests of the gate-integrity defects, each against ggcr's real
// registry with real cosign-format signatures (verify/signing); the
// model-based test (cmd/portcullis/model_test.go) covers them in random
// combinations through the proxy.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/signing"
)

func (f *gateFixture) repoRef(t testing.TB) name.Repository {
	t.Helper()
	repo, err := name.NewRepository(f.host+"/acme/app", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// put pushes raw manifest bytes at ref and returns them as pushed.
func (f *gateFixture) put(t testing.TB, ref string, b []byte) *pushed {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+f.host+"/v2/acme/app/manifests/"+ref, bytes.NewReader(b))
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(b, &probe)
	req.Header.Set("Content-Type", probe.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %d", ref, resp.StatusCode)
	}
	return &pushed{digest: digestOfBytes(b), bytes: b}
}

func (f *gateFixture) blob(t testing.TB, b []byte, mt string) v1.Descriptor {
	t.Helper()
	if err := remote.WriteLayer(f.repoRef(t), static.NewLayer(b, types.MediaType(mt))); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: types.MediaType(mt), Digest: digestOfBytes(b), Size: int64(len(b))}
}

func artifactJSON(config v1.Descriptor, layers []v1.Descriptor, subject *v1.Descriptor) []byte {
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociManifestType, "config": config, "layers": layers, "subject": subject})
	return bytes.Replace(b, []byte(`,"subject":null`), nil, 1)
}

// want checks a verdict: want(t, "what", true)(gate call).
func want(t *testing.T, what string, allowed bool) func(*Verdict, error) *Verdict {
	return func(v *Verdict, err error) *Verdict {
		t.Helper()
		if err != nil || v.Allowed() != allowed {
			t.Fatalf("%s: want allowed=%v, got %v %+v", what, allowed, err, v)
		}
		return v
	}
}

var mtManifest = types.MediaType(ociManifestType)

// Defect 1: a bogus legacy signature (payload: the refused image's own
// manifest, signature: junk) served as signature material granted the
// refused image's digest, which then passed the manifest check.
func TestBogusSignatureUnlocksNothing(t *testing.T) {
	f := newGateFixture(t, false)
	ctx := context.Background()
	payload := f.blob(t, f.unsigned.bytes, oci.CosignSimpleSigning)
	payload.Annotations = map[string]string{"dev.cosignproject.cosign/signature": "anVuaw=="}
	cfg := f.blob(t, []byte(`{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`), "application/vnd.oci.image.config.v1+json")
	for _, subject := range []*pushed{f.unsigned, f.bundled} { // attached to the refused image, and to an allowed one (signed by a bundle)
		tag := signing.LegacyTag(subject.digest)
		sig := f.put(t, tag, artifactJSON(cfg, []v1.Descriptor{payload}, nil))
		v, err := f.gate.Manifest(ctx, &ManifestRequest{Repo: f.repo, Reference: tag, Digest: sig.digest, Bytes: sig.bytes})
		if subject == f.unsigned {
			want(t, "the .sig of a refused image", false)(v, err)
		} else {
			want(t, "well-shaped material of an allowed image", true)(v, err)
			// Its payload blob (the refused manifest's digest) is served as
			// a material blob, bounded by its size...
			bv, err := f.gate.Blob(ctx, f.repo, f.unsigned.digest)
			want(t, "the material's own blob", true)(bv, err)
			if bv.MaxBytes != int64(len(f.unsigned.bytes)) {
				t.Fatalf("material blob bound = %d, want %d", bv.MaxBytes, len(f.unsigned.bytes))
			}
		}
		// ...but never as a manifest, by digest or by tag.
		want(t, "the refused image by digest", false)(f.decideErr(ctx, f.unsigned.digest.String(), f.unsigned))
		want(t, "the refused image by tag", false)(f.decideErr(ctx, "unsigned", f.unsigned))
		bv, err := f.gate.Blob(ctx, f.repo, f.unsigned.layers[0])
		want(t, "the refused image's layer", false)(bv, err)
	}
}

func (f *gateFixture) decideErr(ctx context.Context, ref string, p *pushed) (*Verdict, error) {
	return f.gate.Manifest(ctx, &ManifestRequest{Repo: f.repo, Reference: ref, Digest: p.digest, Bytes: p.bytes})
}

// Defect 2: a signature-shaped referrer by digest whose "bundle" layer is a
// refused image's real layer made that layer downloadable.
func TestReferrerOfRefusedImageGrantsNothing(t *testing.T) {
	f := newGateFixture(t, true)
	ctx := context.Background()
	layer := v1.Descriptor{MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json", Digest: f.unsigned.layers[0], Size: 100}
	empty := f.blob(t, []byte("{}"), oci.OCIEmptyJSON)
	art := f.put(t, digestOfBytes(artifactJSON(empty, []v1.Descriptor{layer}, &v1.Descriptor{MediaType: mtManifest, Digest: f.unsigned.digest, Size: int64(len(f.unsigned.bytes))})).String(),
		artifactJSON(empty, []v1.Descriptor{layer}, &v1.Descriptor{MediaType: mtManifest, Digest: f.unsigned.digest, Size: int64(len(f.unsigned.bytes))}))
	v, err := f.decideErr(ctx, art.digest.String(), art)
	want(t, "a referrer of a refused image", false)(v, err)
	if v.Cause != CauseSubjectRefused {
		t.Fatalf("cause %s, want %s", v.Cause, CauseSubjectRefused)
	}
	bv, err := f.gate.Blob(ctx, f.repo, f.unsigned.layers[0])
	want(t, "the refused image's layer", false)(bv, err)
}

// Defect 3: a runnable image dressed as signature material (an image
// config, its layer relabelled simple-signing, a subject) at a normal tag.
func TestDressedImageIsNotMaterial(t *testing.T) {
	f := newGateFixture(t, true)
	ctx := context.Background()
	img, _ := f.reader.Manifest(ctx, f.repo, f.unsigned.digest.String())
	var m struct {
		Config v1.Descriptor   `json:"config"`
		Layers []v1.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(img.Bytes, &m); err != nil {
		t.Fatal(err)
	}
	m.Layers[0].MediaType = oci.CosignSimpleSigning
	subject := &v1.Descriptor{MediaType: mtManifest, Digest: f.legacy.digest, Size: int64(len(f.legacy.bytes))}
	dressed := f.put(t, "dressed", artifactJSON(m.Config, m.Layers[:1], subject))
	want(t, "by its tag", false)(f.decideErr(ctx, "dressed", dressed))
	v, err := f.decideErr(ctx, dressed.digest.String(), dressed)
	want(t, "by digest", false)(v, err)
	if !v.NotFound() || !strings.Contains(v.Why, "not a referrer") {
		t.Fatalf("by digest: want 404 saying it is not a referrer, got %+v", v.Judgement)
	}
	bv, err := f.gate.Blob(ctx, f.repo, m.Layers[0].Digest)
	want(t, "its layer", false)(bv, err)
}

// Defect 4: an unsigned index tagged v1 and sha256-<zeros>; the verdict for
// the fallback tag was reused for v1 and the digest.
func TestVerdictKeyCoversTheReference(t *testing.T) {
	f := newGateFixture(t, false)
	ctx := context.Background()
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndexType, "manifests": []v1.Descriptor{
		{MediaType: mtManifest, Digest: f.unsigned.digest, Size: int64(len(f.unsigned.bytes))}}})
	zeros := "sha256-" + strings.Repeat("0", 64)
	p := f.put(t, "v1", idx)
	f.put(t, zeros, idx)
	want(t, "the fallback tag of nothing", false)(f.decideErr(ctx, zeros, p))
	want(t, "v1", false)(f.decideErr(ctx, "v1", p))
	want(t, "by digest", false)(f.decideErr(ctx, p.digest.String(), p))
	want(t, "the child", false)(f.decideErr(ctx, f.unsigned.digest.String(), f.unsigned))
}

// Defect 6: a grant lives as long as a verdict that serves its parent: a
// manifest served from a fresh verdict keeps its layers for the pull that
// follows, even when the verdict then expires (and in an outage, within
// staleIfError).
func TestGrantOutlivesTheServedVerdict(t *testing.T) {
	for _, outage := range []bool{false, true} {
		t.Run(fmt.Sprintf("outage=%v", outage), func(t *testing.T) {
			clock := &testClock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
			f := newGateFixture(t, true, WithClock(clock.Now), WithVerdictTTL(200*time.Millisecond), WithStaleIfError(time.Hour))
			ctx := context.Background()
			want(t, "decide", true)(f.decideErr(ctx, "legacy", f.legacy))
			clock.advance(150 * time.Millisecond)
			want(t, "served from the verdict", true)(f.decideErr(ctx, "legacy", f.legacy))
			clock.advance(100 * time.Millisecond)
			f.reader.fail.Store(outage)
			bv, err := f.gate.Blob(ctx, f.repo, f.legacy.layers[0])
			want(t, "the layer after the verdict expired", true)(bv, err)
			if outage {
				want(t, "the manifest, stale in the outage", true)(f.decideErr(ctx, "legacy", f.legacy))
			}
		})
	}
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// The store is bounded by construction: verdicts plus grants, evicted
// together, least recently used first.
func TestMemoryStoreBounds(t *testing.T) {
	s := NewMemoryStore(10)
	ctx := context.Background()
	now := time.Now()
	repo := verify.Repository{Registry: "r", Name: "a"}
	put := func(i int, grants int) {
		st := &Stored{Key: fmt.Sprint(i), Repo: repo, Digest: digestOfBytes([]byte(fmt.Sprint(i))), Fresh: now.Add(time.Hour), Expires: now.Add(time.Hour),
			Judgement: &Judgement{Decision: Allow}}
		for g := range grants {
			st.Grants = append(st.Grants, Grant{Kind: GrantBlob, Digest: digestOfBytes([]byte(fmt.Sprint(i, "/", g)))})
		}
		if err := s.Put(ctx, st, now); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		put(i, 3)
	}
	if n, cost := s.Len(); cost > 10 || n != 2 {
		t.Fatalf("store holds %d verdicts at cost %d, want 2 at most 10", n, cost)
	}
	if gs, _ := s.Granting(ctx, repo, digestOfBytes([]byte("0/0")), GrantBlob, now); len(gs) != 0 {
		t.Fatal("an evicted verdict's grant is still found")
	}
	if gs, _ := s.Granting(ctx, repo, digestOfBytes([]byte("99/0")), GrantBlob, now); len(gs) != 1 {
		t.Fatal("a live verdict's grant is not found")
	}
	if gs, _ := s.Granting(ctx, repo, digestOfBytes([]byte("99/0")), GrantChild, now); len(gs) != 0 {
		t.Fatal("a blob grant satisfied a child check")
	}
	if len(s.index) > 6 {
		t.Fatalf("grant index holds %d keys for 2 verdicts", len(s.index))
	}
}

// Defect 5: a referrers answer is served only as an OCI index of OCI
// manifests of a served subject; an unsigned image manifest stored under
// the fallback tag is not served as one.
func TestReferrersAnswerHasItsShape(t *testing.T) {
	f := newGateFixture(t, false)
	ctx := context.Background()
	v, err := f.gate.Referrers(ctx, f.repo, f.legacy.digest, f.unsigned.bytes)
	if err != nil || v.Allowed() || !v.NotFound() {
		t.Fatalf("an image manifest as the referrers answer of an allowed image: want 404, got %v %+v", err, v)
	}
	good, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndexType, "manifests": []v1.Descriptor{}})
	want(t, "an empty index for an allowed image", true)(f.gate.Referrers(ctx, f.repo, f.legacy.digest, good))
	v = want(t, "an empty index for a refused image", false)(f.gate.Referrers(ctx, f.repo, f.unsigned.digest, good))
	if v.NotFound() {
		t.Fatal("the referrers of a refused image: want 403, got 404")
	}
}

// Defect 8 (the grant part): signature-shaped artifacts with more layers
// than maxArtifactEntries are refused, and a refusal grants nothing, so
// distinct huge artifacts cannot grow the store.
func TestHugeArtifactsGrantNothing(t *testing.T) {
	store := NewMemoryStore(1 << 20)
	f := newGateFixture(t, true, WithVerdictStore(store))
	ctx := context.Background()
	empty := f.blob(t, []byte("{}"), oci.OCIEmptyJSON)
	subject := &v1.Descriptor{MediaType: mtManifest, Digest: f.bundled.digest, Size: int64(len(f.bundled.bytes))}
	_, before := store.Len()
	for i := range 5 {
		layers := make([]v1.Descriptor, 25_000)
		for j := range layers {
			layers[j] = v1.Descriptor{MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json", Digest: digestOfBytes(fmt.Appendf(nil, "%d/%d", i, j)), Size: 100}
		}
		b := artifactJSON(empty, layers, subject)
		art := f.put(t, digestOfBytes(b).String(), b)
		v := want(t, "a 25,000-layer referrer", false)(f.decideErr(ctx, art.digest.String(), art))
		if !v.NotFound() || !strings.Contains(v.Why, "25000 layers") {
			t.Fatalf("want 404 naming the layer count, got %+v", v.Judgement)
		}
	}
	// Each costs its two denials (as material, as an image), with no
	// grants; the allowed subject's verdict is stored once, with its own.
	if _, after := store.Len(); after-before > 5*2+5 {
		t.Fatalf("five refused huge artifacts cost %d store entries", after-before)
	}
	if gs, _ := store.Granting(ctx, f.repo, digestOfBytes([]byte("0/0")), GrantMaterialBlob, time.Now()); len(gs) != 0 {
		t.Fatal("a refused artifact's layer is granted")
	}
}

// The dev.sigstore.bundle.predicateType annotation only orders candidates:
// a signature bundle annotated as something else is still examined, and
// its verified statement decides.
func TestBundleAnnotationOnlyOrders(t *testing.T) {
	f := newGateFixture(t, true)
	ctx := context.Background()
	repo := f.repoRef(t)
	img := f.push(t, repo, "mislabelled")
	sig, err := f.signer.BundleImage(f.desc(t, repo, "mislabelled"))
	if err != nil {
		t.Fatal(err)
	}
	sig = mutate.Annotations(sig, map[string]string{"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"}).(v1.Image)
	sig = mutate.Subject(sig, f.desc(t, repo, "mislabelled")).(v1.Image) // Annotations drops it
	d, _ := sig.Digest()
	if err := remote.Write(repo.Digest(d.String()), sig); err != nil {
		t.Fatal(err)
	}
	v, err := f.decideErr(ctx, "mislabelled", img)
	if err != nil || !v.Allowed() {
		t.Fatalf("an image signed by a bundle annotated as provenance: %v %s %v", err, v.Why, v.Detail())
	}
}

// Expired verdicts are dropped as the store is written, with their grants.
func TestMemoryStoreSweepsExpired(t *testing.T) {
	s := NewMemoryStore(1000)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	repo := verify.Repository{Registry: "r", Name: "a"}
	for i := range 100 {
		st := &Stored{Key: fmt.Sprint(i), Repo: repo, Digest: digestOfBytes([]byte(fmt.Sprint(i))),
			Fresh: now.Add(time.Second), Expires: now.Add(time.Second), Judgement: &Judgement{Decision: Deny},
			Grants: []Grant{{Kind: GrantBlob, Digest: digestOfBytes([]byte(fmt.Sprint("g", i)))}}}
		if err := s.Put(ctx, st, now.Add(time.Duration(i)*time.Second/10)); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.Len(); n > 15 {
		t.Fatalf("%d verdicts held after writes 10 s past the first ones expired, want the expired ones dropped", n)
	}
}
