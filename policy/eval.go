package policy

import (
	"strings"
	"time"
)

// This file evaluates a compiled Policy: For picks the policies that apply
// to an image, the caller checks their authorities (package verify), and
// Decide combines the results into an Outcome. Nothing here does I/O.

// Plan is what must be checked for one image digest.
type Plan struct {
	// Image is the image as matched ("registry/repository", normalised).
	Image  string
	Digest string
	// BreakGlass is true when Digest is in the policy's allowDigests: the
	// image is allowed whatever the results, so checking may be skipped.
	BreakGlass bool
	// Matched are the policies whose images match Image and whose
	// excludeImages do not, in file order.
	Matched []*ImagePolicy
	// Excluded names the policies whose images match Image but whose
	// excludeImages also do (so they do not apply), in file order.
	Excluded []string
	// Revision is the Policy's revision.
	Revision string

	defaultAllow bool
}

// For returns the plan for the manifest digest ("sha256:<hex>") of image
// ("registry/repository" as clients name it; normalised like patterns, see
// oci.NormalizeImage).
func (p *Policy) For(image, digest string) *Plan {
	pl := &Plan{
		Image:        normalizeImage(image),
		Digest:       digest,
		BreakGlass:   p.AllowDigests[strings.ToLower(digest)],
		Revision:     p.Revision,
		defaultAllow: p.DefaultAllow,
	}
	for _, ip := range p.Policies {
		if !matchAny(ip.images, ip.Images, pl.Image) {
			continue
		}
		if matchAny(ip.exclude, ip.ExcludeImages, pl.Image) {
			pl.Excluded = append(pl.Excluded, ip.Name)
			continue
		}
		pl.Matched = append(pl.Matched, ip)
	}
	return pl
}

// matchesImage reports whether ip applies to the normalised image: its
// images match and its excludeImages do not.
func (ip *ImagePolicy) matchesImage(image string) bool {
	return matchAny(ip.images, ip.Images, image) && !matchAny(ip.exclude, ip.ExcludeImages, image)
}

// matchAny reports whether one of globs matches image. A Policy built by
// hand rather than compiled has no globs; its patterns are compiled here.
func matchAny(globs []*glob, patterns []string, image string) bool {
	if globs == nil {
		for _, pat := range patterns {
			if g, err := compileGlob(pat); err == nil {
				globs = append(globs, g)
			}
		}
	}
	for _, g := range globs {
		if g.match(image) {
			return true
		}
	}
	return false
}

