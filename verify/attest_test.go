package verify

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify/verifytest"
)

// Attestation requirements, checked in every format cosign and GitHub
// store attestations in, with keys, VirtualSigstore and GitHub-shaped
// certificates, and the real GitHub provenance bundles.

const (
	slsaV1   = "https://slsa.dev/provenance/v1"
	vulnType = "https://cosign.sigstore.dev/attestation/vuln/v1"
	// slsaPredicate is a GitHub-style SLSA v1 predicate.
	slsaPredicate = `{"buildDefinition":{"buildType":"https://actions.github.io/buildtypes/workflow/v1","externalParameters":{"workflow":{"ref":"refs/tags/v1","repository":"https://github.com/acme/app","path":".github/workflows/release.yml"}}},"runDetails":{"builder":{"id":"https://github.com/actions/runner/github-hosted"}}}`
)

// attAuthority is a with attestations required.
func attAuthority(t testing.TB, a *policy.Authority, atts ...*policy.Attestation) *policy.Authority {
	t.Helper()
	a.Attestations = atts
	return a
}

func mustAttestation(t testing.TB, name, predicateType, condition string, maxAge time.Duration) *policy.Attestation {
	t.Helper()
	at, err := policy.NewAttestation(name, predicateType, condition, maxAge)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func checkAt(t testing.TB, trust TrustProvider, a *policy.Authority, disc *Discovery, now time.Time) AuthorityResult {
	t.Helper()
	c, err := NewChecker(trust)
	if err != nil {
		t.Fatal(err)
	}
	return c.CheckAt(a, disc, "registry.example/acme/app", false, now)
}

func wantPass(t testing.TB, res AuthorityResult) {
	t.Helper()
	if !res.Passed {
		t.Fatalf("did not pass: %s", strings.Join(res.Reasons, "\n"))
	}
}

func wantRefusal(t testing.TB, res AuthorityResult, want string) {
	t.Helper()
	if res.Passed {
		t.Fatalf("passed as %s; want a refusal with %q", res.Identity, want)
	}
	if got := strings.Join(res.Reasons, "\n"); !strings.Contains(got, want) {
		t.Fatalf("reasons:\n%s\nwant %q", got, want)
	}
}

// TestAttestationFormats: a key-signed SLSA statement is found and
// satisfies a requirement in each format: a cosign v3 bundle referrer
// (with and without the referrers API), a legacy .att layer and an in-toto
// referrer; the image has no signature at all.
func TestAttestationFormats(t *testing.T) {
	k := testKeys(t)["ecdsa-p256"]
	formats := map[string]func(sc *scenario, stmt []byte){
		"bundle referrer": func(sc *scenario, stmt []byte) { sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, stmt), slsaV1) },
		"bundle referrer, no annotation": func(sc *scenario, stmt []byte) {
			sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, stmt), "")
		},
		"legacy .att": func(sc *scenario, stmt []byte) {
			sc.tr.PushAttestations(sc.repo, sc.image.Digest, k.EnvelopeLayer(t, stmt, slsaV1))
		},
		"in-toto referrer": func(sc *scenario, stmt []byte) {
			sc.tr.PushInTotoReferrer(sc.repo, sc.image, k.EnvelopeLayer(t, stmt, slsaV1))
		},
	}
	for name, push := range formats {
		forBothRegistries(t, func(t *testing.T, referrers bool) {
			t.Run(name, func(t *testing.T) {
				sc := newScenario(t, referrers)
				push(sc, verifytest.StatementWith(sc.image.Digest, slsaV1, slsaPredicate))
				disc := discover(sc.tr, sc.repo, sc.image.Digest, Limits{Attestations: true})
				if len(disc.Signatures) != 0 || len(disc.Attestations) != 1 {
					t.Fatalf("found %d signatures and %d attestations, want 0 and 1", len(disc.Signatures), len(disc.Attestations))
				}
				now := time.Now()
				a := attAuthority(t, k.Authority(false, ""), mustAttestation(t, "provenance", "slsaprovenance",
					`predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app"`, 0))
				res := checkAt(t, TrustMap{}, a, disc, now)
				wantPass(t, res)
				if res.Signer != policy.KeySigner(k.Priv.Public()) || !res.ValidUntil.IsZero() {
					t.Errorf("signer %q validUntil %v", res.Signer, res.ValidUntil)
				}
				// The same statement under requirements it does not meet.
				wantRefusal(t, checkAt(t, TrustMap{}, attAuthority(t, k.Authority(false, ""), mustAttestation(t, "scan", "vuln", "", 0)), disc, now),
					`needs attestation "scan" (vuln) from authority "ecdsa-p256": none found`)
				wantRefusal(t, checkAt(t, TrustMap{}, attAuthority(t, k.Authority(false, ""),
					mustAttestation(t, "provenance", "slsaprovenance", `predicate.runDetails.builder.id == "evil"`, 0)), disc, now),
					`found 1, condition false: predicate.runDetails.builder.id == "evil"`)
				wantRefusal(t, checkAt(t, TrustMap{}, attAuthority(t, testKeys(t)["other-p256"].Authority(false, ""),
					mustAttestation(t, "provenance", "slsaprovenance", "", 0)), disc, now), "found 1, none verified")
				// A key without a trust root has no signing time: maxAge never passes.
				wantRefusal(t, checkAt(t, TrustMap{}, attAuthority(t, k.Authority(false, ""),
					mustAttestation(t, "provenance", "slsaprovenance", "", time.Hour)), disc, now), "no verified signing time")
				// Attestations are not signatures.
				wantRefusal(t, checkAt(t, TrustMap{}, k.Authority(false, ""), disc, now), "1 attestation found but attestations are not signatures")
			})
		})
	}
}

