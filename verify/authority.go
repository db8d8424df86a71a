package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/portcullis-dev/portcullis/policy"
)

// authority is a policy.Authority compiled into sigstore-go verifiers and
// policy options. It is immutable and safe for concurrent use.
type authority struct {
	keyless     bool
	requireTlog bool
	rootName    string               // trust root used ("" for a key without tlog)
	tm          root.TrustedMaterial // as returned by the TrustProvider (nil if none used)
	desc        string               // "key <hint>" or "issuer X subject Y", for messages
	signer      string               // a key's policy.KeySigner; "" for keyless (per certificate)
	keyHint     string               // a key's hint; "" for keyless
	// sig verifies image signatures; att, built only for an authority
	// with attestations, verifies statements keeping their predicate
	// (conditions read it).
	sig, att verifiers
	// ids are the identities as sigstore-go matches them (issuer and
	// SAN), and identities the policy's, in the same order, for the
	// certificate extensions Portcullis matches itself.
	ids        sgverify.CertificateIdentities
	identities []policy.Identity
	policyOpts []sgverify.PolicyOption
}

// verifiers are the sigstore-go verifiers of one use. tlogV requires a
// verified transparency log entry; plainV does not (key without
// requireTlog; keyless without requireTlog, timestamped by a TSA); timedV,
// for a key authority with a trust root, also requires a verified signing
// time (an RFC 3161 timestamp or a Rekor entry), which an attestation's
// maxAge needs. Any may be nil when the authority cannot use it.
type verifiers struct {
	tlogV, plainV, timedV *sgverify.Verifier
}

// rootName is the trust root an authority uses.
func rootName(a *policy.Authority) string {
	if a.TrustRoot != "" {
		return a.TrustRoot
	}
	return policy.PublicGood
}

func compileAuthority(a *policy.Authority, trust TrustProvider) (*authority, error) {
	switch {
	case a == nil:
		return nil, errors.New("nil authority")
	case (a.Key == nil) == (a.Keyless == nil):
		return nil, errors.New("exactly one of key and keyless must be set")
	case a.Key != nil:
		return compileKey(a, trust)
	}
	return compileKeyless(a, trust)
}

// Signature verifiers use WithoutStatementPredicate: only the predicate
// type is needed, not the predicate materialized as a structpb tree.
// Attestation verifiers keep it.

// statementOpts are the options of a use: signatures drop the predicate.
func statementOpts(forAttestations bool) []sgverify.VerifierOption {
	if forAttestations {
		return nil
	}
	return []sgverify.VerifierOption{sgverify.WithoutStatementPredicate()}
}

// needsTime reports whether an attestation of a has a maxAge.
func needsTime(a *policy.Authority) bool {
	for _, at := range a.Attestations {
		if at.MaxAge > 0 {
			return true
		}
	}
	return false
}

// compileKey: without requireTlog the key alone decides
// (WithNoObserverTimestamps: keys carry no validity window to check). With
// it, a transparency log entry of the trust root must also verify
// (WithTransparencyLog(1)); like cosign --key, no signing time is needed,
// so entries with only an inclusion proof (Rekor v2) count too.
func compileKey(a *policy.Authority, trust TrustProvider) (*authority, error) {
	if a.Key.Public == nil {
		return nil, errors.New("key has no parsed public key")
	}
	km, err := keyMaterial(a.Key.Public)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	hint := a.Key.Hint
	if hint == "" {
		hint = hintOf(a.Key.Public)
	}
	au := &authority{requireTlog: a.RequireTlog, desc: "key " + hint, keyHint: hint, signer: policy.KeySigner(a.Key.Public),
		policyOpts: []sgverify.PolicyOption{sgverify.WithKey()}}
	if au.signer == "" {
		return nil, errors.New("key: cannot encode the public key to name its signer")
	}
	if a.RequireTlog || (a.TrustRoot != "" && needsTime(a)) {
		au.rootName = rootName(a)
		if au.tm, err = trust.TrustedMaterial(au.rootName); err != nil {
			return nil, err
		}
	}
	if au.sig, err = au.keyVerifiers(km, false); err != nil {
		return nil, err
	}
	if len(a.Attestations) > 0 {
		au.att, err = au.keyVerifiers(km, true)
	}
	return au, err
}

// keyVerifiers builds the verifiers of a key authority for one use.
func (au *authority) keyVerifiers(km root.TrustedMaterial, forAttestations bool) (verifiers, error) {
	st := statementOpts(forAttestations)
	var vs verifiers
	var err error
	if !au.requireTlog {
		vs.plainV, err = sgverify.NewVerifier(km, slices.Concat(st, []sgverify.VerifierOption{sgverify.WithNoObserverTimestamps()})...)
		if err != nil {
			return vs, wrapErr("key verifier", err)
		}
	}
	if au.tm == nil {
		return vs, nil
	}
	tm := root.TrustedMaterialCollection{km, au.tm}
	if au.requireTlog {
		vs.tlogV, err = sgverify.NewVerifier(tm, slices.Concat(st, []sgverify.VerifierOption{sgverify.WithTransparencyLog(1), sgverify.WithNoObserverTimestamps()})...)
		if err != nil {
			return vs, wrapErr("key verifier", err)
		}
	}
	if forAttestations {
		opts := []sgverify.VerifierOption{sgverify.WithObserverTimestamps(1)}
		if au.requireTlog {
			opts = append(opts, sgverify.WithTransparencyLog(1))
		}
		vs.timedV, err = sgverify.NewVerifier(tm, opts...)
	}
	return vs, wrapErr("key verifier", err)
}

