package main

// The verify-cost phase: what verifying one signature costs, with a key
// against keyless (a Fulcio certificate, with a Rekor SET or an RFC 3161
// timestamp as the trusted signing time), in both storage formats. The
// keyless signatures come from sigstore-go's VirtualSigstore (a CA, a
// Rekor and a TSA in memory), built by verify/signing/virtualsig, which
// verify's own test fixtures use too. Signatures are pushed to
// go-containerregistry's in-memory registry (with the referrers API) on a
// loopback listener.
//
// The same benchmarks run under go test:
//
//	go test ./test/bench -run '^$' -bench VerifyCost -cpuprofile /tmp/cpu.out

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/upstream"
	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/signing"
	"github.com/portcullis-dev/portcullis/verify/signing/virtualsig"
)

const (
	vcIssuer  = "https://issuer.example"
	vcSubject = "release@example.com"
	vcRoot    = "virtual"
	vcImage   = "registry.example/acme/app"
)

// verifyCase is one signed image in the in-memory registry and the
// authority it passes.
type verifyCase struct {
	name   string // "key, legacy .sig", ...
	trust  verify.TrustProvider
	a      *policy.Authority
	att    *policy.Authority // also checked, when set: an attestation authority
	reader verify.Reader
	repo   verify.Repository
	digest v1.Hash
}

// verifyEnv is the in-memory registry and the signers of the phase.
type verifyEnv struct {
	srv    *httptest.Server
	host   string
	reader *upstream.Client
	vs     *ca.VirtualSigstore
	key    *signing.Signer
	keyA   *policy.Authority
}

func newVerifyEnv() (*verifyEnv, error) {
	h := registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0)))
	e := &verifyEnv{srv: httptest.NewServer(h)}
	e.host = strings.TrimPrefix(e.srv.URL, "http://")
	var err error
	// The proxy's upstream client with its caches off (a manifest cache of
	// one byte keeps nothing, and tag resolutions are not reused), so that
	// every discovery reads the registry: the tags it has seen are resolved
	// by a HEAD, then fetched by digest.
	if e.reader, err = upstream.New([]upstream.Config{{Registry: e.host, Endpoint: &url.URL{Scheme: "http", Host: e.host}}},
		upstream.WithTagTTL(0), upstream.WithManifestCacheBytes(1)); err != nil {
		e.close()
		return nil, err
	}
	if e.vs, err = ca.NewVirtualSigstore(); err != nil {
		e.close()
		return nil, fmt.Errorf("virtual sigstore: %w", err)
	}
	if e.key, err = signing.NewSigner(); err != nil {
		e.close()
		return nil, err
	}
	// The key authority as the policy compiler makes it from cosign.pub.
	pem, err := e.key.PublicKeyPEM()
	if err != nil {
		e.close()
		return nil, err
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem)
	if err != nil {
		e.close()
		return nil, err
	}
	e.keyA = &policy.Authority{Name: "bench-key", Key: &policy.Key{PEM: pem, Public: pub, Hint: e.key.Hint()}}
	return e, nil
}

func (e *verifyEnv) close() { e.srv.Close() }

func keylessAuthority(requireTlog bool) *policy.Authority {
	return &policy.Authority{
		Name:        "keyless",
		Keyless:     &policy.Keyless{Identities: []policy.Identity{{Issuer: vcIssuer, Subject: vcSubject}}},
		RequireTlog: requireTlog,
		TrustRoot:   vcRoot,
	}
}