// TestAttestationBinding: a statement binds through its signed subject
// digest, never the artifact's: one signed for another image, pushed as
// this image's referrer or .att, is refused; the .att tag is read only when
// asked for.
func TestAttestationBinding(t *testing.T) {
	k := testKeys(t)["ecdsa-p256"]
	sc := newScenario(t, true)
	other := sc.tr.PushImage(sc.repo, "other")
	stmt := verifytest.StatementWith(other.Digest, slsaV1, slsaPredicate)
	sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, stmt), slsaV1)
	sc.tr.PushAttestations(sc.repo, sc.image.Digest, k.EnvelopeLayer(t, stmt, slsaV1))
	a := attAuthority(t, k.Authority(false, ""), mustAttestation(t, "provenance", "slsaprovenance", "", 0))
	disc := discover(sc.tr, sc.repo, sc.image.Digest, Limits{Attestations: true})
	res := checkAt(t, TrustMap{}, a, disc, time.Now())
	wantRefusal(t, res, "found 2, none verified: statement names digest "+other.Digest.String())

	good := verifytest.StatementWith(sc.image.Digest, slsaV1, slsaPredicate)
	sc.tr.PushAttestations(sc.repo, sc.image.Digest, k.EnvelopeLayer(t, good, slsaV1))
	if d := discover(sc.tr, sc.repo, sc.image.Digest, Limits{}); len(d.Attestations) != 1 {
		t.Errorf("without Limits.Attestations: %d attestations, want the referrer only", len(d.Attestations))
	}
	wantPass(t, checkAt(t, TrustMap{}, a, discover(sc.tr, sc.repo, sc.image.Digest, Limits{Attestations: true}), time.Now()))
}

