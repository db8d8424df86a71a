package verify

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/portcullis-dev/portcullis/policy"
)

// AuthorityResult is the decision for one authority. On a pass, Identity
// is "key <hint>, <format>" or "issuer <iss> subject <san>, <format>", and
// Signer is who verified, whatever the format: policy.KeySigner of the
// authority's key, or policy.CertSigner of the certificate's issuer and
// subject (so that threshold counts each signer once); on a failure,
// Reasons explain it, most useful first.
type AuthorityResult = policy.AuthorityResult

// DefaultMaxReasons bounds the per-signature lines in a result.
const DefaultMaxReasons = 8

// maxCachedAuthorities bounds the compiled-authority cache of a Checker.
// A Checker belongs to one policy snapshot (a reload makes a new one), so
// this only guards against a policy with very many authorities.
const maxCachedAuthorities = 1024

// Checker decides authorities against discovered signatures. It compiles
// each authority into sigstore-go verifiers once and reuses them; it is
// safe for concurrent use.
type Checker struct {
	trust      TrustProvider
	maxReasons int

	mu    sync.Mutex
	auths map[*policy.Authority]*authority
}

// NewChecker returns a Checker taking trust roots from trust.
func NewChecker(trust TrustProvider) (*Checker, error) {
	if trust == nil {
		return nil, fmt.Errorf("verify: nil TrustProvider")
	}
	return &Checker{trust: trust, maxReasons: DefaultMaxReasons, auths: map[*policy.Authority]*authority{}}, nil
}

// Prepare compiles a ahead of its first Check, so that a policy load can
// report a bad key, identity regexp or missing trust root at once. Check
// calls it lazily.
func (c *Checker) Prepare(a *policy.Authority) error {
	_, err := c.compiled(a)
	return err
}

func (c *Checker) compiled(a *policy.Authority) (*authority, error) {
	c.mu.Lock()
	au := c.auths[a]
	c.mu.Unlock()
	if au != nil && c.fresh(a, au) {
		return au, nil
	}
	au, err := compileAuthority(a, c.trust)
	if err != nil {
		return nil, fmt.Errorf("authority %q: %w", authorityName(a), err)
	}
	c.mu.Lock()
	if len(c.auths) >= maxCachedAuthorities {
		clear(c.auths)
	}
	c.auths[a] = au
	c.mu.Unlock()
	return au, nil
}

// fresh reports whether au can be reused: the provider still returns the
// trust material it was built with. A provider error keeps the verifiers
// built from the last good material (a transient TUF failure must not turn
// into refusals).
func (c *Checker) fresh(a *policy.Authority, au *authority) bool {
	if au.tm == nil {
		return true
	}
	tm, err := c.trust.TrustedMaterial(rootName(a))
	if err != nil || tm == nil {
		return true
	}
	t1, t2 := reflect.TypeOf(tm), reflect.TypeOf(au.tm)
	return t1 == t2 && t1.Comparable() && tm == au.tm
}

func authorityName(a *policy.Authority) string {
	if a == nil {
		return ""
	}
	return a.Name
}

// Check decides authority a for the image digest of disc. image names the
// repository being served ("registry/repo"); matchRepository requires a
// signed docker-reference naming it. Passed iff at least one signature
// verifies under a and names the digest being served; for an authority
// with attestations, iff each is satisfied by a statement that verifies
// under a (see CheckAt).
func (c *Checker) Check(a *policy.Authority, disc *Discovery, image string, matchRepository bool) AuthorityResult {
	return c.CheckAt(a, disc, image, matchRepository, time.Now())
}

// CheckAt is Check at time now: the time attestations' maxAge and
// conditions (`now`) are evaluated at.
func (c *Checker) CheckAt(a *policy.Authority, disc *Discovery, image string, matchRepository bool, now time.Time) AuthorityResult {
	au, err := c.compiled(a)
	if err != nil {
		class := policy.FailConfig
		if tnl := (*TrustNotLoadedError)(nil); errors.As(err, &tnl) {
			class = policy.FailTrustNotLoaded
		}
		return AuthorityResult{Reasons: []string{err.Error()}, Failures: []policy.Failure{{Class: class, Detail: err.Error()}}}
	}
	if len(a.Attestations) > 0 {
		if disc == nil {
			disc = &Discovery{}
		}
		return c.checkAttestations(au, a, disc, now)
	}
	if disc == nil || len(disc.Signatures) == 0 {
		reasons := noSignatures(disc)
		return AuthorityResult{Reasons: reasons, Failures: []policy.Failure{{Class: policy.FailNoSignatures, Detail: reasons[0]}}}
	}
	var fails []sigFailure
	for _, s := range disc.Signatures {
		if s.Malformed != "" {
			fails = append(fails, sigFailure{s, fail(policy.FailMalformed, "malformed: %s", s.Malformed)})
			continue
		}
		who, reason := au.checkOne(s, disc.Digest.String(), image, matchRepository)
		if reason.ok() {
			return AuthorityResult{Passed: true, Identity: who.identity + ", " + s.Format.String(), Signer: who.signer,
				Evidence: evidence(s, who)}
		}
		fails = append(fails, sigFailure{s, reason})
	}
	out := make([]policy.Failure, len(fails))
	for i, f := range fails {
		out[i] = policy.Failure{Class: f.reason.class, Source: f.sig.Source, Detail: f.reason.detail}
	}
	return AuthorityResult{Reasons: c.explainFailures(au, disc, fails), Failures: out}
}

