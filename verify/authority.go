package verify

import (
	"errors"
	"fmt"
	"slices"
	"strings"

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
	// tlogV requires a verified transparency log entry; plainV does not
	// (key without requireTlog; keyless without requireTlog, timestamped
	// by a TSA). Either may be nil when the authority cannot use it.
	tlogV, plainV *sgverify.Verifier
	ids           sgverify.CertificateIdentities
	policyOpts    []sgverify.PolicyOption
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

// Every verifier uses WithoutStatementPredicate: only the predicate type is
// needed, not the predicate materialized as a structpb tree.

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
	if !a.RequireTlog {
		au.plainV, err = sgverify.NewVerifier(km, sgverify.WithNoObserverTimestamps(), sgverify.WithoutStatementPredicate())
		return au, wrapErr("key verifier", err)
	}
	au.rootName = rootName(a)
	if au.tm, err = trust.TrustedMaterial(au.rootName); err != nil {
		return nil, err
	}
	tm := root.TrustedMaterialCollection{km, au.tm}
	au.tlogV, err = sgverify.NewVerifier(tm, sgverify.WithTransparencyLog(1), sgverify.WithNoObserverTimestamps(), sgverify.WithoutStatementPredicate())
	return au, wrapErr("key verifier", err)
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
	base := []sgverify.VerifierOption{sgverify.WithObserverTimestamps(1), sgverify.WithoutStatementPredicate()}
	if a.Keyless.RequireSCT && len(au.tm.CTLogs()) > 0 {
		base = append(base, sgverify.WithSignedCertificateTimestamps(1))
	}
	if au.tlogV, err = sgverify.NewVerifier(au.tm, slices.Concat(base, []sgverify.VerifierOption{sgverify.WithTransparencyLog(1)})...); err != nil {
		return nil, wrapErr("keyless verifier", err)
	}
	if !a.RequireTlog {
		au.plainV, err = sgverify.NewVerifier(au.tm, base...)
	}
	return au, wrapErr("keyless verifier", err)
}

// addIdentities compiles the identities (OR-ed by sigstore-go).
func (au *authority) addIdentities(ids []policy.Identity) error {
	if len(ids) == 0 {
		return errors.New("keyless authority has no identities")
	}
	var descs []string
	for i, id := range ids {
		ci, err := sgverify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegExp, id.Subject, id.SubjectRegExp)
		if err != nil {
			return fmt.Errorf("identity %d: %w", i+1, err)
		}
		au.ids = append(au.ids, ci)
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
	if sub == "" {
		sub = "~" + id.SubjectRegExp
	}
	return fmt.Sprintf("issuer %s subject %s", iss, sub)
}

// verifiers returns the verifiers to try for s, in order.
func (au *authority) verifiers(s *Signature) []*sgverify.Verifier {
	switch {
	case au.requireTlog:
		return []*sgverify.Verifier{au.tlogV}
	case !au.keyless:
		return []*sgverify.Verifier{au.plainV}
	case s.facts.hasTlog && s.facts.hasTimestamp:
		return []*sgverify.Verifier{au.tlogV, au.plainV}
	case s.facts.hasTlog:
		return []*sgverify.Verifier{au.tlogV}
	}
	return []*sgverify.Verifier{au.plainV}
}

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
