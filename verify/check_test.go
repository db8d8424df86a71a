package verify

import (
	"crypto"
	"fmt"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/portcullis-dev/portcullis/policy"
)

// scenario is one signed image served by a registry and the authority to
// check it with.
type scenario struct {
	tr    *testRegistry
	repo  Repository
	image v1.Descriptor
}

func newScenario(t testing.TB, referrers bool) *scenario {
	tr := newRegistry(t, referrers, nil)
	repo := tr.Repo("acme/app")
	return &scenario{tr: tr, repo: repo, image: tr.PushImage(repo, "v1")}
}

func (sc *scenario) check(t testing.TB, trust TrustProvider, a *policy.Authority, lim Limits, matchRepository bool) AuthorityResult {
	t.Helper()
	c, err := NewChecker(trust)
	if err != nil {
		t.Fatal(err)
	}
	disc := discover(sc.tr, sc.repo, sc.image.Digest, lim)
	return c.Check(a, disc, sc.repo.String(), matchRepository)
}

func forBothRegistries(t *testing.T, f func(t *testing.T, referrers bool)) {
	for _, referrers := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrersAPI=%v", referrers), func(t *testing.T) {
			t.Parallel()
			f(t, referrers)
		})
	}
}

func TestCheckKeys(t *testing.T) {
	for name, k := range testKeys(t) {
		t.Run(name, func(t *testing.T) {
			forBothRegistries(t, func(t *testing.T, referrers bool) {
				for _, format := range []Format{Legacy, Bundle} {
					sc := newScenario(t, referrers)
					if format == Legacy {
						sc.tr.PushLegacy(sc.repo, sc.image.Digest, k.LegacyKeyLayer(t, "registry.example/acme/app", sc.image.Digest))
					} else {
						sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, statementFor(sc.image.Digest, SignPredicateType)), SignPredicateType)
					}
					res := sc.check(t, TrustMap{}, k.Authority(false, ""), Limits{}, false)
					want := "key " + hintOf(k.Priv.Public()) + ", " + format.String()
					if !res.Passed || res.Identity != want {
						t.Errorf("%s: got %+v, want pass as %q", format, res, want)
					}
					if ev := res.Evidence; ev == nil || ev.Format != format.String() || ev.KeyHint != hintOf(k.Priv.Public()) || ev.Source == "" ||
						(format == Bundle) != (ev.PredicateType == SignPredicateType && len(ev.Statement) > 0) {
						t.Errorf("%s: evidence %+v", format, res.Evidence)
					}
				}
			})
		})
	}
}

func TestCheckKeyless(t *testing.T) {
	id := policy.Identity{Issuer: testIssuer, Subject: testSubject}
	cases := []struct {
		name             string
		format           Format
		withTlog, withTS bool
		requireTlog      bool
	}{
		{"legacy SET", Legacy, true, false, true},
		{"legacy TSA", Legacy, false, true, false},
		{"legacy SET and TSA", Legacy, true, true, true},
		{"bundle SET", Bundle, true, false, true},
		{"bundle TSA", Bundle, false, true, false},
		{"bundle SET and TSA, tlog optional", Bundle, true, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forBothRegistries(t, func(t *testing.T, referrers bool) {
				sc, kl := newScenario(t, referrers), newKeyless(t)
				d := sc.image.Digest
				if tc.format == Legacy {
					sc.tr.PushLegacy(sc.repo, d, kl.LegacyLayer(t, testSubject, d, tc.withTlog, tc.withTS))
				} else {
					sc.tr.PushReferrer(sc.repo, sc.image, kl.Bundle(t, testSubject, statementFor(d, SignPredicateType), tc.withTlog, tc.withTS), SignPredicateType)
				}
				res := sc.check(t, keylessTrust(kl), keylessAuthority(id, tc.requireTlog), Limits{}, false)
				want := fmt.Sprintf("issuer %s subject %s, %s", testIssuer, testSubject, tc.format)
				if !res.Passed || res.Identity != want {
					t.Errorf("got %+v, want pass as %q", res, want)
				}
				// The evidence: the verified identity, and a signing time
				// vouched for by the log or the timestamp authority.
				ev := res.Evidence
				if ev == nil || ev.Issuer != testIssuer || ev.Subject != testSubject || ev.SigningTime.IsZero() ||
					(ev.TimeSource != "Tlog" && ev.TimeSource != "TimestampAuthority") || ev.Format != tc.format.String() {
					t.Errorf("evidence %+v", ev)
				}
			})
		})
	}
}

