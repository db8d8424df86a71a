package verify

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/portcullis-dev/portcullis/policy"
)

var fuzzDigest = v1.Hash{Algorithm: "sha256", Hex: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}

// addSignatureSeeds seeds a fuzz target with real legacy layers (keyless
// with SET and TSA, key) and bundles (keyless, key attestation).
func addSignatureSeeds(f *testing.F, kl *keyless, k *testKey) {
	d := fuzzDigest
	for _, l := range []layer{kl.legacyLayer(f, testSubject, d, true, true), k.legacyKeyLayer(f, "r/x", d)} {
		a := l.ann
		f.Add(l.payload, a[annSignature], a[annCertificate], a[annChain], a[annRekorBundle], a[annTimestamp],
			kl.bundle(f, testSubject, statementFor(d, SignPredicateType), true, true))
	}
	f.Add([]byte("{}"), "", "", "", "", "", k.keyBundle(f, statementFor(d, "x")))
}

// shortMinimize caps the minimization of new inputs at 1s unless
// -fuzzminimizetime is given: with the default (60s) and inputs of several
// KiB run through sigstore-go's parsers, a 10-second run would spend all
// its time minimizing the first new input instead of fuzzing.
func shortMinimize() {
	set := false
	flag.Visit(func(fl *flag.Flag) { set = set || fl.Name == "test.fuzzminimizetime" })
	if !set {
		_ = flag.Set("test.fuzzminimizetime", "1s")
	}
}

// parseFuzzInput parses the inputs as a legacy layer and as a bundle layer.
// A recovered panic (recoverTo) fails the test: it is survivable in
// production, but it is a bug to report.
func parseFuzzInput(t *testing.T, payload []byte, sig, cert, chain, rekor, ts string, bundleJSON []byte) *Discovery {
	disc := &Discovery{Digest: fuzzDigest}
	ann := map[string]string{annSignature: sig, annCertificate: cert, annChain: chain, annRekorBundle: rekor, annTimestamp: ts}
	s, err := parseLegacyLayer(payload, ann)
	noPanic(t, err)
	if err == nil {
		s.Source = "fuzz legacy"
		disc.Signatures = append(disc.Signatures, s)
	}
	s, err = parseBundleLayer(bundleJSON)
	noPanic(t, err)
	if err == nil {
		s.Source = "fuzz bundle"
		disc.Signatures = append(disc.Signatures, s)
	}
	isBundleMediaType(string(payload))
	return disc
}

func noPanic(t *testing.T, err error) {
	if err != nil && strings.Contains(err.Error(), panicMessage) {
		t.Fatal(err)
	}
}

// FuzzParseSignatureLayer: arbitrary annotation values, payloads and bundle
// bytes never make parsing a legacy layer or a bundle layer panic.
//
//	go test -run=^$ -fuzz=^FuzzParseSignatureLayer$ -fuzztime=10s ./verify
func FuzzParseSignatureLayer(f *testing.F) {
	shortMinimize()
	addSignatureSeeds(f, newKeyless(f), testKeys(f)["ecdsa-p256"])
	f.Fuzz(func(t *testing.T, payload []byte, sig, cert, chain, rekor, ts string, bundleJSON []byte) {
		parseFuzzInput(t, payload, sig, cert, chain, rekor, ts, bundleJSON)
	})
}

// FuzzCheckSignature: whatever parses is also checked (sigstore-go on
// hostile material) against key and keyless authorities without panicking.
// Slower per input than FuzzParseSignatureLayer.
//
//	go test -run=^$ -fuzz=^FuzzCheckSignature$ -fuzztime=30s ./verify
func FuzzCheckSignature(f *testing.F) {
	shortMinimize()
	kl, k := newKeyless(f), testKeys(f)["ecdsa-p256"]
	addSignatureSeeds(f, kl, k)
	checker, err := NewChecker(kl.trust())
	if err != nil {
		f.Fatal(err)
	}
	authorities := []*policy.Authority{k.authority(false, ""), k.authority(true, vsRoot),
		keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: testSubject}, false)}
	f.Fuzz(func(t *testing.T, payload []byte, sig, cert, chain, rekor, ts string, bundleJSON []byte) {
		disc := parseFuzzInput(t, payload, sig, cert, chain, rekor, ts, bundleJSON)
		for _, a := range authorities {
			res := checker.Check(a, disc, "registry.example/app", false)
			noPanic(t, errors.New(strings.Join(res.Reasons, "\n")))
		}
	})
}

// notFoundReader answers every read with ErrNotFound.
type notFoundReader struct{}

func (notFoundReader) Manifest(context.Context, Repository, string) (*Manifest, error) {
	return nil, ErrNotFound
}
func (notFoundReader) Referrers(context.Context, Repository, v1.Hash) (*v1.IndexManifest, error) {
	return nil, ErrNotFound
}
func (notFoundReader) Blob(context.Context, Repository, v1.Hash, int64) ([]byte, error) {
	return nil, ErrNotFound
}

// FuzzShapeCheck: whatever the bytes and the tag, the signature-material
// shape check never panics, and what it accepts has its kind's shape:
// bounded entries, only the layer types of the kind, an OCI index of OCI
// manifests for listings.
func FuzzShapeCheck(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}`), "sha256-"+strings.Repeat("a", 64))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}`), "sha256-"+strings.Repeat("b", 64))
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":10}]}`), "sha256-"+strings.Repeat("c", 64)+".sig")
	f.Add([]byte(`{"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json"}]}`), "sha256-"+strings.Repeat("d", 64)+".att")
	f.Add([]byte(`not json`), "v1")
	lim := Limits{}.withDefaults()
	f.Fuzz(func(t *testing.T, b []byte, ref string) {
		as, ok := signatureTagAs(ref)
		if !ok {
			as = judgeAs{kind: kindReferrer}
		}
		shape, err := parseShape(b)
		if err != nil {
			return
		}
		problem, err := shapeProblem(context.Background(), notFoundReader{}, Repository{Registry: "r", Name: "a"}, as.kind, shape, lim)
		if err != nil || problem != "" {
			return
		}
		if as.kind == kindFallback {
			if shape.MediaType != ociIndexType || len(shape.Layers) > 0 || len(shape.Manifests) > lim.MaxArtifactEntries {
				t.Fatalf("accepted a listing that is not an OCI index of at most %d entries: %s", lim.MaxArtifactEntries, b)
			}
			for _, d := range shape.Manifests {
				if string(d.MediaType) != ociManifestType {
					t.Fatalf("accepted a listing entry of type %s", d.MediaType)
				}
			}
			return
		}
		if len(shape.Layers) == 0 || len(shape.Layers) > lim.MaxArtifactEntries || len(shape.Manifests) > 0 || shape.Config == nil {
			t.Fatalf("accepted %s material with %d layers: %s", as.kind, len(shape.Layers), b)
		}
		if shape.Config.Digest.String() != emptyJSONDigest {
			t.Fatalf("accepted a config that was never read (the reader has none): %s", b)
		}
		for _, l := range shape.Layers {
			mt := string(l.MediaType)
			if l.Size > lim.MaxLayerBytes || isRunnableLayer(mt) {
				t.Fatalf("accepted layer %s of %d bytes in %s material", mt, l.Size, as.kind)
			}
		}
	})
}

func isRunnableLayer(mt string) bool {
	return strings.Contains(mt, "tar") || strings.Contains(mt, "rootfs")
}
