package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/verifytest"
)

// Attestation requirements through the gate: decisions and their
// messages, GitHub's push-to-registry artifacts (both variants the action
// has written) found and served only under the gate-integrity rules,
// BuildKit's unsigned attestation manifests never counted, and allows that
// rest on maxAge never cached or served stale past it.

const (
	slsaV1        = "https://slsa.dev/provenance/v1"
	slsaPredicate = `{"buildDefinition":{"externalParameters":{"workflow":{"repository":"https://github.com/acme/app"}}},"runDetails":{"builder":{"id":"https://github.com/actions/runner/github-hosted"}}}`
	bundleType    = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// attestPolicy requires a provenance attestation signed by key k in the
// test registry's acme/** repositories.
func attestPolicy(t testing.TB, host string, k *testKey, extra string) *policy.Policy {
	t.Helper()
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(k.Priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`policies:
  - name: provenance
    images: ["%s/acme/**"]
    authorities:
      - name: ci
        key:
          data: |
%s
        attestations:
          - name: provenance
            predicateType: slsaprovenance
            condition: 'predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app"'
%s`, host, indent(string(pemKey), "            "), extra)
	p, err := policy.Parse([]byte(src), "policy.yaml", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	return p
}

func indent(s, by string) string {
	return by + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+by)
}

func newAttestGate(t testing.TB, tr *testRegistry, p *policy.Policy, tuf verify.TrustProvider, opts ...Option) *Gate {
	t.Helper()
	snap, err := NewSnapshot(p, tuf)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(tr.Reader, snap, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// manifestVerdict asks the gate for the manifest at ref as the upstream
// serves it.
func manifestVerdict(t testing.TB, g *Gate, tr *testRegistry, repo verify.Repository, ref string) (*Verdict, error) {
	t.Helper()
	m, err := tr.Reader.Manifest(context.Background(), repo, ref)
	if err != nil {
		t.Fatalf("upstream %s: %v", ref, err)
	}
	return g.Manifest(context.Background(), &ManifestRequest{Repo: repo, Reference: ref, Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes})
}

func wantVerdict(t testing.TB, v *Verdict, err error, allowed bool, msg string) {
	t.Helper()
	if err != nil {
		t.Fatalf("no verdict: %v", err)
	}
	if v.Allowed() != allowed || !strings.Contains(v.Message(), msg) {
		t.Fatalf("got allowed=%v %q; want allowed=%v with %q", v.Allowed(), v.Message(), allowed, msg)
	}
}

// TestGateAttestations: an image with a satisfying attestation and no
// signature is allowed; one without, or whose attestation fails the
// condition, is refused naming the attestation and the authority.
func TestGateAttestations(t *testing.T) {
	forBothRegistries(t, func(t *testing.T, referrers bool) {
		sc := newScenario(t, referrers)
		k := testKeys(t)["ecdsa-p256"]
		g := newAttestGate(t, sc.tr, attestPolicy(t, sc.tr.Host, k, ""), nil)
		sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, verifytest.StatementWith(sc.image.Digest, slsaV1, slsaPredicate)), slsaV1)
		v, err := manifestVerdict(t, g, sc.tr, sc.repo, "v1")
		wantVerdict(t, v, err, true, "allowed: verified")

		sc.tr.PushImage(sc.repo, "bare")
		v, err = manifestVerdict(t, g, sc.tr, sc.repo, "bare")
		wantVerdict(t, v, err, false, `refused by policy "provenance": needs 1 of its authorities, 0 passed: ci: needs attestation "provenance" (slsaprovenance) from authority "ci": none found (cached for`)

		bad := sc.tr.PushImage(sc.repo, "bad")
		sc.tr.PushAttestations(sc.repo, bad.Digest, k.EnvelopeLayer(t, verifytest.StatementWith(bad.Digest, slsaV1, `{"buildDefinition":{"externalParameters":{"workflow":{"repository":"https://github.com/evil/app"}}}}`), slsaV1))
		v, err = manifestVerdict(t, g, sc.tr, sc.repo, "bad")
		wantVerdict(t, v, err, false, "found 1, condition false: predicate.buildDefinition")
	})
}

// TestGateGitHubPushToRegistry: the artifacts actions/attest-build-provenance
// pushes, in both variants: current versions (subject, artifactType = the
// bundle media type, empty config; a fallback index where the registry has
// no referrers API) and the first version (no subject, no artifactType, an
// image config "{}", found only through the sha256-<hex> fallback index).
// Each is found and allows the image; the first-version artifact is served
// to clients only as an entry of the served fallback index of an allowed
// subject, never on its own.
func TestGateGitHubPushToRegistry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		referrers bool
		subject   bool
	}{
		{"current, referrers API", true, true},
		{"current, fallback index", false, true},
		{"first version, fallback index", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := newScenario(t, tc.referrers)
			k := testKeys(t)["ecdsa-p256"]
			g := newAttestGate(t, sc.tr, attestPolicy(t, sc.tr.Host, k, ""), nil)
			bundleJSON := k.KeyBundle(t, verifytest.StatementWith(sc.image.Digest, slsaV1, slsaPredicate))
			art := &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
				Layers:      []v1.Descriptor{sc.tr.PushBlob(sc.repo, bundleJSON, bundleType)},
				Annotations: map[string]string{"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": slsaV1, "org.opencontainers.image.created": "2026-12-01T00:00:00Z"}}
			if tc.subject {
				art.ArtifactType, art.Subject = bundleType, &sc.image
				art.Config = sc.tr.PushBlob(sc.repo, []byte("{}"), oci.OCIEmptyJSON)
			} else {
				art.Config = sc.tr.PushBlob(sc.repo, []byte("{}"), "application/vnd.oci.image.config.v1+json")
			}
			artDigest := sc.tr.PutManifest(sc.repo, "", art)
			fallback := "sha256-" + sc.image.Digest.Hex
			if !tc.subject {
				// The first version wrote the fallback index itself, with
				// no artifactType or annotations in its entry.
				raw, _ := json.Marshal(art)
				idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
					oci.OCIIndex, types.OCIManifestSchema1, artDigest, len(raw))
				sc.tr.PutRaw(sc.repo, fallback, []byte(idx), oci.OCIIndex)
			}
			// On its own, by digest, before any listing: not an image this
			// policy allows (it has no attestation of its own).
			v, err := manifestVerdict(t, g, sc.tr, sc.repo, artDigest.String())
			if !tc.subject {
				wantVerdict(t, v, err, false, "refused")
			}
			v, err = manifestVerdict(t, g, sc.tr, sc.repo, "v1")
			wantVerdict(t, v, err, true, "allowed")
			if !tc.referrers {
				v, err = manifestVerdict(t, g, sc.tr, sc.repo, fallback)
				wantVerdict(t, v, err, true, "allowed")
			}
			v, err = manifestVerdict(t, g, sc.tr, sc.repo, artDigest.String())
			wantVerdict(t, v, err, true, "allowed")
		})
	}
}