// sigFailure is why one signature did not pass.
type sigFailure struct {
	sig    *Signature
	reason failure
}

// signedBy is who made a signature that verified.
type signedBy struct {
	identity string // for people: au.desc, or "issuer X subject Y"
	signer   string // for threshold: policy.KeySigner or policy.CertSigner
	keyHint  string // the key's, for a key authority
	res      *sgverify.VerificationResult
}

// evidence is the typed account of s, verified as res says.
func evidence(s *Signature, who signedBy) *policy.Evidence {
	ev := &policy.Evidence{Format: s.Format.String(), Source: s.Source, KeyHint: who.keyHint}
	res := who.res
	if res == nil {
		return ev
	}
	if res.Signature != nil && res.Signature.Certificate != nil {
		ev.Issuer, ev.Subject = res.Signature.Certificate.Issuer, res.Signature.Certificate.SubjectAlternativeName
	}
	for _, ts := range res.VerifiedTimestamps {
		if ev.SigningTime.IsZero() || ts.Timestamp.Before(ev.SigningTime) {
			ev.SigningTime, ev.TimeSource = ts.Timestamp, ts.Type
		}
	}
	if res.Statement != nil {
		ev.PredicateType = res.Statement.GetPredicateType()
		// An attestation's predicate (an SBOM can be megabytes) stays out:
		// PredicateType says what it was.
		if res.Statement.GetPredicate() == nil {
			if b, err := protojson.Marshal(res.Statement); err == nil {
				ev.Statement = b
			}
		}
	}
	return ev
}

// checkOne verifies one signature: cheap claim and material checks first,
// then sigstore-go. It returns who verified, or a reason.
func (au *authority) checkOne(s *Signature, digest, image string, matchRepository bool) (signedBy, failure) {
	if r := claimMismatch(s, digest, image, matchRepository); !r.ok() {
		return signedBy{}, r
	}
	if r := au.materialMismatch(s); !r.ok() {
		return signedBy{}, r
	}
	res, reason := au.verifyEntity(s, digest)
	if !reason.ok() {
		return signedBy{}, reason
	}
	return au.verified(s, res)
}

// verifyEntity runs sigstore-go on s with each verifier the authority has
// for it, with digest as the artifact of a bundle (the legacy payload
// otherwise), and nothing of Portcullis's own claims checks: the
// cryptographic step that the conformance corpus exercises.
func (au *authority) verifyEntity(s *Signature, digest string) (*sgverify.VerificationResult, failure) {
	return au.verifyWith(au.sig, s, digest)
}

// verifyWith is verifyEntity with the verifiers of one use.
func (au *authority) verifyWith(vs verifiers, s *Signature, digest string) (*sgverify.VerificationResult, failure) {
	entity := s.Entity
	if le, ok := entity.(*legacyEntity); ok && !au.keyless {
		entity = le.asKey()
	}
	reason := fail(policy.FailConfig, "the authority has no verifier for this signature")
	for _, v := range au.pick(vs, s) {
		pb, err := au.policyFor(s, digest)
		if err != nil {
			return nil, fail(policy.FailConfig, "cannot build verification policy: %v", err)
		}
		res, err := safeVerify(v, entity, pb)
		if err == nil {
			return res, failure{}
		}
		reason = au.explain(err, s)
	}
	return nil, reason
}

// safeVerify runs sigstore-go's Verify, turning a panic on hostile
// signature material into an error: a signature must not crash the proxy.
func safeVerify(v *sgverify.Verifier, e sgverify.SignedEntity, pb sgverify.PolicyBuilder) (res *sgverify.VerificationResult, err error) {
	defer recoverTo(&err)
	return v.Verify(e, pb)
}

// policyFor builds the sigstore-go policy: the artifact (the legacy
// payload, or the served digest for a bundle's in-toto subject) and the
// key or identities.
func (au *authority) policyFor(s *Signature, digest string) (sgverify.PolicyBuilder, error) {
	if s.Format == Legacy {
		return sgverify.NewPolicy(sgverify.WithArtifact(bytes.NewReader(s.payload)), au.policyOpts...), nil
	}
	alg, hx, _ := cutDigest(digest)
	raw, err := hex.DecodeString(hx)
	if err != nil {
		return sgverify.PolicyBuilder{}, fmt.Errorf("digest %q: %w", digest, err)
	}
	return sgverify.NewPolicy(sgverify.WithArtifactDigest(alg, raw), au.policyOpts...), nil
}