// cases pushes one image per case, signed as the case says.
func (e *verifyEnv) cases(ctx context.Context) ([]*verifyCase, error) {
	keyless := verify.TrustMap{vcRoot: e.vs}
	specs := []struct {
		name  string
		trust verify.TrustProvider
		a     *policy.Authority
		sign  func(repo name.Repository, desc v1.Descriptor) error
	}{
		{"key, legacy .sig", verify.TrustMap{}, e.keyA, func(r name.Repository, d v1.Descriptor) error {
			return e.key.SignLegacy(r, d.Digest, remote.WithContext(ctx))
		}},
		{"key, sigstore bundle", verify.TrustMap{}, e.keyA, func(r name.Repository, d v1.Descriptor) error {
			return e.key.SignBundle(r, d, remote.WithContext(ctx))
		}},
		{"keyless, legacy .sig + Rekor SET", keyless, keylessAuthority(true), func(r name.Repository, d v1.Descriptor) error {
			return e.pushKeylessLegacy(ctx, r, d.Digest, true, false)
		}},
		{"keyless, legacy .sig + TSA", keyless, keylessAuthority(false), func(r name.Repository, d v1.Descriptor) error {
			return e.pushKeylessLegacy(ctx, r, d.Digest, false, true)
		}},
		{"keyless, bundle + Rekor SET+proof", keyless, keylessAuthority(true), func(r name.Repository, d v1.Descriptor) error {
			return e.pushKeylessBundle(ctx, r, d, true, false)
		}},
		{"keyless, bundle + TSA", keyless, keylessAuthority(false), func(r name.Repository, d v1.Descriptor) error {
			return e.pushKeylessBundle(ctx, r, d, false, true)
		}},
	}
	specs = append(specs, struct {
		name  string
		trust verify.TrustProvider
		a     *policy.Authority
		sign  func(repo name.Repository, desc v1.Descriptor) error
	}{attestationCase, verify.TrustMap{}, e.keyA, func(r name.Repository, d v1.Descriptor) error {
		if err := e.key.SignBundle(r, d, remote.WithContext(ctx)); err != nil {
			return err
		}
		return e.key.Attest(r, d, benchSLSA, benchProvenance, remote.WithContext(ctx))
	}})
	var out []*verifyCase
	for i, s := range specs {
		repoName := fmt.Sprintf("acme/case%d", i)
		r, err := name.NewRepository(e.host+"/"+repoName, name.Insecure)
		if err != nil {
			return nil, err
		}
		img, err := random.Image(256, 2)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(r.Tag("v1"), img, remote.WithContext(ctx)); err != nil {
			return nil, fmt.Errorf("%s: push: %w", s.name, err)
		}
		desc, err := describe(img)
		if err != nil {
			return nil, err
		}
		if err := s.sign(r, desc); err != nil {
			return nil, fmt.Errorf("%s: sign: %w", s.name, err)
		}
		vc := &verifyCase{name: s.name, trust: s.trust, a: s.a, reader: e.reader,
			repo: verify.Repository{Registry: e.host, Name: repoName}, digest: desc.Digest}
		if s.name == attestationCase {
			if vc.att, err = e.attestationAuthority(); err != nil {
				return nil, err
			}
		}
		if err := vc.selfCheck(ctx); err != nil {
			return nil, err
		}
		out = append(out, vc)
	}
	return out, nil
}

// selfCheck makes sure the case's signature is found and passes, once.
func (vc *verifyCase) selfCheck(ctx context.Context) error {
	disc, err := verify.Discover(ctx, vc.reader, vc.repo, vc.digest, verify.Limits{})
	if err != nil {
		return fmt.Errorf("%s: discover: %w", vc.name, err)
	}
	c, err := verify.NewChecker(vc.trust)
	if err != nil {
		return fmt.Errorf("%s: checker: %w", vc.name, err)
	}
	if len(disc.Signatures) != 1 {
		return fmt.Errorf("%s: discovered %d signatures, want 1", vc.name, len(disc.Signatures))
	}
	if res := c.Check(vc.a, disc, vcImage, false); !res.Passed {
		return fmt.Errorf("%s: signature does not verify: %v", vc.name, res.Reasons)
	}
	if vc.att != nil {
		if res := c.Check(vc.att, disc, vcImage, false); !res.Passed {
			return fmt.Errorf("%s: attestation does not verify: %v", vc.name, res.Reasons)
		}
	}
	return nil
}

// The attestation case: a SLSA v1 provenance statement signed with the
// key, required with a CEL condition, beside the image signature.
const (
	attestationCase = "key, bundle signature + SLSA attestation"
	benchSLSA       = "https://slsa.dev/provenance/v1"
	benchProvenance = `{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1","externalParameters":{"workflow":{"ref":"refs/tags/v1.2.0","repository":"https://github.com/acme/app","path":".github/workflows/release.yml"}},"resolvedDependencies":[{"uri":"git+https://github.com/acme/app@refs/tags/v1.2.0","digest":{"gitCommit":"0f5d3a1c"}}]},"runDetails":{"builder":{"id":"https://github.com/actions/runner/github-hosted"},"metadata":{"invocationId":"https://github.com/acme/app/actions/runs/1/attempts/1"}}}`
	benchCondition  = `predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app" && predicate.runDetails.builder.id.endsWith("/github-hosted")`
)

// attestationAuthority requires the provenance, signed with the key.
func (e *verifyEnv) attestationAuthority() (*policy.Authority, error) {
	at, err := policy.NewAttestation("provenance", "slsaprovenance", benchCondition, 0)
	if err != nil {
		return nil, err
	}
	a := *e.keyA
	a.Name, a.Attestations = "bench-provenance", []*policy.Attestation{at}
	return &a, nil
}

