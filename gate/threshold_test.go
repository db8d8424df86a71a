package gate

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
)

// thresholdVerdict checks every authority of a threshold-2 policy against
// sc's signatures, as the gate does, and decides.
func thresholdVerdict(t *testing.T, sc *scenario, trust verify.TrustProvider, auths ...*policy.Authority) (*Judgement, map[*policy.Authority]verify.AuthorityResult) {
	t.Helper()
	c, err := verify.NewChecker(trust)
	if err != nil {
		t.Fatal(err)
	}
	disc := discover(sc.tr, sc.repo, sc.image.Digest, verify.Limits{})
	results := map[*policy.Authority]verify.AuthorityResult{}
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
	sc.tr.PushLegacy(sc.repo, d, k.LegacyKeyLayer(t, "registry.example/acme/app", d))
	sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, statementFor(d, verify.SignPredicateType)), verify.SignPredicateType)

	release, again := k.Authority(false, ""), k.Authority(false, "")
	again.Name = "release-again"
	j, results := thresholdVerdict(t, sc, verify.TrustMap{}, release, again)
	want := policy.KeySigner(k.Priv.Public())
	for a, res := range results {
		if !res.Passed || res.Signer != want {
			t.Errorf("%s alone: got %+v, want a pass by signer %q", a.Name, res, want)
		}
	}
	if j.Decision != Deny || !strings.Contains(j.Why, "needs 2 of its authorities, 1 passed") ||
		!strings.Contains(j.Why, "release-again: passed, but its signer ("+want+") already counted for ecdsa-p256; a signer is counted once toward threshold") {
		t.Errorf("one key, two authorities: %v %q; want a refusal saying the signer counted once", j.Decision, j.Why)
	}

	sc.tr.PushReferrer(sc.repo, sc.image, other.KeyBundle(t, statementFor(d, verify.SignPredicateType)), verify.SignPredicateType)
	if j, _ := thresholdVerdict(t, sc, verify.TrustMap{}, release, other.Authority(false, "")); j.Decision != Allow {
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
	sc.tr.PushReferrer(sc.repo, sc.image, kl.Bundle(t, testSubject, statementFor(d, verify.SignPredicateType), true, false), verify.SignPredicateType)

	exact := keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: testSubject}, true)
	anyone := keylessAuthority(policy.Identity{Issuer: testIssuer, SubjectRegExp: "^.*@example\\.com$"}, true)
	anyone.Name = "anyone-at-example"
	j, results := thresholdVerdict(t, sc, keylessTrust(kl), exact, anyone)
	want := policy.CertSigner(testIssuer, testSubject)
	if res := results[anyone]; !res.Passed || res.Signer != want {
		t.Errorf("anyone alone: got %+v, want a pass by signer %q", res, want)
	}
	if j.Decision != Deny || !strings.Contains(j.Why, "anyone-at-example: passed, but its signer ("+want+") already counted for keyless") {
		t.Errorf("one certificate, two authorities: %v %q; want a refusal saying the signer counted once", j.Decision, j.Why)
	}

	const bob = "bob@example.com"
	sc.tr.PushReferrer(sc.repo, sc.image, kl.Bundle(t, bob, statementFor(d, verify.SignPredicateType), true, false), verify.SignPredicateType)
	bobs := keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: bob}, true)
	bobs.Name = "bob"
	if j, _ := thresholdVerdict(t, sc, keylessTrust(kl), exact, bobs); j.Decision != Allow {
		t.Errorf("two subjects: %v %q, want allowed", j.Decision, j.Why)
	}
}