// TestCheckKeyWithTlog: a key authority requiring a transparency log entry
// accepts a legacy key signature logged in the trust root's Rekor.
func TestCheckKeyWithTlog(t *testing.T) {
	k, kl := testKeys(t)["ecdsa-p256"], newKeyless(t)
	sc := newScenario(t, true)
	l := k.LegacyKeyLayer(t, "registry.example/acme/app", sc.image.Digest)
	pemKey, _ := cryptoutils.MarshalPublicKeyToPEM(k.Priv.Public())
	sig, _ := decodeB64(l.Annotations[annSignature])
	l.Annotations[annRekorBundle] = kl.RekorBundle(t, l.Payload, sig, pemKey)
	sc.tr.PushLegacy(sc.repo, sc.image.Digest, l)
	if res := sc.check(t, keylessTrust(kl), k.Authority(true, vsRoot), Limits{}, false); !res.Passed {
		t.Errorf("got %+v, want pass", res)
	}
	// The same entry does not verify against another Rekor.
	other := newKeyless(t)
	res := sc.check(t, keylessTrust(other), k.Authority(true, vsRoot), Limits{}, false)
	wantReasons(t, res, "transparency log entry does not verify against trust root virtual")
}

func TestCheckMatchRepository(t *testing.T) {
	k := testKeys(t)["ecdsa-p256"]
	sc := newScenario(t, true)
	sc.tr.PushLegacy(sc.repo, sc.image.Digest, k.LegacyKeyLayer(t, sc.repo.String()+":v1", sc.image.Digest))
	if res := sc.check(t, TrustMap{}, k.Authority(false, ""), Limits{}, true); !res.Passed {
		t.Errorf("got %+v, want pass", res)
	}
}

func TestSameRepository(t *testing.T) {
	cases := []struct {
		ref, image string
		want       bool
	}{
		{"index.docker.io/library/alpine", "docker.io/library/alpine", true},
		{"docker.io/alpine:3", "docker.io/library/alpine", true},
		{"registry-1.docker.io/acme/app@sha256:" + strings.Repeat("a", 64), "docker.io/acme/app", true},
		{"192.168.64.2:5000/cosign-signed/key-1", "192.168.64.2:5000/cosign-signed/key-1", true},
		{"ghcr.io/acme/app", "ghcr.io/acme/other", false},
		{"ghcr.io/acme/app", "quay.io/acme/app", false},
		{"", "docker.io/library/alpine", false},
	}
	for _, tc := range cases {
		if got := sameRepository(tc.ref, tc.image); got != tc.want {
			t.Errorf("sameRepository(%q, %q) = %v, want %v", tc.ref, tc.image, got, tc.want)
		}
	}
}