// benchCheck is the cost of one Check of a discovered signature with a
// warm Checker (authority compiled): the cryptography and policy of one
// signature, nothing read.
func (vc *verifyCase) benchCheck(b *testing.B) {
	disc, err := verify.Discover(context.Background(), vc.reader, vc.repo, vc.digest, verify.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	c, err := verify.NewChecker(vc.trust)
	if err != nil {
		b.Fatal(err)
	}
	if res := c.Check(vc.a, disc, vcImage, false); !res.Passed {
		b.Fatalf("not passing: %v", res.Reasons)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.Check(vc.a, disc, vcImage, false)
		if vc.att != nil {
			c.Check(vc.att, disc, vcImage, false)
		}
	}
}

// benchDiscoverCheck is Discover (over loopback HTTP from the in-memory
// registry, through the upstream client with its caches off: referrers,
// .sig tag, the signature manifest and its layer) and
// Check together: a first verification, without Portcullis around it.
func (vc *verifyCase) benchDiscoverCheck(b *testing.B) {
	c, err := verify.NewChecker(vc.trust)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		disc, err := verify.Discover(ctx, vc.reader, vc.repo, vc.digest, verify.Limits{Attestations: vc.att != nil})
		if err != nil {
			b.Fatal(err)
		}
		if res := c.Check(vc.a, disc, vcImage, false); !res.Passed {
			b.Fatalf("not passing: %v", res.Reasons)
		}
		if vc.att != nil {
			if res := c.Check(vc.att, disc, vcImage, false); !res.Passed {
				b.Fatalf("attestation not passing: %v", res.Reasons)
			}
		}
	}
}

// celSamples is how many condition evaluations the CEL figures time.
const celSamples = 20_000

// celLatency times Attestation.Holds, the CEL condition of the
// attestation case over its SLSA predicate (decoded once, as a verified
// statement is): each evaluation on its own, for a p50 and p99.
func celLatency() (p50, p99 float64, err error) {
	at, err := policy.NewAttestation("provenance", "slsaprovenance", benchCondition, 0)
	if err != nil {
		return 0, 0, err
	}
	var pred any
	if err := json.Unmarshal([]byte(benchProvenance), &pred); err != nil {
		return 0, 0, err
	}
	st := &policy.Statement{PredicateType: benchSLSA, Predicate: pred, Subject: []any{map[string]any{"digest": map[string]any{"sha256": "00"}}}}
	now := time.Now()
	us := make([]float64, celSamples)
	for i := range us {
		t0 := time.Now()
		if err := at.Holds(st, now); err != nil {
			return 0, 0, fmt.Errorf("condition: %w", err)
		}
		us[i] = float64(time.Since(t0).Nanoseconds()) / 1e3
	}
	slices.Sort(us)
	return us[len(us)/2], us[len(us)*99/100], nil
}

var initTesting sync.Once

// benchmark runs f as `go test -bench` would, for d per run.
func benchmark(d time.Duration, f func(*testing.B)) (testing.BenchmarkResult, error) {
	var err error
	initTesting.Do(func() {
		testing.Init()
		err = flag.CommandLine.Parse(nil)
	})
	if err != nil {
		return testing.BenchmarkResult{}, err
	}
	if err := flag.CommandLine.Set("test.benchtime", d.String()); err != nil {
		return testing.BenchmarkResult{}, err
	}
	r := testing.Benchmark(f)
	if r.N == 0 {
		return r, fmt.Errorf("benchmark failed (see the log above)")
	}
	return r, nil
}