// TestAttestationMaxAge: a keyless statement's signing time is its
// verified timestamp (Rekor or TSA); the pass lasts until maxAge.
func TestAttestationMaxAge(t *testing.T) {
	kl := newKeyless(t)
	for _, tc := range []struct {
		name          string
		tlog, tsa     bool
		requireTlog   bool
		wantTimeSouce string
	}{
		{"rekor", true, false, true, "Tlog"},
		{"tsa", false, true, false, "TimestampAuthority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := newScenario(t, true)
			stmt := verifytest.StatementWith(sc.image.Digest, vulnType, `{"scanner":{"uri":"pkg:github/aquasecurity/trivy"},"metadata":{"scanFinishedOn":"2026-12-01T00:00:00Z"}}`)
			sc.tr.PushReferrer(sc.repo, sc.image, kl.Bundle(t, testSubject, stmt, tc.tlog, tc.tsa), vulnType)
			disc := discover(sc.tr, sc.repo, sc.image.Digest, Limits{})
			a := attAuthority(t, keylessAuthority(policy.Identity{Issuer: testIssuer, Subject: testSubject}, tc.requireTlog),
				mustAttestation(t, "scan", "vuln", `predicate.scanner.uri.startsWith("pkg:github/aquasecurity/")`, 24*time.Hour))
			now := time.Now()
			res := checkAt(t, keylessTrust(kl), a, disc, now)
			wantPass(t, res)
			if res.Evidence == nil || res.Evidence.TimeSource != tc.wantTimeSouce || res.Evidence.PredicateType != vulnType {
				t.Errorf("evidence %+v", res.Evidence)
			}
			signed := res.Evidence.SigningTime
			if want := signed.Add(24 * time.Hour); !res.ValidUntil.Equal(want) {
				t.Errorf("ValidUntil %v, want signing time + maxAge %v", res.ValidUntil, want)
			}
			wantRefusal(t, checkAt(t, keylessTrust(kl), a, disc, signed.Add(25*time.Hour)), "found 1, older than 24h: signed ")
		})
	}
}