// TestCheckRefusals has one case per refusal reason.
func TestCheckRefusals(t *testing.T) {
	keys := testKeys(t)
	k, other := keys["ecdsa-p256"], keys["other-p256"]
	id := policy.Identity{Issuer: testIssuer, Subject: testSubject}
	cases := []struct {
		name  string
		setup func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority
		lim   Limits
		match bool
		want  []string
	}{{
		name:  "no signatures",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority { return k.Authority(false, "") },
		want:  []string{"no signatures found (looked in: referrers of sha256:", ", tag sha256-"},
	}, {
		name: "wrong key",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, other.LegacyKeyLayer(t, "r/x", sc.image.Digest))
			sc.tr.PushReferrer(sc.repo, sc.image, other.KeyBundle(t, statementFor(sc.image.Digest, SignPredicateType)), SignPredicateType)
			return k.Authority(false, "")
		},
		want: []string{"2 signatures found, none verified for key " + hintOf(k.Priv.Public()), "signers seen: key " + hintOf(other.Priv.Public()) + "; an unidentified key",
			"(legacy .sig): signature does not verify with key", "(sigstore bundle): signature does not verify with key"},
	}, {
		name: "wrong identity exact",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, kl.LegacyLayer(t, "mallory@example.com", sc.image.Digest, true, false))
			return keylessAuthority(id, true)
		},
		want: []string{"signers seen: certificate issuer https://issuer.example subject mallory@example.com",
			"identity issuer https://issuer.example subject mallory@example.com does not match issuer https://issuer.example subject alice@example.com"},
	}, {
		name: "wrong identity regexp",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			sc.tr.PushReferrer(sc.repo, sc.image, kl.Bundle(t, testSubject, statementFor(sc.image.Digest, SignPredicateType), true, false), SignPredicateType)
			return keylessAuthority(policy.Identity{IssuerRegExp: `^https://issuer\.example$`, SubjectRegExp: `^.*@other\.example$`}, true)
		},
		want: []string{"does not match issuer ~^https://issuer\\.example$ subject ~^.*@other\\.example$"},
	}, {
		name: "payload names another digest",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			otherImg := sc.tr.PushImage(sc.repo, "v2")
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, k.LegacyKeyLayer(t, "r/x", otherImg.Digest))
			sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, statementFor(otherImg.Digest, SignPredicateType)), SignPredicateType)
			return k.Authority(false, "")
		},
		want: []string{"(legacy .sig): payload names digest sha256:", "(sigstore bundle): statement names digest sha256:", ", not the image's sha256:"},
	}, {
		name: "attestation only",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			pt := "https://slsa.dev/provenance/v1"
			sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, statementFor(sc.image.Digest, pt)), pt)
			return k.Authority(false, "")
		},
		want: []string{"no signatures found", "1 attestation found but attestations are not signatures"},
	}, {
		name: "malformed annotation",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			l := k.LegacyKeyLayer(t, "r/x", sc.image.Digest)
			l.Annotations[annCertificate] = "not a certificate"
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, l)
			return k.Authority(false, "")
		},
		want: []string{"signature from tag sha256-", ".sig layer 0 (legacy .sig): malformed: certificate annotation: not PEM"},
	}, {
		name: "bundle under matchRepository",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, statementFor(sc.image.Digest, SignPredicateType)), SignPredicateType)
			return k.Authority(false, "")
		},
		match: true,
		want:  []string{"a sigstore bundle names no repository, and the policy sets matchRepository"},
	}, {
		name: "legacy under matchRepository, other repository",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, k.LegacyKeyLayer(t, "registry.example/acme/other", sc.image.Digest))
			return k.Authority(false, "")
		},
		match: true,
		want:  []string{"payload names repository registry.example/acme/other, not "},
	}, {
		name: "over maxSignatures",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			d := sc.image.Digest
			sc.tr.PushLegacy(sc.repo, d, other.LegacyKeyLayer(t, "r/x", d), other.LegacyKeyLayer(t, "r/x", d), k.LegacyKeyLayer(t, "r/x", d))
			return k.Authority(false, "")
		},
		lim:  Limits{MaxSignatures: 2},
		want: []string{"2 signatures found", "examined 2 of 3 signature candidates (maxSignatures)"},
	}, {
		name: "tlog required but absent",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, k.LegacyKeyLayer(t, "r/x", sc.image.Digest))
			return k.Authority(true, vsRoot)
		},
		want: []string{"no transparency log (Rekor) entry, and the authority requires one"},
	}, {
		name: "keyless without trusted time",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, kl.LegacyLayer(t, testSubject, sc.image.Digest, false, false))
			return keylessAuthority(id, false)
		},
		want: []string{"no trusted timestamp (no Rekor SET or RFC 3161 timestamp)"},
	}, {
		name: "key signature for keyless authority",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, statementFor(sc.image.Digest, SignPredicateType)), SignPredicateType)
			return keylessAuthority(id, true)
		},
		want: []string{"signed with key " + hintOf(k.Priv.Public()) + ", not with a certificate for issuer https://issuer.example subject alice@example.com"},
	}, {
		name: "trust root missing",
		setup: func(t *testing.T, sc *scenario, kl *keyless) *policy.Authority {
			a := keylessAuthority(id, true)
			a.TrustRoot = "nowhere"
			return a
		},
		want: []string{`trust root "nowhere" not available`},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc, kl := newScenario(t, true), newKeyless(t)
			a := tc.setup(t, sc, kl)
			res := sc.check(t, keylessTrust(kl), a, tc.lim, tc.match)
			wantReasons(t, res, tc.want...)
		})
	}
}

// wantReasons asserts a refusal whose reasons contain every fragment.
func wantReasons(t *testing.T, res AuthorityResult, fragments ...string) {
	t.Helper()
	if res.Passed {
		t.Fatalf("passed as %q, want refusal", res.Identity)
	}
	all := strings.Join(res.Reasons, "\n")
	t.Logf("reasons:\n%s", all)
	for _, f := range fragments {
		if !strings.Contains(all, f) {
			t.Errorf("reasons lack %q:\n%s", f, all)
		}
	}
}

func TestNewCheckerOptions(t *testing.T) {
	if _, err := NewChecker(nil); err == nil {
		t.Error("NewChecker(nil) succeeded")
	}
	c, err := NewChecker(TrustMap{})
	if err != nil {
		t.Fatal(err)
	}
	bad := []*policy.Authority{
		{Name: "none"},
		{Name: "both", Key: &policy.Key{}, Keyless: &policy.Keyless{}},
		{Name: "no key", Key: &policy.Key{}},
		{Name: "bad key", Key: &policy.Key{Public: crypto.PublicKey("x")}},
		{Name: "no ids", Keyless: &policy.Keyless{}},
		{Name: "bad re", Keyless: &policy.Keyless{Identities: []policy.Identity{{Issuer: "i", SubjectRegExp: "("}}}},
	}
	for _, a := range bad {
		if err := c.Prepare(a); err == nil {
			t.Errorf("Prepare(%s) succeeded", a.Name)
		}
	}
}

