package verify

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/policy"
)

// thresholdVerdict checks every authority of a threshold-2 policy against
// sc's signatures, as the gate does, and decides.
func thresholdVerdict(t *testing.T, sc *scenario, trust TrustProvider, auths ...*policy.Authority) (*Judgement, map[*policy.Authority]AuthorityResult) {
	t.Helper()
	c, err := NewChecker(trust)
	if err != nil {
		t.Fatal(err)
	}
	disc := sc.tr.discover(sc.repo, sc.image.Digest, Limits{})
	results := map[*policy.Authority]AuthorityResult{}
	for _, a := range auths {
		results[a] = c.Check(a, disc, sc.repo.String(), false)
	}
	plan := &policy.Plan{Image: sc.repo.String(), Digest: sc.image.Digest.String(),
		Matched: []*policy.ImagePolicy{{Name: "two-signers", Threshold: 2, Authorities: auths}}}
	return policyJudgement(plan, plan.Decide(results), "test"), results
}

// TestThresholdCountsKeysOnce: two authorities naming the same key, with a
// legacy .sig and a bundle made by that key, are one signer: threshold 2
// refuses the image, saying the signer was counted once. Two different
// keys, each with its signature, pass.
func TestThresholdCountsKeysOnce(t *testing.T) {
	k, other := testKeys(t)["ecdsa-p256"], testKeys(t)["ed25519"]
	sc := newScenario(t, true)
	d := sc.image.Digest
	sc.tr.pushLegacy(sc.repo, d, k.legacyKeyLayer(t, "registry.example/acme/app", d))
	sc.tr.pushReferrer(sc.repo, sc.image, k.keyBundle(t, statementFor(d, SignPredicateType)), SignPredicateType)

	release, again := k.authority(false, ""), k.authority(false, "")
	again.Name = "release-again"
	j, results := thresholdVerdict(t, sc, TrustMap{}, release, again)
	want := policy.KeySigner(k.priv.Public())
	for a, res := range results {
		if !res.Passed || res.Signer != want {
			t.Errorf("%s alone: got %+v, want a pass by signer %q", a.Name, res, want)
		}
	}
	if j.Decision != Deny || !strings.Contains(j.Why, "needs 2 of its authorities, 1 passed") ||
		!strings.Contains(j.Why, "release-again: passed, but its signer ("+want+") already counted for ecdsa-p256; a signer is counted once toward threshold") {
		t.Errorf("one key, two authorities: %v %q; want a refusal saying the signer counted once", j.Decision, j.Why)
	}

	sc.tr.pushReferrer(sc.repo, sc.image, other.keyBundle(t, statementFor(d, SignPredicateType)), SignPredicateType)
	if j, _ := thresholdVerdict(t, sc, TrustMap{}, release, other.authority(false, "")); j.Decision != Allow {
		t.Errorf("two keys: %v %q, want allowed", j.Decision, j.Why)
	}
}

// TestThresholdCountsIdentitiesOnce: two keyless authorities whose
// identities both match one certificate are one signer; two certificates
// for different subjects are two.
func TestThresholdCountsIdentitiesOnce(t *testing.T) {
	kl := newKeyless(t)
	sc := newScenario(t, true)
	d := sc.image.Digest
	sc.tr.pushReferrer(sc.repo, sc.image, kl.bundle(t, testSubject, statementFor(d, SignPredicateType), true, false), SignPredicateType)

	exact := keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: testSubject}, true)
	anyone := keylessAuthority(policy.Identity{Issuer: testIssuer, SubjectRegExp: "^.*@example\\.com$"}, true)
	anyone.Name = "anyone-at-example"
	j, results := thresholdVerdict(t, sc, kl.trust(), exact, anyone)
	want := policy.CertSigner(testIssuer, testSubject)
	if res := results[anyone]; !res.Passed || res.Signer != want {
		t.Errorf("anyone alone: got %+v, want a pass by signer %q", res, want)
	}
	if j.Decision != Deny || !strings.Contains(j.Why, "anyone-at-example: passed, but its signer ("+want+") already counted for keyless") {
		t.Errorf("one certificate, two authorities: %v %q; want a refusal saying the signer counted once", j.Decision, j.Why)
	}

	const bob = "bob@example.com"
	sc.tr.pushReferrer(sc.repo, sc.image, kl.bundle(t, bob, statementFor(d, SignPredicateType), true, false), SignPredicateType)
	bobs := keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: bob}, true)
	bobs.Name = "bob"
	if j, _ := thresholdVerdict(t, sc, kl.trust(), exact, bobs); j.Decision != Allow {
		t.Errorf("two subjects: %v %q, want allowed", j.Decision, j.Why)
	}
}
