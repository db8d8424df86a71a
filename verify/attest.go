package verify

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	in_toto "github.com/in-toto/attestation/go/v1"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/portcullis-dev/portcullis/policy"
)

// This file checks an authority's attestation requirements: each must be
// satisfied by an in-toto statement the authority signed, verified by
// sigstore-go, whose subject names the served digest, of the required
// predicate type, young enough, and for which the CEL condition holds.

// verifiedStatement is one attestation that verified under an authority.
type verifiedStatement struct {
	sig       *Signature
	who       signedBy
	statement *policy.Statement
	signedAt  time.Time // earliest verified signing time; zero when none
	source    string    // what vouched for signedAt
}

// attestationOutcome is how one attestation fared under an authority: the
// statement that verified (or why it did not).
type attestationOutcome struct {
	st     *verifiedStatement
	reason failure
}

// checkAttestations decides authority a, which lists attestations, at
// time now: it passes when every attestation is satisfied. Each statement
// is verified at most once, whatever the number of requirements.
func (c *Checker) checkAttestations(au *authority, a *policy.Authority, disc *Discovery, now time.Time) AuthorityResult {
	digest := disc.Digest.String()
	outcomes := make(map[*Signature]attestationOutcome)
	verify := func(s *Signature) attestationOutcome {
		if o, ok := outcomes[s]; ok {
			return o
		}
		o := au.verifyStatement(s, digest)
		outcomes[s] = o
		return o
	}
	res := AuthorityResult{Passed: true}
	for _, at := range a.Attestations {
		st, reason := satisfy(at, disc.Attestations, verify, now)
		if st == nil {
			res.Passed = false
			detail := fmt.Sprintf("needs attestation %s from authority %q: %s", at.Describe(), a.Name, reason.detail)
			res.Reasons = append(res.Reasons, detail)
			res.Failures = append(res.Failures, policy.Failure{Class: reason.class, Detail: detail})
			continue
		}
		if at.MaxAge > 0 {
			res.ValidUntil = policy.Earliest(res.ValidUntil, st.signedAt.Add(at.MaxAge))
		}
		if res.Evidence == nil {
			res.Identity = st.who.identity + ", attestation " + st.sig.Format.String()
			res.Signer = st.who.signer
			res.Evidence = evidence(st.sig, st.who)
			res.Evidence.SigningTime, res.Evidence.TimeSource = st.signedAt, st.source
		}
	}
	if !res.Passed {
		res.Identity, res.Signer, res.Evidence, res.ValidUntil = "", "", nil, time.Time{}
		if n := disc.Skipped; n > 0 {
			res.Reasons = append(res.Reasons, fmt.Sprintf("examined %d of %d signature and attestation candidates (maxSignatures)", disc.Examined, disc.Examined+n))
		}
	}
	return res
}

// satisfy finds a statement among atts satisfying at, or says why none
// does: "none found", "found 2, none verified: <first reason>",
// "found 2, condition false: <expression>", "found 1, older than 720h:
// signed 2026-10-01". Of the statements satisfying it, the one signed
// last is chosen (its maxAge ends last).
func satisfy(at *policy.Attestation, atts []*Signature, verify func(*Signature) attestationOutcome, now time.Time) (*verifiedStatement, failure) {
	var found, bad int
	var firstFail, condFail, ageFail, timeFail, firstBad failure
	var best *verifiedStatement
	for _, s := range atts {
		if s.Malformed != "" {
			if bad++; bad == 1 {
				firstBad = fail(policy.FailMalformed, "%s (%s)", s.Malformed, s.Source)
			}
			continue
		}
		if !at.MatchesPredicateType(s.PredicateType) {
			continue // the claim is checked again on the verified statement
		}
		found++
		o := verify(s)
		switch {
		case !o.reason.ok():
			if firstFail.ok() {
				firstFail = failure{o.reason.class, fmt.Sprintf("%s (%s)", o.reason.detail, s.Source)}
			}
			continue
		case !at.MatchesPredicateType(o.st.statement.PredicateType):
			if firstFail.ok() {
				firstFail = fail(policy.FailClaim, "verified statement has predicate type %s (%s)", o.st.statement.PredicateType, s.Source)
			}
			continue
		}
		st := o.st
		if at.MaxAge > 0 {
			if st.signedAt.IsZero() {
				timeFail = fail(policy.FailTrustedTime, "no verified signing time (RFC 3161 timestamp or Rekor entry) for maxAge %s", shortDuration(at.MaxAge))
				continue
			}
			if now.Sub(st.signedAt) > at.MaxAge {
				if ageFail.ok() {
					ageFail = fail(policy.FailAttestation, "older than %s: signed %s", shortDuration(at.MaxAge), st.signedAt.UTC().Format(time.RFC3339))
				}
				continue
			}
		}
		if err := at.Holds(st.statement, now); err != nil {
			if condFail.ok() {
				if errors.Is(err, policy.ErrConditionFalse) {
					condFail = fail(policy.FailAttestation, "condition false: %s", at.Condition)
				} else {
					condFail = fail(policy.FailAttestation, "%v: %s", err, at.Condition)
				}
			}
			continue
		}
		if best == nil || st.signedAt.After(best.signedAt) {
			best = st
		}
	}
	if best != nil {
		return best, failure{}
	}
	if found == 0 && bad > 0 {
		// A malformed one may have been of this type.
		return nil, failure{policy.FailMalformed, fmt.Sprintf("none found (%s malformed: %s)", plural(bad, "attestation"), firstBad.detail)}
	}
	if found == 0 {
		return nil, fail(policy.FailNoSignatures, "none found")
	}
	// The reason of the statement that got furthest.
	for _, f := range []failure{condFail, ageFail, timeFail} {
		if !f.ok() {
			return nil, failure{f.class, fmt.Sprintf("found %d, %s", found, f.detail)}
		}
	}
	return nil, failure{firstFail.class, fmt.Sprintf("found %d, none verified: %s", found, firstFail.detail)}
}

