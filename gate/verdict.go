package gate

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
)

// Decision is what a verdict says: serve, or refuse.
type Decision int

const (
	// Deny refuses the content (403 DENIED).
	Deny Decision = iota
	// Allow serves it.
	Allow
)

func (d Decision) String() string {
	if d == Allow {
		return "allow"
	}
	return "deny"
}

// Cause says how a verdict was reached, beyond the policy outcome.
type Cause string

// Causes of verdicts that are not a plain policy evaluation.
const (
	CausePolicy            Cause = "policy"             // the policy was evaluated on the image's own signatures
	CauseSignatureArtifact Cause = "signature-artifact" // signature material of a served subject, of its kind's shape
	CauseSubjectRefused    Cause = "subject-refused"    // signature material whose subject is not served (403)
	CauseNotMaterial       Cause = "not-material"       // under a signature tag or naming a subject, but not of the shape (404)
	CauseParent            Cause = "allowed-parent"     // a child of an allowed index, or a blob of an allowed manifest
	CauseMalformed         Cause = "malformed"          // the manifest is not a usable JSON manifest
	CauseNotReferenced     Cause = "not-referenced"     // a blob no allowed manifest references
)

// Verdict is a decision about one digest in one repository under one
// policy revision, with the reasons a person needs to act on it.
type Verdict struct {
	Image  string // "registry/repository"
	Digest v1.Hash
	// MaxBytes bounds a blob allowed only as signature material (0: no
	// bound beyond the digest).
	MaxBytes int64
	// CachedFor is, for a denial, how much longer it is reused without
	// deciding again (a signature pushed meanwhile is seen after it).
	CachedFor time.Duration
	// decided says the call that returned the verdict made the decision
	// (and so logged and recorded it).
	decided bool
	// stored is the verdict it was made from (nil when none was): its
	// Until, Sources and grants (Gate.granted).
	stored *Stored
	// Judgement is what was decided. Allow judgements are shared by every
	// verdict they apply to (the same policy revision, outcome and signer),
	// which keeps a cache of a million verdicts small.
	*Judgement
}

// Judgement is the part of a verdict that does not depend on which image
// it is about.
// Sources are, for an allowed image, the signaturesFrom repositories of
// its policies: where its signatures were read from besides its own
// repository (and where its signature material is served).
func (v *Verdict) Sources() []verify.Repository {
	if v.stored == nil {
		return nil
	}
	return v.stored.Sources()
}

// until is the stored verdict's Until: an allow through this one (a child
// of an index, signature material of an image) ends then too.
func (v *Verdict) until() time.Time {
	if v.stored == nil {
		return time.Time{}
	}
	return v.stored.Until()
}

type Judgement struct {
	Decision Decision
	Cause    Cause
	// Outcome is the policy evaluation (zero when Cause is not CausePolicy).
	// In a cached allow, passed policies keep no per-authority reasons.
	Outcome policy.Outcome
	// Identity is who passed ("release-key (key <hint>, sigstore bundle)").
	Identity string
	// Revision is the policy revision the verdict was made under.
	Revision string
	// Why completes Message after "<image>@<digest> ".
	Why string
}

// Message is one line: for a refusal, the image, the digest, the first
// failing policy (or "no policy matches; default deny") and why.
// A denial says how long it is cached.
func (v *Verdict) Message() string {
	m := v.Image + "@" + v.Digest.String() + " " + v.Why
	if !v.Allowed() && v.CachedFor > 0 {
		m += fmt.Sprintf(" (cached for %s more)", v.CachedFor)
	}
	return m
}

// material reports whether the verdict judged signature material (not an
// image).
func (v *Verdict) material() bool {
	switch v.Cause {
	case CauseSignatureArtifact, CauseSubjectRefused, CauseNotMaterial:
		return true
	}
	return false
}

// NotFound reports whether a refusal should read as "no such manifest"
// (404): the manifest sits where signature material is kept, of a subject
// that is served, but is not of that material's shape. Clients such as
// containers/image read 404 as "no signatures"; any other status fails
// their pulls.
func (v *Verdict) NotFound() bool { return v.Decision == Deny && v.Cause == CauseNotMaterial }

// Result is the verdict's result word: allow, warn (served despite a
// warn-mode violation) or deny.
func (v *Verdict) Result() Result { return resultOf(v) }

// Allowed reports whether the verdict serves the content.
func (v *Verdict) Allowed() bool { return v.Decision == Allow }

// FailureDetail is one failing policy of a refusal, for the OCI error's
// detail field.
type FailureDetail struct {
	Policy  string   `json:"policy"`
	Mode    string   `json:"mode"`
	Reasons []string `json:"reasons"`
}

// Detail lists every failing policy with its reasons (warn-mode ones too).
func (v *Verdict) Detail() []FailureDetail {
	var out []FailureDetail
	for _, pr := range v.Outcome.Policies {
		if pr.Passed {
			continue
		}
		out = append(out, FailureDetail{Policy: pr.Policy, Mode: pr.Mode.String(), Reasons: pr.Reasons})
	}
	return out
}

// policyJudgement turns a policy outcome into a judgement with its why.
func policyJudgement(plan *policy.Plan, out policy.Outcome, rev string) *Judgement {
	j := &Judgement{Cause: CausePolicy, Outcome: out, Revision: rev}
	excluded := ""
	if len(plan.Excluded) > 0 {
		excluded = fmt.Sprintf(" (excluded from %s by its excludeImages)", quoteList(plan.Excluded))
	}
	if out.Allowed {
		j.Decision, j.Identity = Allow, passedBy(out)
		j.Why = "allowed: " + out.Reason.String() + excluded
		return j
	}
	j.Decision = Deny
	switch first := out.FirstFailure(); {
	case out.Reason == policy.DefaultDeny:
		j.Why = fmt.Sprintf("refused: no policy matches %s%s; default deny", plan.Image, excluded)
	case first != nil:
		j.Why = fmt.Sprintf("refused by policy %q: %s", first.Policy, summarize(first))
	default:
		j.Why = "refused: " + out.Reason.String()
	}
	return j
}

// quoteList is `policy "a"` or `policies "a", "b"`.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return "policy " + q[0]
	}
	return "policies " + strings.Join(q, ", ")
}

// summarize is the why of one failing policy in a line.
func summarize(pr *policy.PolicyResult) string {
	need := fmt.Sprintf("needs %d of its authorities, %d passed", pr.Threshold, len(pr.PassedBy))
	if len(pr.Reasons) == 0 {
		return need
	}
	return need + ": " + strings.Join(pr.Reasons, "; ")
}

func passedBy(out policy.Outcome) string {
	var who []string
	for _, pr := range out.Policies {
		who = append(who, pr.PassedBy...)
	}
	return strings.Join(who, ", ")
}
