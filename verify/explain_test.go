package verify

import (
	"crypto"
	"fmt"
	"testing"

	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/portcullis-dev/portcullis/policy"
)

// TestExplainPrefixes drives sigstore-go into each failure whose message
// prefix explain relies on, so an upgrade that changes them fails here.
func TestExplainPrefixes(t *testing.T) {
	id := policy.Identity{Issuer: testIssuer, Subject: testSubject}
	cases := []struct {
		name  string
		layer func(t *testing.T, trusted, other *keyless, sc *scenario) layer
		a     *policy.Authority
		want  string
	}{{
		name: "timestamp from another TSA",
		layer: func(t *testing.T, trusted, other *keyless, sc *scenario) layer {
			return other.LegacyLayer(t, testSubject, sc.image.Digest, false, true)
		},
		a:    keylessAuthority(id, false),
		want: "no signing time could be established from trust root virtual (Rekor SET or RFC 3161 timestamp)",
	}, {
		name: "certificate from another CA",
		layer: func(t *testing.T, trusted, other *keyless, sc *scenario) layer {
			l := other.LegacyLayer(t, testSubject, sc.image.Digest, false, false)
			sig, _ := decodeB64(l.Annotations[annSignature])
			ts, err := trusted.VS.TimestampResponse(sig)
			if err != nil {
				t.Fatal(err)
			}
			l.Annotations[annTimestamp] = fmt.Sprintf(`{"SignedRFC3161Timestamp":%q}`, b64(ts))
			return l
		},
		a:    keylessAuthority(id, false),
		want: "certificate does not chain to a Fulcio CA of trust root virtual at the signing time",
	}, {
		name: "no SCT",
		layer: func(t *testing.T, trusted, other *keyless, sc *scenario) layer {
			return trusted.LegacyLayer(t, testSubject, sc.image.Digest, true, false)
		},
		a: func() *policy.Authority {
			a := keylessAuthority(id, true)
			a.Keyless.RequireSCT = true
			return a
		}(),
		want: "certificate has no valid SCT from a CT log of trust root virtual",
	}, {
		name: "Rekor entry from another log",
		layer: func(t *testing.T, trusted, other *keyless, sc *scenario) layer {
			l := trusted.LegacyLayer(t, testSubject, sc.image.Digest, false, true)
			sig, _ := decodeB64(l.Annotations[annSignature])
			l.Annotations[annRekorBundle] = other.RekorBundle(t, l.Payload, sig, []byte(l.Annotations[annCertificate]))
			return l
		},
		a:    keylessAuthority(id, true),
		want: "transparency log entry does not verify against trust root virtual",
	}, {
		name: "payload tampered",
		layer: func(t *testing.T, trusted, other *keyless, sc *scenario) layer {
			l := trusted.LegacyLayer(t, testSubject, sc.image.Digest, true, false)
			l.Payload = append(l.Payload, ' ')
			return l
		},
		a:    keylessAuthority(id, false),
		want: "does not verify against trust root virtual: transparency log hashedrekord entry digest",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc, trusted, other := newScenario(t, true), newKeyless(t), newKeyless(t)
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, tc.layer(t, trusted, other, sc))
			wantReasons(t, sc.check(t, keylessTrust(trusted), tc.a, Limits{}, false), tc.want)
		})
	}
}

// TestExplainIdentityError: sigstore-go's typed identity error is
// recognised (Check itself screens identities before verifying).
func TestExplainIdentityError(t *testing.T) {
	au := &authority{keyless: true, desc: "issuer a subject b"}
	s := &Signature{facts: sigFacts{issuer: "x", san: "y"}}
	err := fmt.Errorf("failed to verify certificate identity: %w", &sgverify.ErrNoMatchingCertificateIdentity{})
	if got, want := au.explain(err, s), fail(policy.FailSigner, "identity issuer x subject y does not match issuer a subject b"); got != want {
		t.Errorf("explain = %+v, want %+v", got, want)
	}
}

// TestSigstoreRefusesWithoutTime: without a SET or timestamp, sigstore-go
// itself refuses an expired keyless signature (Check's screening only
// words the reason); and a key signature verifies with a certificate
// attached, as with cosign --key.
func TestSigstoreRefusesWithoutTime(t *testing.T) {
	dir := realdata(t, "containers-image-cosign")
	l := sigstoreJSON(t, dir, "fulcio-rekor-1", "signature-1")
	delete(l.Annotations, annRekorBundle)
	s, err := parseLegacyLayer(l.Payload, l.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	a := identityAuthority(githubOAuth, "mitr@redhat.com")
	a.RequireTlog = false
	au, err := compileAuthority(a, publicGood(t))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := au.policyFor(s, s.DockerManifestDigest)
	if _, err := au.sig.plainV.Verify(s.Entity, pb); err == nil {
		t.Fatal("sigstore-go verified a keyless signature without a trusted time")
	} else {
		t.Log(err)
	}
}

// TestKeySignatureWithCertificate: a legacy layer signed with a key that
// also carries a certificate verifies under the key authority.
func TestKeySignatureWithCertificate(t *testing.T) {
	kl, sc := newKeyless(t), newScenario(t, true)
	l := kl.LegacyLayer(t, testSubject, sc.image.Digest, false, false)
	_, priv, _ := kl.VS.GenerateLeafCert(testSubject, testIssuer)
	k := &testKey{Name: "with-cert", Priv: priv.(crypto.Signer)}
	// Re-sign with k, keep a (foreign) certificate annotation.
	l.Annotations[annSignature] = b64(k.SignLegacy(t, l.Payload))
	sc.tr.PushLegacy(sc.repo, sc.image.Digest, l)
	if res := sc.check(t, TrustMap{}, k.Authority(false, ""), Limits{}, false); !res.Passed {
		t.Errorf("got %+v, want pass", res)
	}
}
