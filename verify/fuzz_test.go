package verify

import (
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
	for _, l := range []layer{kl.LegacyLayer(f, testSubject, d, true, true), k.LegacyKeyLayer(f, "r/x", d)} {
		a := l.Annotations
		f.Add(l.Payload, a[annSignature], a[annCertificate], a[annChain], a[annRekorBundle], a[annTimestamp],
			kl.Bundle(f, testSubject, statementFor(d, SignPredicateType), true, true))
	}
	f.Add([]byte("{}"), "", "", "", "", "", k.KeyBundle(f, statementFor(d, "x")))
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
	checker, err := NewChecker(keylessTrust(kl))
	if err != nil {
		f.Fatal(err)
	}
	authorities := []*policy.Authority{k.Authority(false, ""), k.Authority(true, vsRoot),
		keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: testSubject}, false)}
	f.Fuzz(func(t *testing.T, payload []byte, sig, cert, chain, rekor, ts string, bundleJSON []byte) {
		disc := parseFuzzInput(t, payload, sig, cert, chain, rekor, ts, bundleJSON)
		for _, a := range authorities {
			res := checker.Check(a, disc, "registry.example/app", false)
			noPanic(t, errors.New(strings.Join(res.Reasons, "\n")))
		}
	})
}