// verifyStatement verifies one attestation under au: its claims, the
// signer's material, sigstore-go (keeping the predicate), the identity on
// the verified certificate, and that the verified statement names digest.
func (au *authority) verifyStatement(s *Signature, digest string) attestationOutcome {
	if !slices.Contains(s.SubjectDigests, digest) {
		return attestationOutcome{reason: fail(policy.FailClaim, "statement names digest %s, not the image's %s", orNone(firstOf(s.SubjectDigests)), digest)}
	}
	if r := au.materialMismatch(s); !r.ok() {
		return attestationOutcome{reason: r}
	}
	res, reason := au.verifyWith(au.att, s, digest)
	if !reason.ok() {
		return attestationOutcome{reason: reason}
	}
	if res.Statement == nil {
		return attestationOutcome{reason: fail(policy.FailClaim, "verified, but sigstore-go reported no in-toto statement")}
	}
	if !statementNames(res.Statement, digest) {
		return attestationOutcome{reason: fail(policy.FailClaim, "verified statement does not name the image's %s", digest)}
	}
	who, reason := au.signedBy(res)
	if !reason.ok() {
		return attestationOutcome{reason: reason}
	}
	st := &verifiedStatement{sig: s, who: who, statement: statementOf(res, who)}
	for _, ts := range res.VerifiedTimestamps {
		if ts.Type == "CurrentTime" {
			continue // never configured; never a signing time
		}
		if st.signedAt.IsZero() || ts.Timestamp.Before(st.signedAt) {
			st.signedAt, st.source = ts.Timestamp, ts.Type
		}
	}
	if st.signedAt.IsZero() && !au.keyless {
		// A key signed it, and no timestamp over its signature verified:
		// one over its whole envelope (cosign v2's .att) is as good. (A
		// keyless signature has a verified time, or did not verify.)
		if t, ok := envelopeTimestamp(s, au.tm); ok {
			st.signedAt, st.source = t, "TimestampAuthority"
		}
	}
	return attestationOutcome{st: st}
}

// statementNames reports whether a verified statement has a subject with
// digest ("alg:hex").
func statementNames(st *in_toto.Statement, digest string) bool {
	alg, hx, _ := cutDigest(digest)
	for _, sub := range st.GetSubject() {
		if strings.EqualFold(sub.GetDigest()[alg], hx) {
			return true
		}
	}
	return false
}

// statementOf is a verified statement as conditions see it.
func statementOf(res *sgverify.VerificationResult, who signedBy) *policy.Statement {
	st := &policy.Statement{PredicateType: res.Statement.GetPredicateType()}
	if p := res.Statement.GetPredicate(); p != nil {
		st.Predicate = p.AsMap()
	}
	for _, sub := range res.Statement.GetSubject() {
		digests := map[string]any{}
		for k, v := range sub.GetDigest() {
			digests[k] = v
		}
		m := map[string]any{"name": sub.GetName(), "digest": digests}
		if u := sub.GetUri(); u != "" {
			m["uri"] = u
		}
		st.Subject = append(st.Subject, m)
	}
	if res.Signature != nil && res.Signature.Certificate != nil {
		c := res.Signature.Certificate
		st.Signer = policy.StatementSigner{Issuer: c.Issuer, Subject: c.SubjectAlternativeName, Extensions: extensionMap(c.Extensions)}
	} else {
		st.Signer = policy.StatementSigner{Subject: who.signer}
	}
	return st
}

// shortDuration is d as policies write it: "720h", "1h30m", "2s" (Go's
// String writes "720h0m0s").
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