// verified checks what sigstore-go verified: a bundle's statement must be a
// cosign signature (discovery read the predicate type with another JSON
// parser; this is the verified one). It returns who signed, or a reason.
func (au *authority) verified(s *Signature, res *sgverify.VerificationResult) (signedBy, failure) {
	if s.Format == Bundle && (res.Statement == nil || res.Statement.GetPredicateType() != SignPredicateType) {
		return signedBy{}, fail(policy.FailClaim, "verified statement has predicate type %q, not %s", res.Statement.GetPredicateType(), SignPredicateType)
	}
	return au.signedBy(res)
}

// signedBy names the signer of a verified result: the authority's key (the
// only key a key authority verifies with), or the verified certificate's
// issuer and subject. A keyless result without a certificate cannot be
// told from another signer's, so it does not pass.
func (au *authority) signedBy(res *sgverify.VerificationResult) (signedBy, failure) {
	if !au.keyless {
		return signedBy{identity: au.desc, signer: au.signer, keyHint: au.keyHint, res: res}, failure{}
	}
	if res.Signature == nil || res.Signature.Certificate == nil {
		return signedBy{}, fail(policy.FailSignature, "verified, but sigstore-go reported no certificate to name the signer by")
	}
	c := res.Signature.Certificate
	if why := au.identityMismatch(*c); why != "" {
		return signedBy{}, fail(policy.FailSigner, "verified certificate: %s", why)
	}
	return signedBy{
		identity: fmt.Sprintf("issuer %s subject %s", c.Issuer, c.SubjectAlternativeName),
		signer:   policy.CertSigner(c.Issuer, c.SubjectAlternativeName),
		res:      res,
	}, failure{}
}

// claimMismatch checks what the signature says it signs.
func claimMismatch(s *Signature, digest, image string, matchRepository bool) failure {
	switch s.Format {
	case Legacy:
		if s.claimType != CosignSignatureType {
			return fail(policy.FailClaim, "payload type is %q, not %q", s.claimType, CosignSignatureType)
		}
		if s.DockerManifestDigest != digest {
			return fail(policy.FailClaim, "payload names digest %s, not the image's %s", orNone(s.DockerManifestDigest), digest)
		}
		if matchRepository && !sameRepository(s.DockerReference, image) {
			return fail(policy.FailClaim, "payload names repository %s, not %s (the policy sets matchRepository)", orNone(s.DockerReference), image)
		}
	case Bundle:
		if s.PredicateType != SignPredicateType {
			return fail(policy.FailClaim, "predicate type %s is not a cosign signature", s.PredicateType)
		}
		if !slices.Contains(s.SubjectDigests, digest) {
			return fail(policy.FailClaim, "statement names digest %s, not the image's %s", orNone(firstOf(s.SubjectDigests)), digest)
		}
		if matchRepository {
			return fail(policy.FailClaim, "a sigstore bundle names no repository, and the policy sets matchRepository (only a legacy .sig signature can name one)")
		}
	}
	return failure{}
}

// materialMismatch catches, before any cryptography, signatures that
// cannot pass: wrong kind (key vs certificate), an identity that does not
// match, no trusted time, no required log entry.
func (au *authority) materialMismatch(s *Signature) failure {
	f := s.facts
	switch {
	case !au.keyless && f.hasCert && s.Format == Bundle:
		return fail(policy.FailSigner, "signed with a certificate (%s), not with %s", s.Signer, au.desc)
	case au.keyless && !f.hasCert:
		return fail(policy.FailSigner, "signed with %s, not with a certificate for %s", s.Signer, au.desc)
	case au.keyless && f.summary == nil:
		return fail(policy.FailSigner, "certificate has no usable identity (no subject alternative name)")
	case au.keyless:
		if why := au.identityMismatch(*f.summary); why != "" {
			return fail(policy.FailSigner, "identity issuer %s subject %s does not match %s%s", orNone(f.issuer), orNone(f.san), au.desc, extensionsWhy(why))
		}
		if !f.hasSET && !f.hasTimestamp {
			return fail(policy.FailTrustedTime, "%s", noTrustedTime(f))
		}
	}
	if au.requireTlog && !f.hasTlog {
		return fail(policy.FailTlog, "no transparency log (Rekor) entry, and the authority requires one")
	}
	return failure{}
}

func firstOf(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

// extensionsWhy adds an extension mismatch to a message ("" for an issuer
// or SAN mismatch, which the message says already).
func extensionsWhy(why string) string {
	if why == noIdentityMatch {
		return ""
	}
	return ": " + why
}