// TestGateBuildKitAttestationsUnsigned: BuildKit's attestation manifest
// inside an index (an unsigned in-toto statement, platform
// unknown/unknown) satisfies no attestation requirement, and does not stop
// the platforms of an allowed index from being served.
func TestGateBuildKitAttestationsUnsigned(t *testing.T) {
	sc := newScenario(t, true)
	k := testKeys(t)["ecdsa-p256"]
	g := newAttestGate(t, sc.tr, attestPolicy(t, sc.tr.Host, k, ""), nil)
	platform := sc.tr.PushImage(sc.repo, "amd64")
	stmt := verifytest.StatementWith(platform.Digest, slsaV1, slsaPredicate)
	attManifest := &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: sc.tr.PushBlob(sc.repo, []byte("{}"), "application/vnd.oci.image.config.v1+json"),
		Layers: []v1.Descriptor{sc.tr.PushBlob(sc.repo, stmt, oci.InToto)}}
	attManifest.Layers[0].Annotations = map[string]string{"in-toto.io/predicate-type": slsaV1}
	attDigest := sc.tr.PutManifest(sc.repo, "", attManifest)
	raw, _ := json.Marshal(attManifest)
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":"unknown","os":"unknown"},"annotations":{"vnd.docker.reference.type":"attestation-manifest","vnd.docker.reference.digest":%q}}]}`,
		oci.OCIIndex, platform.MediaType, platform.Digest, platform.Size, types.OCIManifestSchema1, attDigest, len(raw), platform.Digest)
	idxDigest := sc.tr.PutRaw(sc.repo, "multi", []byte(idx), oci.OCIIndex)

	v, err := manifestVerdict(t, g, sc.tr, sc.repo, "multi")
	wantVerdict(t, v, err, false, "none found")

	// Signed provenance for the index: allowed (by a gate without the
	// cached denial), and both children served.
	sc.tr.PushReferrer(sc.repo, v1.Descriptor{MediaType: oci.OCIIndex, Digest: idxDigest, Size: int64(len(idx))},
		k.KeyBundle(t, verifytest.StatementWith(idxDigest, slsaV1, slsaPredicate)), slsaV1)
	g = newAttestGate(t, sc.tr, attestPolicy(t, sc.tr.Host, k, ""), nil)
	v, err = manifestVerdict(t, g, sc.tr, sc.repo, "multi")
	wantVerdict(t, v, err, true, "allowed")
	for _, d := range []v1.Hash{platform.Digest, attDigest} {
		v, err = manifestVerdict(t, g, sc.tr, sc.repo, d.String())
		wantVerdict(t, v, err, true, "listed by an allowed index")
	}
}