// TestAttestationGitHubIdentity: GitHub-shaped certificates (a URI SAN
// naming the signing workflow, GitHub's extensions) from a CA of the
// test's own, logged in the VirtualSigstore: `github:` pins the source
// repository, the build config's workflow (not the signer's: a reusable
// workflow signs as itself), the ref and the runner; `extensions:` any
// extension.
func TestAttestationGitHubIdentity(t *testing.T) {
	gh := verifytest.NewGitHubCA(t)
	trust := TrustMap{vsRoot: gh.Trust()}
	build := verifytest.GitHubBuild{Repository: "acme/app", Workflow: ".github/workflows/release.yml", Ref: "refs/tags/v1.2.0",
		Runner: "github-hosted", SignerWorkflow: "acme/shared/.github/workflows/attest.yml@refs/heads/main"}
	sc := newScenario(t, false)
	sc.tr.PushReferrer(sc.repo, sc.image, gh.Bundle(t, build, verifytest.StatementWith(sc.image.Digest, slsaV1, slsaPredicate), true, false), slsaV1)
	disc := discover(sc.tr, sc.repo, sc.image.Digest, Limits{})
	for _, tc := range []struct {
		name string
		id   policy.Identity
		want string // "" for a pass
	}{
		{"repository", policy.Identity{Issuer: verifytest.GitHubIssuer, GitHub: &policy.GitHubIdentity{Repository: "acme/app"}}, ""},
		{"all of github", policy.Identity{Issuer: verifytest.GitHubIssuer, GitHub: &policy.GitHubIdentity{Repository: "acme/app",
			Workflow: ".github/workflows/release.yml", Ref: "refs/tags/v*", Runner: "github-hosted"}}, ""},
		{"extensions", policy.Identity{Issuer: verifytest.GitHubIssuer, Extensions: map[string]string{
			"sourceRepositoryOwnerURI": "https://github.com/acme", "buildConfigURIRegExp": `^https://github\.com/acme/app/`}}, ""},
		{"with a subject", policy.Identity{Issuer: verifytest.GitHubIssuer, SubjectRegExp: `^https://github\.com/acme/shared/`,
			GitHub: &policy.GitHubIdentity{Repository: "acme/app"}}, ""},
		{"other repository", policy.Identity{Issuer: verifytest.GitHubIssuer, GitHub: &policy.GitHubIdentity{Repository: "evil/app"}},
			"source repository is https://github.com/acme/app, not https://github.com/evil/app"},
		{"the signer's workflow", policy.Identity{Issuer: verifytest.GitHubIssuer, GitHub: &policy.GitHubIdentity{Repository: "acme/app",
			Workflow: ".github/workflows/attest.yml"}}, "not workflow .github/workflows/attest.yml"},
		{"branch, not tag", policy.Identity{Issuer: verifytest.GitHubIssuer, GitHub: &policy.GitHubIdentity{Ref: "refs/heads/*"}},
			"source ref is refs/tags/v1.2.0, not refs/heads/*"},
		{"self-hosted", policy.Identity{Issuer: verifytest.GitHubIssuer, GitHub: &policy.GitHubIdentity{Runner: "self-hosted"}},
			"runner environment is github-hosted"},
		{"extension regexp", policy.Identity{Issuer: verifytest.GitHubIssuer, Extensions: map[string]string{"sourceRepositoryURIRegExp": "^https://github.com/evil/"}},
			"does not match"},
		{"other issuer", policy.Identity{Issuer: "https://token.example", GitHub: &policy.GitHubIdentity{Repository: "acme/app"}},
			"does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := attAuthority(t, keylessAuthority(tc.id, true), mustAttestation(t, "provenance", "slsaprovenance",
				`signer.extensions.sourceRepositoryURI == "https://github.com/acme/app" && signer.subject.startsWith("https://github.com/acme/shared/")`, 0))
			res := checkAt(t, trust, a, disc, time.Now())
			if tc.want == "" {
				wantPass(t, res)
				return
			}
			wantRefusal(t, res, tc.want)
		})
	}
	// The same identities pin image signatures.
	sc.tr.PushReferrer(sc.repo, sc.image, gh.Bundle(t, build, statementFor(sc.image.Digest, SignPredicateType), true, false), SignPredicateType)
	disc = discover(sc.tr, sc.repo, sc.image.Digest, Limits{})
	wantPass(t, checkAt(t, trust, keylessAuthority(policy.Identity{Issuer: verifytest.GitHubIssuer, GitHub: &policy.GitHubIdentity{Repository: "acme/app"}}, true), disc, time.Now()))
	wantRefusal(t, checkAt(t, trust, keylessAuthority(policy.Identity{Issuer: verifytest.GitHubIssuer, GitHub: &policy.GitHubIdentity{Repository: "evil/app"}}, true), disc, time.Now()),
		"source repository is https://github.com/acme/app")
}