// TestCheckConcurrent: one Checker and one Discovery shared by concurrent
// checks (run with -race): entities and compiled verifiers are immutable.
func TestCheckConcurrent(t *testing.T) {
	sc, kl := newScenario(t, true), newKeyless(t)
	k, d := testKeys(t)["ecdsa-p384"], sc.image.Digest
	sc.tr.PushLegacy(sc.repo, d, kl.LegacyLayer(t, testSubject, d, true, true), k.LegacyKeyLayer(t, "r/x", d))
	sc.tr.PushReferrer(sc.repo, sc.image, kl.Bundle(t, testSubject, statementFor(d, SignPredicateType), true, true), SignPredicateType)
	disc := discover(sc.tr, sc.repo, d, Limits{})
	c, err := NewChecker(keylessTrust(kl))
	if err != nil {
		t.Fatal(err)
	}
	authorities := []*policy.Authority{k.Authority(false, ""), keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: testSubject}, true),
		keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: testSubject}, false)}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 4 {
				a := authorities[(i+j)%len(authorities)]
				if res := c.Check(a, disc, sc.repo.String(), false); !res.Passed {
					t.Errorf("%s: %v", a.Name, res.Reasons)
				}
			}
		})
	}
	wg.Wait()
}

// swappableTrust is a TrustProvider whose material changes, as a TUF-backed
// one does after a refresh.
type swappableTrust struct {
	mu sync.Mutex
	tm TrustMap
}

func (s *swappableTrust) set(tm TrustMap) { s.mu.Lock(); s.tm = tm; s.mu.Unlock() }
func (s *swappableTrust) TrustedMaterial(name string) (root.TrustedMaterial, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tm.TrustedMaterial(name)
}

// TestCheckerTrustRefresh: verifiers are rebuilt when the provider returns
// new material, and kept when it fails.
func TestCheckerTrustRefresh(t *testing.T) {
	sc, kl, other := newScenario(t, true), newKeyless(t), newKeyless(t)
	sc.tr.PushLegacy(sc.repo, sc.image.Digest, kl.LegacyLayer(t, testSubject, sc.image.Digest, true, false))
	disc := discover(sc.tr, sc.repo, sc.image.Digest, Limits{})
	trust := &swappableTrust{tm: TrustMap{vsRoot: kl.VS}}
	c, err := NewChecker(trust)
	if err != nil {
		t.Fatal(err)
	}
	a := keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: testSubject}, true)
	check := func() bool { return c.Check(a, disc, sc.repo.String(), false).Passed }
	if !check() {
		t.Fatal("not passing with the signing trust root")
	}
	trust.set(TrustMap{vsRoot: other.VS})
	if check() {
		t.Fatal("passing after the trust root changed")
	}
	trust.set(TrustMap{vsRoot: kl.VS})
	if !check() {
		t.Fatal("not passing after the trust root came back")
	}
	trust.set(TrustMap{})
	if !check() {
		t.Fatal("a failing provider discarded the last good verifiers")
	}
}

// TestFailureClasses: why a signature failed is typed as well as told.
func TestFailureClasses(t *testing.T) {
	k, other := testKeys(t)["ecdsa-p256"], testKeys(t)["ed25519"]
	kl := newKeyless(t)
	id := policy.Identity{Issuer: testIssuer, Subject: testSubject}
	for _, tc := range []struct {
		name  string
		push  func(sc *scenario)
		trust TrustProvider
		a     *policy.Authority
		want  policy.FailureClass
	}{
		{"nothing signed", func(*scenario) {}, TrustMap{}, k.Authority(false, ""), policy.FailNoSignatures},
		{"another key", func(sc *scenario) {
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, other.LegacyKeyLayer(t, "r/x", sc.image.Digest))
		}, TrustMap{}, k.Authority(false, ""), policy.FailSignature},
		{"another digest", func(sc *scenario) {
			d := sc.tr.PushImage(sc.repo, "v2").Digest
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, k.LegacyKeyLayer(t, "r/x", d))
		}, TrustMap{}, k.Authority(false, ""), policy.FailClaim},
		{"a key where a certificate is wanted", func(sc *scenario) {
			sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, statementFor(sc.image.Digest, SignPredicateType)), SignPredicateType)
		}, keylessTrust(kl), keylessAuthority(id, false), policy.FailSigner},
		{"no log entry where one is required", func(sc *scenario) {
			sc.tr.PushLegacy(sc.repo, sc.image.Digest, k.LegacyKeyLayer(t, "r/x", sc.image.Digest))
		}, keylessTrust(kl), k.Authority(true, vsRoot), policy.FailTlog},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := newScenario(t, true)
			tc.push(sc)
			res := sc.check(t, tc.trust, tc.a, Limits{}, false)
			if res.Passed || len(res.Failures) == 0 || res.Failures[0].Class != tc.want || res.Failures[0].Detail == "" {
				t.Fatalf("got %+v, want a failure of class %s", res.Failures, tc.want)
			}
		})
	}
}