// TestGateMaxAgeVerdicts: an allow resting on maxAge is cached only until
// the attestation reaches that age, and staleIfError never serves it past
// then: with the upstream down after the age, there is no decision.
func TestGateMaxAgeVerdicts(t *testing.T) {
	var down atomic.Bool
	tr := newRegistry(t, true, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	repo := tr.Repo("acme/app")
	image := tr.PushImage(repo, "v1")
	kl := newKeyless(t)
	tr.PushReferrer(repo, image, kl.Bundle(t, testSubject, verifytest.StatementWith(image.Digest, slsaV1, slsaPredicate), false, true), slsaV1)
	p := maxAgePolicy(t, tr.Host)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	g := newAttestGate(t, tr, p, verify.TrustMap{"virtual": kl.VS}, WithClock(now),
		WithVerdictTTL(24*time.Hour), WithStaleIfError(48*time.Hour))
	m, err := tr.Reader.Manifest(context.Background(), repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	req := &ManifestRequest{Repo: repo, Reference: "v1", Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes}
	v, err := g.Manifest(context.Background(), req)
	wantVerdict(t, v, err, true, "allowed")

	// Within the hour the cached allow serves, even with the upstream down.
	down.Store(true)
	clock.Add(int64(50 * time.Minute))
	v, err = g.Manifest(context.Background(), req)
	wantVerdict(t, v, err, true, "allowed")

	// Past it: no fresh verdict, a failed decision, and no stale allow.
	clock.Add(int64(20 * time.Minute))
	if v, err = g.Manifest(context.Background(), req); err == nil && v.Allowed() {
		t.Fatalf("served past maxAge: %s", v.Message())
	}
	// Upstream back: decided again, and refused for its age.
	down.Store(false)
	// The upstream client may remember the outage's answers briefly.
	for range 40 {
		if v, err = g.Manifest(context.Background(), req); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantVerdict(t, v, err, false, "older than 1h: signed ")
}

func forBothRegistries(t *testing.T, f func(t *testing.T, referrers bool)) {
	for _, referrers := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrersAPI=%v", referrers), func(t *testing.T) {
			t.Parallel()
			f(t, referrers)
		})
	}
}