// TestRealdataGitHubAttestations: GitHub's real build-provenance bundles
// (../shared/realdata/github-attestations) verify against the public-good
// root with their real identities; the github: shorthand pins the
// reusable-workflow case to its source repository; CEL conditions over the
// real predicates pass and fail as written; the invalid one is refused.
func TestRealdataGitHubAttestations(t *testing.T) {
	dir := realdata(t, "github-attestations")
	trust := publicGood(t)
	load := func(t *testing.T, bundleFile, artifact string, sha512sum bool) *Discovery {
		t.Helper()
		s, err := parseBundleLayer(readFile(t, dir, bundleFile))
		if err != nil {
			t.Fatalf("%s: %v", bundleFile, err)
		}
		s.Source, s.Attestation = bundleFile, true
		b := readFile(t, dir, artifact)
		d := v1.Hash{Algorithm: "sha256"}
		if sha512sum {
			sum := sha512.Sum512(b)
			d = v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(sum[:])}
		} else {
			sum := sha256.Sum256(b)
			d.Hex = hex.EncodeToString(sum[:])
		}
		return &Discovery{Digest: d, Attestations: []*Signature{s}}
	}
	gh := func(id policy.Identity, condition string) *policy.Authority {
		a := identityAuthority(githubOIDC, "")
		id.Issuer = githubOIDC
		a.Keyless.Identities = []policy.Identity{id}
		a.TrustRoot = policy.PublicGood
		return attAuthority(t, a, mustAttestation(t, "provenance", "slsaprovenance", condition, 0))
	}
	t.Run("reusable workflow", func(t *testing.T) {
		disc := load(t, "reusable-workflow-attestation.sigstore.json", "reusable-workflow-artifact", false)
		now := time.Now()
		res := checkAt(t, trust, gh(policy.Identity{GitHub: &policy.GitHubIdentity{Repository: "malancas/attest-demo", Workflow: ".github/workflows/shared.yml", Ref: "refs/heads/main"}},
			`predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/malancas/attest-demo"`), disc, now)
		wantPass(t, res)
		if res.Evidence == nil || res.Evidence.TimeSource != "Tlog" || res.Evidence.Subject != "https://github.com/github/artifact-attestations-workflows/.github/workflows/attest.yml@09b495c3f12c7881b3cc17209a327792065c1a1d" {
			t.Errorf("evidence %+v", res.Evidence)
		}
		wantRefusal(t, checkAt(t, trust, gh(policy.Identity{GitHub: &policy.GitHubIdentity{Repository: "github/artifact-attestations-workflows"}}, ""), disc, now),
			"source repository is https://github.com/malancas/attest-demo")
		wantRefusal(t, checkAt(t, trust, gh(policy.Identity{GitHub: &policy.GitHubIdentity{Repository: "malancas/attest-demo", Workflow: ".github/workflows/attest.yml"}}, ""), disc, now),
			"not workflow .github/workflows/attest.yml")
		wantRefusal(t, checkAt(t, trust, gh(policy.Identity{GitHub: &policy.GitHubIdentity{Repository: "malancas/attest-demo"}},
			`predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app"`), disc, now), "condition false")
		wantRefusal(t, checkAt(t, trust, gh(policy.Identity{GitHub: &policy.GitHubIdentity{Repository: "malancas/attest-demo"}}, "predicate.noSuchField == 1"), disc, now),
			"condition could not be evaluated")
		// Signed in 2024: far older than a day.
		a := gh(policy.Identity{GitHub: &policy.GitHubIdentity{Repository: "malancas/attest-demo"}}, "")
		a.Attestations[0].MaxAge = 24 * time.Hour
		wantRefusal(t, checkAt(t, trust, a, disc, now), "older than 24h: signed 2024-")
	})
	t.Run("custom issuer", func(t *testing.T) {
		disc := load(t, "custom-issuer.sigstore.json", "custom-issuer-artifact", false)
		s := disc.Attestations[0]
		a := identityAuthority(s.facts.issuer, "https://github.com/too-legit/attest/.github/workflows/integration.yml@refs/heads/main")
		a.TrustRoot = policy.PublicGood
		wantPass(t, checkAt(t, trust, attAuthority(t, a, mustAttestation(t, "provenance", "slsaprovenance", `predicate.buildDefinition.buildType.startsWith("https://")`, 0)), disc, time.Now()))
	})
	t.Run("sigstore-js, sha512 subject", func(t *testing.T) {
		disc := load(t, "sigstore-js-2.1.0-bundle.json", "sigstore-js-2.1.0.tgz", true)
		a := gh(policy.Identity{Subject: "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main",
			GitHub: &policy.GitHubIdentity{Repository: "sigstore/sigstore-js"}}, `subject[0].name == "pkg:npm/sigstore@2.1.0"`)
		wantPass(t, checkAt(t, trust, a, disc, time.Now()))
	})
	t.Run("invalid signature", func(t *testing.T) {
		b := readFile(t, dir, "sigstoreBundle-invalid-signature.json")
		s, err := parseBundleLayer(b)
		if err != nil {
			return // refused as malformed
		}
		disc := &Discovery{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}, Attestations: []*Signature{s}}
		if len(s.SubjectDigests) > 0 {
			disc.Digest, _ = v1.NewHash(s.SubjectDigests[0])
		}
		res := checkAt(t, trust, gh(policy.Identity{GitHub: &policy.GitHubIdentity{}}, ""), disc, time.Now())
		if res.Passed {
			t.Fatal("the invalid bundle passed")
		}
	})
}