// runVerifyCostPhase measures, per case, Check alone and Discover+Check.
func runVerifyCostPhase(ctx context.Context, b *bench, _ *fleet) ([]Metric, error) {
	e, err := newVerifyEnv()
	if err != nil {
		return nil, err
	}
	defer e.close()
	cases, err := e.cases(ctx)
	if err != nil {
		return nil, err
	}
	var out []Metric
	for _, vc := range cases {
		m := func(name, unit string, v float64) Metric {
			return Metric{Phase: "verify-cost", Case: "one signature, in process", Target: vc.name, Name: name, Unit: unit, Value: v}
		}
		rc, err := benchmark(b.cfg.verifyTime, vc.benchCheck)
		if err != nil {
			return nil, fmt.Errorf("%s: Check: %w", vc.name, err)
		}
		rd, err := benchmark(b.cfg.verifyTime, vc.benchDiscoverCheck)
		if err != nil {
			return nil, fmt.Errorf("%s: Discover+Check: %w", vc.name, err)
		}
		logf("verify cost %s: Check %.0f us/op (%d allocs), Discover+Check %.0f us/op",
			vc.name, float64(rc.NsPerOp())/1e3, rc.AllocsPerOp(), float64(rd.NsPerOp())/1e3)
		out = append(out,
			m("check", "us/op", float64(rc.NsPerOp())/1e3),
			m("check_allocs", "allocs/op", float64(rc.AllocsPerOp())),
			m("check_bytes", "B/op", float64(rc.AllocedBytesPerOp())),
			m("discover_check", "us/op", float64(rd.NsPerOp())/1e3),
		)
	}
	p50, p99, err := celLatency()
	if err != nil {
		return nil, err
	}
	logf("verify cost: CEL condition p50 %.1f us, p99 %.1f us", p50, p99)
	cel := func(name string, v float64) Metric {
		return Metric{Phase: "verify-cost", Case: celCase, Target: "in-process", Name: name, Unit: "us", Value: v}
	}
	return append(out, cel("p50", p50), cel("p99", p99)), nil
}

// celCase is the verify-cost case of the CEL figures.
const celCase = "CEL condition over SLSA provenance, per evaluation"

// --- keyless signatures (verify/signing/virtualsig) ---

// payloadFor is a cosign simple-signing payload for digest d.
func payloadFor(dockerRef string, d v1.Hash) []byte {
	return signing.Payload(dockerRef, d)
}

// pushKeylessLegacy pushes a .sig manifest whose one layer is a keyless
// signature of d: a Fulcio leaf certificate from the VirtualSigstore, with
// a Rekor SET (cosign's bundle annotation) and/or an RFC 3161 timestamp.
func (e *verifyEnv) pushKeylessLegacy(ctx context.Context, r name.Repository, d v1.Hash, withSET, withTSA bool) error {
	p := payloadFor(r.Name(), d)
	ann, err := virtualsig.LegacyKeyless(e.vs, vcSubject, vcIssuer, p, withSET, withTSA)
	if err != nil {
		return err
	}
	cfg, err := pushBlob(ctx, r, []byte("{}"), "application/vnd.oci.image.config.v1+json")
	if err != nil {
		return err
	}
	layer, err := pushBlob(ctx, r, p, signing.SimpleSigningType)
	if err != nil {
		return err
	}
	layer.Annotations = ann
	m := &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: []v1.Descriptor{layer}}
	return putJSONManifest(ctx, r.Tag(signing.LegacyTag(d)), m)
}

// pushKeylessBundle pushes a cosign v3 bundle referrer of subject: a DSSE
// envelope over the statement, signed with a Fulcio leaf certificate, with
// a Rekor entry (SET and inclusion proof) and/or an RFC 3161 timestamp.
func (e *verifyEnv) pushKeylessBundle(ctx context.Context, r name.Repository, subject v1.Descriptor, withTlog, withTSA bool) error {
	stmt := signing.Statement(subject.Digest)
	bundleJSON, err := virtualsig.KeylessBundle(e.vs, vcSubject, vcIssuer, stmt, withTlog, withTSA)
	if err != nil {
		return err
	}
	cfg, err := pushBlob(ctx, r, []byte("{}"), string(types.OCIEmptyJSON))
	if err != nil {
		return err
	}
	layer, err := pushBlob(ctx, r, bundleJSON, signing.BundleType)
	if err != nil {
		return err
	}
	m := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  signing.BundleType,
		Config:        cfg,
		Layers:        []v1.Descriptor{layer},
		Annotations: map[string]string{
			"dev.sigstore.bundle.content":       "dsse-envelope",
			"dev.sigstore.bundle.predicateType": signing.SignPredicateType,
		},
		Subject: &subject,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	d, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return remote.Put(r.Digest(d.String()), rawManifest{b, types.OCIManifestSchema1}, remote.WithContext(ctx))
}

// --- pushing raw manifests ---

// rawManifest is a manifest pushed byte for byte.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

func pushBlob(ctx context.Context, r name.Repository, b []byte, mt string) (v1.Descriptor, error) {
	l := static.NewLayer(b, types.MediaType(mt))
	if err := remote.WriteLayer(r, l, remote.WithContext(ctx)); err != nil {
		return v1.Descriptor{}, err
	}
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: types.MediaType(mt), Size: int64(len(b)), Digest: d}, nil
}

func putJSONManifest(ctx context.Context, ref name.Reference, m *v1.Manifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return remote.Put(ref, rawManifest{b, m.MediaType}, remote.WithContext(ctx))
}
