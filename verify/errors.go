package verify

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/portcullis-dev/portcullis/policy"
)

// sigstore-go v1.3 returns typed errors only for identity mismatches; the
// other steps of Verify wrap their errors with these fixed prefixes
// (pkg/verify/signed_entity.go). TestExplainPrefixes pins them.
const (
	sgLogInclusion = "failed to verify log inclusion"
	sgTimestamps   = "failed to verify timestamps"
	sgLeafCert     = "failed to verify leaf certificate"
	sgSCT          = "failed to verify signed certificate timestamp"
	sgSignature    = "failed to verify signature"
	sgIdentity     = "failed to verify certificate identity"
)

// explain turns a sigstore-go verification error into a reason an
// administrator can act on.
func (au *authority) explain(err error, s *Signature) failure {
	var idErr *sgverify.ErrNoMatchingCertificateIdentity
	msg := err.Error()
	switch {
	case errors.As(err, &idErr) || strings.HasPrefix(msg, sgIdentity):
		return fail(policy.FailSigner, "identity issuer %s subject %s does not match %s", orNone(s.facts.issuer), orNone(s.facts.san), au.desc)
	case strings.HasPrefix(msg, sgLogInclusion):
		return fail(policy.FailChain, "transparency log entry does not verify against trust root %s: %s", au.rootName, inner(msg, sgLogInclusion))
	case strings.HasPrefix(msg, sgTimestamps):
		return fail(policy.FailTrustedTime, "no signing time could be established from trust root %s (Rekor SET or RFC 3161 timestamp): %s", au.rootName, inner(msg, sgTimestamps))
	case strings.HasPrefix(msg, sgLeafCert):
		return fail(policy.FailChain, "certificate does not chain to a Fulcio CA of trust root %s at the signing time", au.rootName)
	case strings.HasPrefix(msg, sgSCT):
		return fail(policy.FailChain, "certificate has no valid SCT from a CT log of trust root %s: %s", au.rootName, inner(msg, sgSCT))
	case strings.HasPrefix(msg, sgSignature) && !au.keyless:
		return fail(policy.FailSignature, "signature does not verify with %s", au.desc)
	case strings.HasPrefix(msg, sgSignature):
		return fail(policy.FailSignature, "signature does not verify with the certificate's key: %s", inner(msg, sgSignature))
	}
	return fail(policy.FailSignature, "does not verify: %s", msg)
}

// failure is why one signature did not pass: its class and, for people,
// the detail. The zero failure is none.
type failure struct {
	class  policy.FailureClass
	detail string
}

func fail(class policy.FailureClass, format string, args ...any) failure {
	return failure{class: class, detail: fmt.Sprintf(format, args...)}
}

func (f failure) ok() bool { return f.class == "" }

// inner strips a sigstore-go step prefix from an error message.
func inner(msg, prefix string) string {
	return strings.TrimPrefix(strings.TrimPrefix(msg, prefix), ": ")
}

// noTrustedTime is the reason for a certificate signature with neither a
// Rekor SET nor an RFC 3161 timestamp: sigstore-go will not use the clock.
func noTrustedTime(f sigFacts) string {
	const what = "no trusted timestamp (no Rekor SET or RFC 3161 timestamp)"
	if !f.notAfter.IsZero() && time.Now().After(f.notAfter) {
		return fmt.Sprintf("certificate expired (not after %s) and %s", f.notAfter.UTC().Format(time.RFC3339), what)
	}
	return what + " to establish when the short-lived certificate signed"
}

// noSignatures explains an empty discovery.
func noSignatures(disc *Discovery) []string {
	if disc == nil {
		return []string{"no signatures found"}
	}
	reasons := []string{fmt.Sprintf("no signatures found (looked in: %s)", strings.Join(disc.Looked, ", "))}
	return append(reasons, discoveryNotes(disc)...)
}

// discoveryNotes mentions attestations and skipped candidates.
func discoveryNotes(disc *Discovery) []string {
	var notes []string
	if n := len(disc.Attestations); n > 0 {
		notes = append(notes, fmt.Sprintf("%s found but attestations are not signatures", plural(n, "attestation")))
	}
	if n := disc.Skipped; n > 0 {
		notes = append(notes, fmt.Sprintf("examined %d of %d signature candidates (maxSignatures)", disc.Examined, disc.Examined+n))
	}
	return notes
}

// explainFailures summarises why no signature passed: a headline naming
// the authority and the signers seen, notes, then one line per signature.
func (c *Checker) explainFailures(au *authority, disc *Discovery, fails []sigFailure) []string {
	var seen []string
	for _, f := range fails {
		if f.sig.Malformed == "" && !slices.Contains(seen, f.sig.Signer) {
			seen = append(seen, f.sig.Signer)
		}
	}
	head := fmt.Sprintf("%s found, none verified for %s", plural(len(disc.Signatures), "signature"), au.desc)
	if len(seen) > 0 {
		head += " (signers seen: " + strings.Join(seen, "; ") + ")"
	}
	reasons := append([]string{head}, discoveryNotes(disc)...)
	for i, f := range fails {
		if i == c.maxReasons {
			reasons = append(reasons, fmt.Sprintf("… and %d more", len(fails)-i))
			break
		}
		reasons = append(reasons, fmt.Sprintf("signature from %s (%s): %s", f.sig.Source, f.sig.Format, f.reason.detail))
	}
	return reasons
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// panicMessage starts the error recoverTo makes of a panic.
const panicMessage = "internal error on this signature material"

// recoverTo turns a panic in third-party parsing or verification code into
// an error stored in *err. Signature material is attacker-controlled; a
// bug it triggers must refuse one signature, not crash the proxy.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %v", panicMessage, r)
	}
}