// TestRealdataCosignAttestations: a real keyless cosign attestation on a
// reproducible manifest satisfies a requirement of its predicate type;
// policy-controller's distroless .att (a real certificate and SET around
// an envelope that does not match its log entry) is refused.
func TestRealdataCosignAttestations(t *testing.T) {
	forBothRegistries(t, func(t *testing.T, referrers bool) {
		tr := newRegistry(t, referrers, nil)
		att := realdata(t, "cosign-oci-attestation-v03")
		trust, err := StaticTrust(map[string][]byte{"pgi": readFile(t, att, "trusted_root_pgi.json")})
		if err != nil {
			t.Fatal(err)
		}
		repo := tr.Repo("attested")
		d := pushExact(tr, repo, "latest", readFile(t, att, "manifest.json"), "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4")
		tr.PushReferrer(repo, v1.Descriptor{MediaType: "application/vnd.docker.distribution.manifest.v2+json", Digest: d, Size: 1},
			readFile(t, att, "oci-attestation.sigstore.json"), "https://cosign.sigstore.dev/attestation/v1")
		a := identityAuthority(githubOAuth, "cody@soyland.com")
		a.TrustRoot = "pgi"
		a = attAuthority(t, a, mustAttestation(t, "custom", "https://cosign.sigstore.dev/attestation/v1", "", 0))
		res := checkAt(t, trust, a, discover(tr, repo, d, Limits{Attestations: true}), time.Now())
		wantPass(t, res)

		pc := realdata(t, "policy-controller-distroless-att")
		drepo := tr.Repo("distroless/static")
		dd, _ := v1.NewHash("sha256:a1e82f6a5f6dfc735165d3442e7cc5a615f72abac3db19452481f5f3c90fbfa8")
		tr.PushAttestations(drepo, dd, verifytest.Layer{Payload: readFile(t, pc, "envelope.json"), Annotations: map[string]string{
			"dev.cosignproject.cosign/signature": "", "predicateType": vulnType,
			"dev.sigstore.cosign/certificate": string(readFile(t, pc, "cert.pem")), "dev.sigstore.cosign/chain": string(readFile(t, pc, "chain.pem")),
			"dev.sigstore.cosign/bundle": string(readFile(t, pc, "rekor-bundle.json")),
		}})
		ddisc := discover(tr, drepo, dd, Limits{Attestations: true})
		if len(ddisc.Attestations) != 1 {
			t.Fatalf("found %d attestations, want 1", len(ddisc.Attestations))
		}
		pa := identityAuthority(githubOIDC, "https://github.com/distroless/static/.github/workflows/release.yaml@refs/heads/main")
		pa.TrustRoot = policy.PublicGood
		pa = attAuthority(t, pa, mustAttestation(t, "scan", "vuln", "", 0))
		wantRefusal(t, checkAt(t, publicGood(t), pa, ddisc, time.Now()), `needs attestation "scan" (vuln) from authority "keyless": none found (1 attestation malformed: bundle annotation: Rekor entry`)
	})
}

// TestFulcioExtensionNames pins policy.FulcioExtensions to sigstore-go's
// JSON names of certificate.Extensions (all but issuer).
func TestFulcioExtensionNames(t *testing.T) {
	names := extensionNames()
	if strings.Join(names, ",") != strings.Join(policy.FulcioExtensions, ",") {
		t.Errorf("sigstore-go's extensions:\n%v\npolicy.FulcioExtensions:\n%v", names, policy.FulcioExtensions)
	}
}

// extensionNames are the JSON names of sigstore-go's certificate
// extensions, in field order, without issuer.
func extensionNames() []string {
	var out []string
	typ := reflect.TypeOf(certificate.Extensions{})
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "issuer" && name != "" {
			out = append(out, name)
		}
	}
	return out
}

