package verify

import (
	"context"
	"testing"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/policy"
)

// benchCase is a discovered image and an authority it passes.
type benchCase struct {
	name  string
	trust TrustProvider
	a     *policy.Authority
	disc  *Discovery
}

func benchCases(b *testing.B) []benchCase {
	k := testKeys(b)["ecdsa-p256"]
	kl := newKeyless(b)
	id := policy.Identity{Issuer: testIssuer, Subject: testSubject}
	var out []benchCase
	add := func(name string, trust TrustProvider, a *policy.Authority, push func(sc *scenario)) {
		sc := newScenario(b, true)
		push(sc)
		out = append(out, benchCase{name, trust, a, discover(sc.tr, sc.repo, sc.image.Digest, Limits{})})
	}
	add("key/legacy", TrustMap{}, k.Authority(false, ""), func(sc *scenario) {
		sc.tr.PushLegacy(sc.repo, sc.image.Digest, k.LegacyKeyLayer(b, "r/x", sc.image.Digest))
	})
	add("key/bundle", TrustMap{}, k.Authority(false, ""), func(sc *scenario) {
		sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(b, statementFor(sc.image.Digest, SignPredicateType)), SignPredicateType)
	})
	add("keyless/legacy-SET", keylessTrust(kl), keylessAuthority(id, true), func(sc *scenario) {
		sc.tr.PushLegacy(sc.repo, sc.image.Digest, kl.LegacyLayer(b, testSubject, sc.image.Digest, true, false))
	})
	add("keyless/legacy-TSA", keylessTrust(kl), keylessAuthority(id, false), func(sc *scenario) {
		sc.tr.PushLegacy(sc.repo, sc.image.Digest, kl.LegacyLayer(b, testSubject, sc.image.Digest, false, true))
	})
	add("keyless/bundle-SET+proof", keylessTrust(kl), keylessAuthority(id, true), func(sc *scenario) {
		sc.tr.PushReferrer(sc.repo, sc.image, kl.Bundle(b, testSubject, statementFor(sc.image.Digest, SignPredicateType), true, false), SignPredicateType)
	})
	return out
}

// BenchmarkCheck measures one Check of a passing signature with a warm
// Checker (verifiers compiled), i.e. the CPU cost of a decision after
// discovery.
func BenchmarkCheck(b *testing.B) {
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			c, err := NewChecker(bc.trust)
			if err != nil {
				b.Fatal(err)
			}
			if res := c.Check(bc.a, bc.disc, "registry.example/acme/app", false); !res.Passed {
				b.Fatalf("not passing: %v", res.Reasons)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.Check(bc.a, bc.disc, "registry.example/acme/app", false)
			}
		})
	}
}

// BenchmarkCheckRealKeyless: the 2023 public-good keyless legacy signature
// (Fulcio chain, SCT, Rekor SET) against the public-good trusted root.
func BenchmarkCheckRealKeyless(b *testing.B) {
	dir := realdata(b, "containers-image-cosign")
	l := sigstoreJSON(b, dir, "fulcio-rekor-1", "signature-1")
	s, err := parseLegacyLayer(l.Payload, l.Annotations)
	if err != nil {
		b.Fatal(err)
	}
	s.Source = "bench"
	d, _ := oci.Digest("sha256", readFile(b, dir, "fulcio-rekor-1", "manifest.json"))
	disc := &Discovery{Digest: d, Signatures: []*Signature{s}}
	c, err := NewChecker(publicGood(b))
	if err != nil {
		b.Fatal(err)
	}
	a := identityAuthority(githubOAuth, "mitr@redhat.com")
	if res := c.Check(a, disc, "r/x", false); !res.Passed {
		b.Fatalf("not passing: %v", res.Reasons)
	}
	b.ReportAllocs()
	for b.Loop() {
		c.Check(a, disc, "r/x", false)
	}
}

// BenchmarkDiscover: discovery of one legacy and one bundle signature from
// ggcr's registry over loopback HTTP (both formats looked up each time).
func BenchmarkDiscover(b *testing.B) {
	k := testKeys(b)["ecdsa-p256"]
	for _, referrers := range []bool{true, false} {
		name := "referrersAPI"
		if !referrers {
			name = "fallbackTag"
		}
		b.Run(name, func(b *testing.B) {
			sc := newScenario(b, referrers)
			d := sc.image.Digest
			sc.tr.PushLegacy(sc.repo, d, k.LegacyKeyLayer(b, "r/x", d))
			sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(b, statementFor(d, SignPredicateType)), SignPredicateType)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Discover(context.Background(), sc.tr.Reader, sc.repo, d, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