// TestGateStaleGrantAsksOnce: a blob of an allowed image, asked for past
// the verdict's freshness while the upstream fails but the manifest is
// still in the upstream client's memory, is served from the stale allow
// after one attempt to decide again, not by asking again for ever (which
// hammered the upstream and, without a deadline, overflowed the stack).
func TestGateStaleGrantAsksOnce(t *testing.T) {
	var down atomic.Bool
	var hits atomic.Int64
	tr := newRegistry(t, true, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				hits.Add(1)
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	repo := tr.Repo("acme/app")
	img := tr.PushImage(repo, "v1")
	k := testKeys(t)["ecdsa-p256"]
	tr.PushLegacy(repo, img.Digest, k.LegacyKeyLayer(t, tr.Host+"/acme/app", img.Digest))
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	g := newAttestGate(t, tr, signaturePolicy(t, tr.Host, k), nil, WithClock(now))
	v, err := manifestVerdict(t, g, tr, repo, "v1")
	wantVerdict(t, v, err, true, "allowed")
	m, err := tr.Reader.Manifest(context.Background(), repo, img.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	mf, err := v1.ParseManifest(bytes.NewReader(m.Bytes))
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(int64(11 * time.Minute)) // past verdictTTL, within staleIfError
	down.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bv, err := g.Blob(ctx, repo, mf.Layers[0].Digest)
	if err != nil || !bv.Allowed() {
		t.Fatalf("blob of a stale allow: %v %v", bv, err)
	}
	if n := hits.Load(); n > 10 {
		t.Errorf("%d upstream requests for one blob while the upstream was down", n)
	}
}

// TestGateChildEndsWithIndexMaxAge: a platform allowed through an index
// that rests on maxAge (and its layers) stops being served when the index
// does, not a verdict TTL later.
func TestGateChildEndsWithIndexMaxAge(t *testing.T) {
	tr := newRegistry(t, true, nil)
	repo := tr.Repo("acme/app")
	platform := tr.PushImage(repo, "amd64")
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}`,
		oci.OCIIndex, platform.MediaType, platform.Digest, platform.Size)
	idxDigest := tr.PutRaw(repo, "multi", []byte(idx), oci.OCIIndex)
	kl := newKeyless(t)
	tr.PushReferrer(repo, v1.Descriptor{MediaType: oci.OCIIndex, Digest: idxDigest, Size: int64(len(idx))},
		kl.Bundle(t, testSubject, verifytest.StatementWith(idxDigest, slsaV1, slsaPredicate), false, true), slsaV1)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	g := newAttestGate(t, tr, maxAgePolicy(t, tr.Host), verify.TrustMap{"virtual": kl.VS}, WithClock(now))
	v, err := manifestVerdict(t, g, tr, repo, "multi")
	wantVerdict(t, v, err, true, "allowed")
	clock.Add(int64(59 * time.Minute))
	v, err = manifestVerdict(t, g, tr, repo, platform.Digest.String())
	wantVerdict(t, v, err, true, "listed by an allowed index")
	m, err := tr.Reader.Manifest(context.Background(), repo, platform.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	mf, _ := v1.ParseManifest(bytes.NewReader(m.Bytes))
	clock.Add(int64(9 * time.Minute)) // 68 minutes after signing
	if v, err = manifestVerdict(t, g, tr, repo, platform.Digest.String()); err == nil && v.Allowed() {
		t.Errorf("platform served past its index's maxAge: %s", v.Message())
	}
	if bv, err := g.Blob(context.Background(), repo, mf.Layers[0].Digest); err == nil && bv.Allowed() {
		t.Errorf("platform layer served past its index's maxAge: %s", bv.Message())
	}
}

// signaturePolicy requires a signature by k in the registry's acme/**.
func signaturePolicy(t testing.TB, host string, k *testKey) *policy.Policy {
	t.Helper()
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(k.Priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte(fmt.Sprintf("policies:\n  - name: p\n    images: [\"%s/acme/**\"]\n    authorities:\n      - name: k\n        key:\n          data: |\n%s\n",
		host, indent(string(pemKey), "            "))), "policy.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// maxAgePolicy requires SLSA provenance signed by the VirtualSigstore's
// identity in the registry's acme/**, no older than an hour.
func maxAgePolicy(t testing.TB, host string) *policy.Policy {
	t.Helper()
	src := fmt.Sprintf(`trustRoots:
  - name: virtual
    tuf: {}
policies:
  - name: fresh-provenance
    images: ["%s/acme/**"]
    authorities:
      - name: ci
        trustRoot: virtual
        requireTlog: false
        keyless:
          requireSCT: false
          identities: [{issuer: %q, subject: %q}]
        attestations:
          - name: provenance
            predicateType: slsaprovenance
            maxAge: 1h
`, host, testIssuer, testSubject)
	p, err := policy.Parse([]byte(src), "policy.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