// TestAttestationEnvelopeTimestamp: cosign v2's attest
// --timestamp-server-url timestamps an .att layer's whole DSSE envelope
// (cosign v3 and sigstore-go timestamp the signature): either gives a key
// authority with a trust root that has the TSA the signing time maxAge
// needs; a timestamp from a TSA outside it gives none.
func TestAttestationEnvelopeTimestamp(t *testing.T) {
	kl, rogue := newKeyless(t), newKeyless(t)
	k := testKeys(t)["ecdsa-p256"]
	for _, tc := range []struct {
		name    string
		tsa     *keyless
		overEnv bool
		want    string // "" for a pass
	}{
		{"over the envelope (cosign v2)", kl, true, ""},
		{"over the signature (cosign v3)", kl, false, ""},
		{"from another TSA", rogue, true, "no verified signing time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := newScenario(t, true)
			l := k.EnvelopeLayer(t, verifytest.StatementWith(sc.image.Digest, vulnType, `{"scanner":{"uri":"x"}}`), vulnType)
			over := l.Payload
			if !tc.overEnv {
				var env struct {
					Signatures []struct {
						Sig string `json:"sig"`
					} `json:"signatures"`
				}
				if err := json.Unmarshal(l.Payload, &env); err != nil {
					t.Fatal(err)
				}
				sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
				if err != nil {
					t.Fatal(err)
				}
				over = sig
			}
			ts, err := tc.tsa.VS.TimestampResponse(over)
			if err != nil {
				t.Fatal(err)
			}
			l.Annotations["dev.sigstore.cosign/rfc3161timestamp"] = fmt.Sprintf(`{"SignedRFC3161Timestamp":%q}`, b64(ts))
			sc.tr.PushAttestations(sc.repo, sc.image.Digest, l)
			disc := discover(sc.tr, sc.repo, sc.image.Digest, Limits{Attestations: true})
			a := attAuthority(t, k.Authority(false, vsRoot), mustAttestation(t, "scan", "vuln", "", time.Hour))
			res := checkAt(t, keylessTrust(kl), a, disc, time.Now())
			if tc.want != "" {
				wantRefusal(t, res, tc.want)
				return
			}
			wantPass(t, res)
			if res.Evidence.TimeSource != "TimestampAuthority" || time.Since(res.Evidence.SigningTime) > time.Minute || res.ValidUntil.IsZero() {
				t.Errorf("evidence %+v, validUntil %v", res.Evidence, res.ValidUntil)
			}
		})
	}
}

// TestShortDuration: maxAge in messages reads as policies write it.
func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{720 * time.Hour: "720h", 90 * time.Minute: "1h30m", 2 * time.Second: "2s",
		10 * time.Second: "10s", 30 * time.Minute: "30m", time.Hour + time.Second: "1h0m1s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

// TestInTotoReferrersShareTheBudget: envelopes of in-toto referrers count
// toward maxSignatures with everything else (one referrer is one planned
// candidate; its other envelopes take what is left), and the same envelope
// listed twice is read once.
func TestInTotoReferrersShareTheBudget(t *testing.T) {
	k := testKeys(t)["ecdsa-p256"]
	sc := newScenario(t, true)
	for r := range 3 {
		var layers []layer
		for i := range 5 {
			stmt := verifytest.StatementWith(sc.image.Digest, slsaV1, fmt.Sprintf(`{"r":%d,"i":%d}`, r, i))
			l := k.EnvelopeLayer(t, stmt, slsaV1)
			layers = append(layers, l, l) // each twice
		}
		sc.tr.PushInTotoReferrer(sc.repo, sc.image, layers...)
	}
	disc := discover(sc.tr, sc.repo, sc.image.Digest, Limits{MaxSignatures: 6})
	if n := len(disc.Attestations); n != 6 {
		t.Errorf("%d attestations read, want the budget of 6", n)
	}
	if disc.Skipped != 15-6 {
		t.Errorf("skipped %d, want %d", disc.Skipped, 15-6)
	}
}
