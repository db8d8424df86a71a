package gate

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/signing"
)

// gateFixture: ggcr's registry, a signer, images signed both ways, and a
// Gate deciding under a key policy for <host>/acme/**.
type gateFixture struct {
	host       string
	signer     *signing.Signer
	reader     *countingReader
	gate       *Gate
	dir        string
	repo       verify.Repository
	legacy     *pushed // signed with a legacy .sig
	bundled    *pushed // signed with a bundle referrer
	unsigned   *pushed
	wrongKey   *pushed // signed by another key
	policyFile string
}

type pushed struct {
	digest v1.Hash
	bytes  []byte
	layers []v1.Hash
}

// countingReader counts what discovery asks the registry.
type countingReader struct {
	verify.Reader
	referrers, manifests atomic.Int64
	fail                 atomic.Bool
	// during, when set, runs as discovery asks for referrers (a test's
	// way to act in the middle of a decision).
	during atomic.Pointer[func()]
}

func (c *countingReader) Manifest(ctx context.Context, repo verify.Repository, ref string) (*verify.Manifest, error) {
	c.manifests.Add(1)
	if c.fail.Load() {
		return nil, errors.New("upstream unreachable")
	}
	return c.Reader.Manifest(ctx, repo, ref)
}

func (c *countingReader) Referrers(ctx context.Context, repo verify.Repository, d v1.Hash) (*v1.IndexManifest, error) {
	c.referrers.Add(1)
	if f := c.during.Load(); f != nil {
		(*f)()
	}
	if c.fail.Load() {
		return nil, errors.New("upstream unreachable")
	}
	return c.Reader.Referrers(ctx, repo, d)
}

const keyPolicy = `policies:
  - name: acme-release
    images: ["HOST/acme/**"]
    authorities:
      - name: release-key
        key: {path: cosign.pub}
`