// compileKeyless: the certificate must chain to a Fulcio CA of the trust
// root at a trusted signing time, from a Rekor SET or an RFC 3161 timestamp
// (WithObserverTimestamps(1): never the wall clock). requireTlog adds
// WithTransparencyLog(1); requireSCT adds WithSignedCertificateTimestamps(1)
// when the trust root has CT logs.
func compileKeyless(a *policy.Authority, trust TrustProvider) (*authority, error) {
	au := &authority{keyless: true, requireTlog: a.RequireTlog, rootName: rootName(a)}
	if err := au.addIdentities(a.Keyless.Identities); err != nil {
		return nil, err
	}
	var err error
	if au.tm, err = trust.TrustedMaterial(au.rootName); err != nil {
		return nil, err
	}
	sct := a.Keyless.RequireSCT && len(au.tm.CTLogs()) > 0
	if au.sig, err = au.keylessVerifiers(sct, false); err != nil {
		return nil, err
	}
	if len(a.Attestations) > 0 {
		au.att, err = au.keylessVerifiers(sct, true)
	}
	return au, err
}

// keylessVerifiers builds the verifiers of a keyless authority for one use.
func (au *authority) keylessVerifiers(sct, forAttestations bool) (verifiers, error) {
	base := append([]sgverify.VerifierOption{sgverify.WithObserverTimestamps(1)}, statementOpts(forAttestations)...)
	if sct {
		base = append(base, sgverify.WithSignedCertificateTimestamps(1))
	}
	var vs verifiers
	var err error
	if vs.tlogV, err = sgverify.NewVerifier(au.tm, slices.Concat(base, []sgverify.VerifierOption{sgverify.WithTransparencyLog(1)})...); err != nil {
		return vs, wrapErr("keyless verifier", err)
	}
	if !au.requireTlog {
		vs.plainV, err = sgverify.NewVerifier(au.tm, base...)
	}
	return vs, wrapErr("keyless verifier", err)
}

// addIdentities compiles the identities (OR-ed by sigstore-go).
func (au *authority) addIdentities(ids []policy.Identity) error {
	if len(ids) == 0 {
		return errors.New("keyless authority has no identities")
	}
	var descs []string
	for i, id := range ids {
		subjectRE := id.SubjectRegExp
		if id.Subject == "" && subjectRE == "" && id.HasExtensions() {
			// The SAN is free; the extensions pin the identity, matched on
			// the verified certificate (sigstore-go wants SAN criteria).
			subjectRE = ".*"
		}
		ci, err := sgverify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegExp, id.Subject, subjectRE)
		if err != nil {
			return fmt.Errorf("identity %d: %w", i+1, err)
		}
		au.ids = append(au.ids, ci)
		au.identities = append(au.identities, id)
		au.policyOpts = append(au.policyOpts, sgverify.WithCertificateIdentity(ci))
		descs = append(descs, describeIdentity(id))
	}
	au.desc = strings.Join(descs, " or ")
	return nil
}

func describeIdentity(id policy.Identity) string {
	iss, sub := id.Issuer, id.Subject
	if iss == "" {
		iss = "~" + id.IssuerRegExp
	}
	if sub == "" && id.SubjectRegExp != "" {
		sub = "~" + id.SubjectRegExp
	}
	d := "issuer " + iss
	if sub != "" {
		d += " subject " + sub
	}
	if g := id.GitHub; g != nil {
		for _, kv := range [][2]string{{"repository", g.Repository}, {"workflow", g.Workflow}, {"ref", g.Ref}, {"runner", g.Runner}} {
			if kv[1] != "" {
				d += " github " + kv[0] + " " + kv[1]
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(id.Extensions)) {
		d += " " + k + " " + id.Extensions[k]
	}
	return d
}

// pick returns the verifiers of vs to try for s, in order: for a key
// authority's attestation, the one that establishes a signing time first
// (when s has a timestamp or log entry), then the one that does not.
func (au *authority) pick(vs verifiers, s *Signature) []*sgverify.Verifier {
	var out []*sgverify.Verifier
	if vs.timedV != nil && (s.facts.hasTimestamp || s.facts.hasTlog) {
		out = append(out, vs.timedV)
	}
	switch {
	case au.requireTlog:
		out = append(out, vs.tlogV)
	case !au.keyless:
		out = append(out, vs.plainV)
	case s.facts.hasTlog && s.facts.hasTimestamp:
		out = append(out, vs.tlogV, vs.plainV)
	case s.facts.hasTlog:
		out = append(out, vs.tlogV)
	default:
		out = append(out, vs.plainV)
	}
	return slices.DeleteFunc(out, func(v *sgverify.Verifier) bool { return v == nil })
}

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// noIdentityMatch is identityMismatch's answer when no identity's issuer
// and SAN match.
const noIdentityMatch = "issuer and subject match no identity"

// identityMismatch is "" when the certificate summary c matches one of the
// authority's identities in full: issuer and SAN as sigstore-go matches
// them, and the Fulcio extensions the identity names. Else it says why,
// for the closest identity (the first whose issuer and SAN match).
func (au *authority) identityMismatch(c certificate.Summary) string {
	why := noIdentityMatch
	for i, ci := range au.ids {
		if ci.Verify(c) != nil { // issuer and SAN
			continue
		}
		w := au.identities[i].ExtensionsMismatch(extensionMap(c.Extensions))
		if w == "" {
			return ""
		}
		if why == noIdentityMatch {
			why = w
		}
	}
	return why
}

// extensionMap is a certificate's Fulcio extensions by sigstore-go's JSON
// names (as policies name them), empty ones left out.
func extensionMap(e certificate.Extensions) map[string]string {
	b, err := json.Marshal(e)
	out := map[string]string{}
	if err == nil {
		_ = json.Unmarshal(b, &out) // every field is a string
	}
	return out
}