// Authorities returns the authorities to check: every authority of every
// matched policy that is not allow: unsigned, each once, in file order.
func (pl *Plan) Authorities() []*Authority {
	var out []*Authority
	seen := make(map[*Authority]bool)
	for _, ip := range pl.Matched {
		if ip.AllowUnsigned {
			continue
		}
		for _, a := range ip.Authorities {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// AuthorityResult is what checking one authority found.
type AuthorityResult struct {
	Passed bool
	// Identity says who signed, when Passed, for people: "key <hint>" or
	// "issuer X subject Y".
	Identity string
	// Signer is who signed, when Passed, for threshold: [KeySigner] of the
	// key or [CertSigner] of the certificate that verified, whatever the
	// signature's format. Threshold counts distinct signers: an authority
	// whose Signer already counted for another authority of the policy
	// does not count. "" (a result built by hand) is a signer of its own.
	Signer string
	// Reasons say why it did not pass, for people: a headline, then one
	// line per signature (rendered from Failures, with notes).
	Reasons []string
	// Failures say why it did not pass, typed: one per signature examined
	// (or one with no Source: no signatures, an authority that does not
	// compile).
	Failures []Failure
	// Evidence is what verified, when Passed (nil for a result built by
	// hand).
	Evidence *Evidence
	// ValidUntil, when not zero, is when a pass stops holding: the
	// earliest time an attestation it rests on grows older than its
	// maxAge. A verdict resting on it is cached no longer.
	ValidUntil time.Time
}

// FailureClass says which check a signature failed.
type FailureClass string

// The failure classes.
const (
	FailNoSignatures FailureClass = "no-signatures" // nothing was found to check
	FailMalformed    FailureClass = "malformed"     // the material does not parse
	FailClaim        FailureClass = "claim"         // it signs another digest, repository or payload type
	FailSigner       FailureClass = "signer"        // made by another key or identity than the authority's
	FailTrustedTime  FailureClass = "trusted-time"  // no verified signing time for a certificate
	FailTlog         FailureClass = "tlog"          // no transparency log entry where one is required
	FailChain        FailureClass = "chain"         // certificate chain, SCT or log inclusion does not verify
	FailSignature    FailureClass = "signature"     // the signature itself does not verify
	FailConfig       FailureClass = "config"        // the authority could not be used (a key or root problem)
	FailAttestation  FailureClass = "attestation"   // a verified statement is too old, or its condition does not hold
	// FailTrustNotLoaded: the authority's trust root is not loaded yet (no
	// network at start and no cache). Not a refusal: a verdict that only
	// this stands in the way of is no decision (503) until it loads.
	FailTrustNotLoaded FailureClass = "trust-not-loaded"
)

// Failure is why one signature did not pass an authority.
type Failure struct {
	Class FailureClass
	// Source is where the signature was found ("" when the failure is not
	// about one signature).
	Source string
	// Detail is the reason, for people.
	Detail string
}

// Evidence is the typed account of the signature that made an authority
// pass, as the verifier established it: for logs, the decision record and
// rules on attestations. Only verified facts are here, never claims.
type Evidence struct {
	// Format is the storage format: "legacy .sig" or "sigstore bundle".
	Format string
	// Source is where the signature was found: "tag sha256-<hex>.sig
	// layer 0", "referrer sha256:<hex>".
	Source string
	// Issuer and Subject are the verified certificate identity (keyless);
	// KeyHint names the key (key authorities).
	Issuer, Subject, KeyHint string
	// SigningTime is the earliest verified signing time, and TimeSource
	// what vouched for it (sigstore-go's "Tlog" or "TimestampAuthority");
	// zero and "" when none was verified (a key signature without a log).
	SigningTime time.Time
	TimeSource  string
	// PredicateType and Statement are the verified in-toto statement of a
	// bundle signature (Statement as JSON); empty for a legacy signature.
	// For an attestation only PredicateType is set (its predicate can be
	// megabytes).
	PredicateType string
	Statement     []byte
}

// Reason says why an Outcome is what it is.
type Reason int

const (
	// Denied: an enforce-mode policy failed. The zero Reason, so that a
	// zero Outcome denies.
	Denied Reason = iota
	// DefaultDeny: no policy matches and the default is deny.
	DefaultDeny
	// BreakGlass: the digest is in allowDigests.
	BreakGlass
	// DefaultAllow: no policy matches and the default is allow.
	DefaultAllow
	// AllowedUnsigned: every matched policy is allow: unsigned.
	AllowedUnsigned
	// Verified: every matched policy passed.
	Verified
	// WarnViolation: only warn-mode policies failed; the image is served.
	WarnViolation
)

var reasonNames = [...]string{"denied", "default-deny", "break-glass", "default-allow", "allowed-unsigned", "verified", "warn-violation"}

func (r Reason) String() string {
	if r < 0 || int(r) >= len(reasonNames) {
		return "unknown"
	}
	return reasonNames[r]
}

// Outcome is the decision for a Plan.
type Outcome struct {
	Allowed bool
	Reason  Reason
	// Policies has one result per matched policy, in file order (also
	// for BreakGlass, to log what would have happened).
	Policies []PolicyResult
	// ValidUntil, when not zero, is when an allow stops holding: the
	// earliest ValidUntil of the authority results it counted.
	ValidUntil time.Time
}

// PolicyResult is how one matched policy fared.
type PolicyResult struct {
	Policy   string
	Mode     Mode
	Unsigned bool // allow: unsigned; always Passed
	Passed   bool
	// Threshold is how many authorities had to pass (0 when Unsigned).
	Threshold int
	// PassedBy lists the authorities that passed and count toward
	// Threshold: "name (identity)". An authority that passed with a signer
	// already counted is in Reasons instead.
	PassedBy []string
	// Reasons lists, for each authority that did not pass (even when the
	// policy passed), "name: reason".
	Reasons []string

	validUntil time.Time // earliest ValidUntil of the passes counted
}

// Earliest is the earlier of two ends, zero being "never" (so the other).
func Earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// Decide combines the authority results into an Outcome. It is pure; an
// authority missing from results has not passed, for "not checked".
func (pl *Plan) Decide(results map[*Authority]AuthorityResult) Outcome {
	o := Outcome{Policies: make([]PolicyResult, 0, len(pl.Matched))}
	failed, warned, signed := false, false, false
	for _, ip := range pl.Matched {
		pr := evaluate(ip, results)
		o.Policies = append(o.Policies, pr)
		if pr.Passed {
			o.ValidUntil = Earliest(o.ValidUntil, pr.validUntil)
		}
		signed = signed || !pr.Unsigned
		switch {
		case pr.Passed:
		case pr.Mode == Warn:
			warned = true
		default:
			failed = true
		}
	}
	switch {
	case pl.BreakGlass:
		o.Allowed, o.Reason = true, BreakGlass
	case len(pl.Matched) == 0 && pl.defaultAllow:
		o.Allowed, o.Reason = true, DefaultAllow
	case len(pl.Matched) == 0:
		o.Reason = DefaultDeny
	case failed:
		o.Reason = Denied
	case warned:
		o.Allowed, o.Reason = true, WarnViolation
	case signed:
		o.Allowed, o.Reason = true, Verified
	default:
		o.Allowed, o.Reason = true, AllowedUnsigned
	}
	return o
}

// evaluate checks one policy against the results.
func evaluate(ip *ImagePolicy, results map[*Authority]AuthorityResult) PolicyResult {
	pr := PolicyResult{Policy: ip.Name, Mode: ip.Mode, Unsigned: ip.AllowUnsigned, Threshold: max(ip.Threshold, 1)}
	if ip.AllowUnsigned {
		pr.Passed, pr.Threshold = true, 0
		return pr
	}
	countedFor := make(map[string]string) // signer -> the authority it counted for
	for _, a := range ip.Authorities {
		res, ok := results[a]
		switch {
		case !ok:
			pr.Reasons = append(pr.Reasons, a.Name+": not checked")
		case res.Passed && countedFor[res.Signer] != "":
			pr.Reasons = append(pr.Reasons, a.Name+": passed, but its signer ("+res.Signer+") already counted for "+
				countedFor[res.Signer]+"; a signer is counted once toward threshold")
		case res.Passed:
			if res.Signer != "" {
				countedFor[res.Signer] = a.Name
			}
			pr.PassedBy = append(pr.PassedBy, a.Name+" ("+res.Identity+")")
			pr.validUntil = Earliest(pr.validUntil, res.ValidUntil)
		case len(res.Reasons) == 0:
			pr.Reasons = append(pr.Reasons, a.Name+": did not pass")
		default:
			pr.Reasons = append(pr.Reasons, a.Name+": "+strings.Join(res.Reasons, "; "))
		}
	}
	pr.Passed = len(pr.PassedBy) >= pr.Threshold
	return pr
}

// FirstFailure returns the first enforce-mode policy that failed, or nil.
func (o Outcome) FirstFailure() *PolicyResult {
	for i := range o.Policies {
		if pr := &o.Policies[i]; !pr.Passed && pr.Mode == Enforce {
			return pr
		}
	}
	return nil
}

// HasWarnings reports whether a warn-mode policy failed (Warnings without
// its allocation, for the hot path).
func (o Outcome) HasWarnings() bool {
	for i := range o.Policies {
		if pr := &o.Policies[i]; !pr.Passed && pr.Mode == Warn {
			return true
		}
	}
	return false
}

// Warnings returns the warn-mode policies that failed: the image is
// served, and the violation should be logged.
func (o Outcome) Warnings() []PolicyResult {
	var out []PolicyResult
	for _, pr := range o.Policies {
		if !pr.Passed && pr.Mode == Warn {
			out = append(out, pr)
		}
	}
	return out
}