func newGateFixture(t testing.TB, referrersAPI bool, opts ...Option) *gateFixture {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(referrersAPI), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	f := &gateFixture{host: strings.TrimPrefix(srv.URL, "http://"), dir: t.TempDir()}
	f.repo = verify.Repository{Registry: f.host, Name: "acme/app"}
	var err error
	if f.signer, err = signing.NewSigner(); err != nil {
		t.Fatal(err)
	}
	other, _ := signing.NewSigner()
	repo, _ := name.NewRepository(f.host+"/acme/app", name.Insecure)
	f.legacy = f.push(t, repo, "legacy")
	if err := f.signer.SignLegacy(repo, f.legacy.digest); err != nil {
		t.Fatal(err)
	}
	f.bundled = f.push(t, repo, "bundled")
	if err := f.signer.SignBundle(repo, f.desc(t, repo, "bundled")); err != nil {
		t.Fatal(err)
	}
	f.unsigned = f.push(t, repo, "unsigned")
	f.wrongKey = f.push(t, repo, "wrong")
	if err := other.SignLegacy(repo, f.wrongKey.digest); err != nil {
		t.Fatal(err)
	}
	pem, _ := f.signer.PublicKeyPEM()
	writeTestFile(t, f.dir, "cosign.pub", string(pem))
	f.policyFile = writeTestFile(t, f.dir, "policy.yaml", strings.ReplaceAll(keyPolicy, "HOST", f.host))
	f.reader = &countingReader{Reader: newTestReader(t, f.host)}
	f.gate, err = New(f.reader, f.snapshot(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *gateFixture) snapshot(t testing.TB) *Snapshot {
	t.Helper()
	p, err := policyfile.Load(f.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSnapshot(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *gateFixture) push(t testing.TB, repo name.Repository, tag string) *pushed {
	t.Helper()
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag(tag), img); err != nil {
		t.Fatal(err)
	}
	p := &pushed{}
	p.digest, _ = img.Digest()
	p.bytes, _ = img.RawManifest()
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		p.layers = append(p.layers, d)
	}
	return p
}

func (f *gateFixture) desc(t testing.TB, repo name.Repository, tag string) v1.Descriptor {
	t.Helper()
	d, err := remote.Head(repo.Tag(tag))
	if err != nil {
		t.Fatal(err)
	}
	return *d
}

func (f *gateFixture) decide(t testing.TB, ref string, p *pushed) *Verdict {
	t.Helper()
	v, err := f.gate.Manifest(context.Background(), &ManifestRequest{Repo: f.repo, Reference: ref, Digest: p.digest, Bytes: p.bytes})
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return v
}

func writeTestFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGateDecides(t *testing.T) {
	for _, api := range []bool{true, false} {
		t.Run(map[bool]string{true: "referrers API", false: "fallback tag"}[api], func(t *testing.T) {
			f := newGateFixture(t, api)
			for _, tc := range []struct {
				name    string
				p       *pushed
				allowed bool
				want    string
			}{
				{"legacy", f.legacy, true, "verified"},
				{"bundled", f.bundled, true, "verified"},
				{"unsigned", f.unsigned, false, "no signatures found"},
				{"wrong", f.wrongKey, false, `refused by policy "acme-release"`},
			} {
				v := f.decide(t, tc.name, tc.p)
				if v.Allowed() != tc.allowed || !strings.Contains(v.Message(), tc.want) {
					t.Errorf("%s: allowed=%v message %q; want allowed=%v containing %q (detail %v)", tc.name, v.Allowed(), v.Message(), tc.allowed, tc.want, v.Detail())
				}
				if tc.allowed && !strings.Contains(v.Identity, "release-key") {
					t.Errorf("%s: identity %q", tc.name, v.Identity)
				}
			}
			// Blobs: those of an allowed image only.
			ctx := context.Background()
			if v, _ := f.gate.Blob(ctx, f.repo, f.legacy.layers[0]); !v.Allowed() {
				t.Errorf("layer of an allowed image refused: %s", v.Message())
			}
			if v, _ := f.gate.Blob(ctx, f.repo, f.unsigned.layers[0]); v.Allowed() {
				t.Error("layer of a refused image allowed")
			}
			if v, _ := f.gate.Blob(ctx, verify.Repository{Registry: f.host, Name: "other/repo"}, f.legacy.layers[0]); v.Allowed() {
				t.Error("layer allowed in another repository")
			}
		})
	}
}

func TestGateDefaultDeny(t *testing.T) {
	f := newGateFixture(t, true)
	f.repo = verify.Repository{Registry: f.host, Name: "elsewhere/app"}
	v := f.decide(t, "legacy", f.legacy)
	if v.Allowed() || !strings.Contains(v.Message(), "no policy matches") || !strings.Contains(v.Message(), "default deny") {
		t.Fatalf("verdict %+v", v)
	}
}

// TestGateSignatureArtifacts: signature-shaped manifests are served for any
// image; a runnable image stored under a .sig tag is judged like any image.
func TestGateSignatureArtifacts(t *testing.T) {
	f := newGateFixture(t, false)
	ctx := context.Background()
	sigRef := signing.LegacyTag(f.unsigned.digest)
	repo, _ := name.NewRepository(f.host+"/acme/app", name.Insecure)
	// A signature of the unsigned image by some key: material of a refused
	// subject, refused (403); it grants nothing.
	other, _ := signing.NewSigner()
	if err := other.SignLegacy(repo, f.unsigned.digest); err != nil {
		t.Fatal(err)
	}
	m, err := f.reader.Manifest(ctx, f.repo, sigRef)
	if err != nil {
		t.Fatal(err)
	}
	v := f.decide(t, sigRef, &pushed{digest: m.Digest, bytes: m.Bytes})
	if v.Allowed() || v.Cause != CauseSubjectRefused || v.NotFound() {
		t.Fatalf("signature of a refused image: %+v", v.Judgement)
	}
	// The signature of the signed image: material of an allowed subject, served.
	goodRef := signing.LegacyTag(f.legacy.digest)
	gm, err := f.reader.Manifest(ctx, f.repo, goodRef)
	if err != nil {
		t.Fatal(err)
	}
	if v := f.decide(t, goodRef, &pushed{digest: gm.Digest, bytes: gm.Bytes}); !v.Allowed() || v.Cause != CauseSignatureArtifact {
		t.Fatalf("signature of an allowed image: %+v", v.Judgement)
	}
	// A fake: a runnable (unsigned) image pushed under a .sig tag.
	fakeRef := signing.LegacyTag(f.legacy.digest)
	fake := f.push(t, repo, fakeRef)
	v = f.decide(t, fakeRef, fake)
	if v.Allowed() || !v.NotFound() {
		t.Fatalf("a runnable image under the .sig tag of an allowed image: want 404 (not material), got %+v", v.Judgement)
	}
	if v, _ := f.gate.Blob(ctx, f.repo, fake.layers[0]); v.Allowed() {
		t.Fatal("the fake's layers are allowed")
	}
}

// TestGateHerd: 64 concurrent first requests for one digest make one
// signature discovery.
func TestGateHerd(t *testing.T) {
	f := newGateFixture(t, true)
	var wg sync.WaitGroup
	var allowed atomic.Int32
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := f.gate.Manifest(context.Background(), &ManifestRequest{Repo: f.repo, Reference: "bundled", Digest: f.bundled.digest, Bytes: f.bundled.bytes})
			if err == nil && v.Allowed() {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 64 || f.reader.referrers.Load() != 1 {
		t.Fatalf("allowed %d of 64, referrers lookups %d (want 1)", allowed.Load(), f.reader.referrers.Load())
	}
}

// TestGateCacheAndReload: verdicts are reused; a new policy revision takes
// effect at once and no older verdict is used after it.
func TestGateCacheAndReload(t *testing.T) {
	f := newGateFixture(t, true)
	if f.decide(t, "unsigned", f.unsigned).Allowed() {
		t.Fatal("unsigned allowed")
	}
	before := f.reader.referrers.Load()
	f.decide(t, "unsigned", f.unsigned)
	if f.reader.referrers.Load() != before {
		t.Fatal("a cached denial went upstream again")
	}
	writeTestFile(t, f.dir, "policy.yaml", "policies:\n  - name: open\n    images: [\""+f.host+"/acme/**\"]\n    allow: unsigned\n")
	f.gate.SetSnapshot(f.snapshot(t))
	if v := f.decide(t, "unsigned", f.unsigned); !v.Allowed() || v.Outcome.Reason != policy.AllowedUnsigned {
		t.Fatalf("after reload: %+v", v)
	}
}

// TestGateStaleIfError: an expired allow is reused while deciding fails; a
// denial never becomes an allow, and without a verdict an error is an error.
func TestGateStaleIfError(t *testing.T) {
	f := newGateFixture(t, true, WithVerdictTTL(10*time.Millisecond), WithDenyTTL(0), WithStaleIfError(time.Hour))
	if !f.decide(t, "legacy", f.legacy).Allowed() {
		t.Fatal("legacy refused")
	}
	time.Sleep(20 * time.Millisecond)
	f.reader.fail.Store(true)
	v, err := f.gate.Manifest(context.Background(), &ManifestRequest{Repo: f.repo, Reference: "legacy", Digest: f.legacy.digest, Bytes: f.legacy.bytes})
	if err != nil || !v.Allowed() {
		t.Fatalf("stale allow during outage: %v, %v", v, err)
	}
	if _, err := f.gate.Manifest(context.Background(), &ManifestRequest{Repo: f.repo, Reference: "unsigned", Digest: f.unsigned.digest, Bytes: f.unsigned.bytes}); err == nil {
		t.Fatal("no error for an undecidable image")
	}
}

// TestGateMultiArch: an allowed index allows its children in the same
// repository; a child of an unsigned index is judged on its own.
func TestGateMultiArch(t *testing.T) {
	f := newGateFixture(t, true)
	repo, _ := name.NewRepository(f.host+"/acme/app", name.Insecure)
	push := func(tag string) (v1.ImageIndex, *pushed) {
		idx, err := random.Index(128, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(repo.Tag(tag), idx); err != nil {
			t.Fatal(err)
		}
		d, _ := idx.Digest()
		b, _ := idx.RawManifest()
		return idx, &pushed{digest: d, bytes: b}
	}
	childOf := func(idx v1.ImageIndex) *pushed {
		im, _ := idx.IndexManifest()
		img, _ := idx.Image(im.Manifests[0].Digest)
		b, _ := img.RawManifest()
		return &pushed{digest: im.Manifests[0].Digest, bytes: b}
	}
	signedIdx, signed := push("multi")
	if err := f.signer.SignLegacy(repo, signed.digest); err != nil {
		t.Fatal(err)
	}
	unsignedIdx, unsigned := push("multi-unsigned")

	if v := f.decide(t, "multi", signed); !v.Allowed() {
		t.Fatalf("signed index: %s", v.Message())
	}
	if v := f.decide(t, childOf(signedIdx).digest.String(), childOf(signedIdx)); !v.Allowed() || v.Cause != CauseParent {
		t.Fatalf("child of the signed index: %+v", v)
	}
	if v := f.decide(t, "multi-unsigned", unsigned); v.Allowed() {
		t.Fatal("unsigned index allowed")
	}
	if v := f.decide(t, childOf(unsignedIdx).digest.String(), childOf(unsignedIdx)); v.Allowed() {
		t.Fatal("child of an unsigned index allowed")
	}
	// The allowance is per repository.
	other := f.repo
	other.Name = "acme/other"
	c := childOf(signedIdx)
	v, err := f.gate.Manifest(context.Background(), &ManifestRequest{Repo: other, Reference: c.digest.String(), Digest: c.digest, Bytes: c.bytes})
	if err != nil || v.Allowed() {
		t.Fatalf("child allowed in another repository: %v %v", v, err)
	}
}

// TestGateFakeReferrer: a runnable image pushed as a referrer of an allowed
// image (it has a subject) is not signature material and is refused.
func TestGateFakeReferrer(t *testing.T) {
	f := newGateFixture(t, true)
	repo, _ := name.NewRepository(f.host+"/acme/app", name.Insecure)
	img, _ := random.Image(128, 1)
	fake := mutate.Subject(img, v1.Descriptor{MediaType: types.DockerManifestSchema2, Digest: f.legacy.digest, Size: int64(len(f.legacy.bytes))}).(v1.Image)
	d, _ := fake.Digest()
	if err := remote.Write(repo.Digest(d.String()), fake); err != nil {
		t.Fatal(err)
	}
	b, _ := fake.RawManifest()
	if v := f.decide(t, d.String(), &pushed{digest: d, bytes: b}); v.Allowed() {
		t.Fatalf("a runnable referrer was allowed: %+v", v)
	}
}

// BenchmarkGateCacheHit is the gate's cost on a hot image: a cached
// verdict (the goal is well under 50 us at p99).
func BenchmarkGateCacheHit(b *testing.B) {
	f := newGateFixture(b, true)
	req := &ManifestRequest{Repo: f.repo, Reference: "legacy", Digest: f.legacy.digest, Bytes: f.legacy.bytes}
	if v, err := f.gate.Manifest(context.Background(), req); err != nil || !v.Allowed() {
		b.Fatal(v, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, _ = f.gate.Manifest(context.Background(), req)
	}
}

// TestGateChildBeforeParent: a child refused before its index was pulled is
// allowed once the index is.
func TestGateChildBeforeParent(t *testing.T) {
	f := newGateFixture(t, true)
	repo, _ := name.NewRepository(f.host+"/acme/app", name.Insecure)
	idx, _ := random.Index(128, 1, 2)
	if err := remote.WriteIndex(repo.Tag("multi"), idx); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	b, _ := idx.RawManifest()
	if err := f.signer.SignLegacy(repo, d); err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	img, _ := idx.Image(im.Manifests[0].Digest)
	cb, _ := img.RawManifest()
	child := &pushed{digest: im.Manifests[0].Digest, bytes: cb}
	if v := f.decide(t, child.digest.String(), child); v.Allowed() {
		t.Fatal("unsigned child allowed on its own")
	} else if !strings.Contains(v.Message(), "pull the image by its tag or its index digest") {
		t.Errorf("a child refused before its index gives no hint: %s", v.Message())
	}
	if v := f.decide(t, "unsigned", f.unsigned); strings.Contains(v.Message(), "index digest") {
		t.Errorf("an image refused by tag gets the child hint: %s", v.Message())
	}
	if v := f.decide(t, "multi", &pushed{digest: d, bytes: b}); !v.Allowed() {
		t.Fatal(v.Message())
	}
	if v := f.decide(t, child.digest.String(), child); !v.Allowed() {
		t.Fatalf("child still refused after its index was allowed: %s", v.Message())
	}
}

// TestGateReloadKeepsPullsInFlight: grants made under the previous policy
// revision hold once their parent is allowed again under the new one, and
// stop when the new policy refuses the parent.
func TestGateReloadKeepsPullsInFlight(t *testing.T) {
	f := newGateFixture(t, true)
	if v := f.decide(t, "legacy", f.legacy); !v.Allowed() {
		t.Fatal(v.Message())
	}
	ctx := context.Background()
	// An edit that changes no decision: a new revision.
	writeTestFile(t, f.dir, "policy.yaml", strings.ReplaceAll(keyPolicy, "HOST", f.host)+"# a comment\n")
	f.gate.SetSnapshot(f.snapshot(t))
	if v, err := f.gate.Blob(ctx, f.repo, f.legacy.layers[1]); err != nil || !v.Allowed() {
		t.Fatalf("layer refused after a no-op reload: %v %v", v, err)
	}
	// A key rotation: the parent is refused now, and so are its layers.
	other, _ := signing.NewSigner()
	pem, _ := other.PublicKeyPEM()
	writeTestFile(t, f.dir, "cosign.pub", string(pem))
	f.gate.SetSnapshot(f.snapshot(t))
	if v, err := f.gate.Blob(ctx, f.repo, f.legacy.layers[0]); err != nil || v.Allowed() {
		t.Fatalf("layer of a revoked image served: %v %v", v, err)
	}
}

// TestGateExcludedSaysSo: an image a policy's excludeImages takes out says
// it was excluded, and by which policy.
func TestGateExcludedSaysSo(t *testing.T) {
	f := newGateFixture(t, true)
	writeTestFile(t, f.dir, "policy.yaml", strings.ReplaceAll(`policies:
  - name: acme-release
    images: ["HOST/acme/**"]
    excludeImages: ["HOST/acme/app"]
    authorities:
      - name: release-key
        key: {path: cosign.pub}
`, "HOST", f.host))
	f.gate.SetSnapshot(f.snapshot(t))
	v := f.decide(t, "legacy", f.legacy)
	if v.Allowed() || !strings.Contains(v.Message(), `(excluded from policy "acme-release" by its excludeImages); default deny`) {
		t.Fatalf("excluded image: %s", v.Message())
	}
}
