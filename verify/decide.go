package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/policy"
)

// decideManifest reaches a verdict on one manifest, in order:
//  1. bytes that are not a JSON manifest are refused;
//  2. signature artifacts (signature-shaped manifests under cosign's tags or
//     with a subject, and referrers fallback indexes) are served so that
//     cosign and admission controllers work through the proxy;
//  3. a child of an allowed index in the same repository is allowed;
//  4. otherwise the policy decides on the image's own signatures.
//
// An allowed manifest grants its children (index) or blobs (image).
func (g *Gate) decideManifest(ctx context.Context, snap *Snapshot, req *ManifestRequest) (*Verdict, error) {
	start := g.o.now()
	v := &Verdict{Image: req.Repo.String(), Digest: req.Digest}
	shape, err := parseShape(req.Bytes)
	switch {
	case err != nil:
		v.Judgement = &Judgement{Decision: Deny, Cause: CauseMalformed, Revision: snap.Revision,
			Why: fmt.Sprintf("refused: the manifest is not valid JSON: %v", err)}
	case g.exempt(snap, req, shape, v):
	default:
		byParent, err := g.parentAllows(ctx, snap, req.Repo, req.Digest)
		if err != nil {
			g.metrics.errors.Inc()
			return nil, err
		}
		if byParent {
			v.Judgement = &Judgement{Decision: Allow, Cause: CauseParent, Revision: snap.Revision,
				Why: "allowed: listed by an allowed index"}
			g.grant(snap.Revision, req.Repo, req.Digest, shape)
			break
		}
		plan := snap.Policy.For(v.Image, req.Digest.String())
		results, err := g.check(ctx, snap, plan, req)
		if err != nil {
			g.metrics.errors.Inc()
			return nil, err
		}
		v.Judgement = policyJudgement(plan, plan.Decide(results), snap.Revision)
		if v.Allowed() {
			g.grant(snap.Revision, req.Repo, req.Digest, shape)
		}
	}
	g.audit(v, start)
	return v, nil
}

// exempt sets v's judgement for signature material and reports whether
// it did; other manifests go through the normal gate. Only
// signature-shaped manifests are exempt, so a runnable image stored under a
// .sig tag or as a referrer is no bypass.
func (g *Gate) exempt(snap *Snapshot, req *ManifestRequest, shape *manifestShape, v *Verdict) bool {
	sigTag := IsSignatureTag(req.Reference)
	if !sigTag && shape.Subject == nil {
		return false
	}
	switch {
	case shape.signatureShaped():
		v.Judgement = &Judgement{Decision: Allow, Cause: CauseSignatureArtifact, Revision: snap.Revision,
			Why: "allowed: signature material"}
		g.grant(snap.Revision, req.Repo, req.Digest, shape)
	case sigTag && shape.isIndex() && !signatureSuffix(req.Reference):
		// A referrers fallback index lists referrers; it grants nothing:
		// each listed manifest is judged when fetched.
		v.Judgement = &Judgement{Decision: Allow, Cause: CauseReferrersIndex, Revision: snap.Revision,
			Why: "allowed: referrers index"}
	default:
		return false
	}
	return true
}

// check discovers the image's signatures once and checks every authority
// the plan needs. Errors mean no decision (never an allow).
func (g *Gate) check(ctx context.Context, snap *Snapshot, plan *policy.Plan, req *ManifestRequest) (map[*policy.Authority]policy.AuthorityResult, error) {
	if plan.BreakGlass || len(plan.Authorities()) == 0 {
		return nil, nil
	}
	t0 := time.Now()
	disc, err := Discover(ctx, g.reader, req.Repo, req.Digest, g.o.limits)
	g.metrics.step("discovery", time.Since(t0))
	if err != nil {
		return nil, fmt.Errorf("finding the signatures of %s@%s: %w", req.Repo, req.Digest, err)
	}
	g.metrics.signatures.Add(float64(len(disc.Signatures)))
	t1 := time.Now()
	results := map[*policy.Authority]policy.AuthorityResult{}
	for _, ip := range plan.Matched {
		if ip.AllowUnsigned {
			continue
		}
		for _, a := range ip.Authorities {
			if _, done := results[a]; !done {
				results[a] = snap.Checker.Check(a, disc, plan.Image, ip.MatchRepository)
			}
		}
	}
	g.metrics.step("crypto", time.Since(t1))
	return results, nil
}

// grant records what an allowed manifest lets through, for as long as its
// verdict lives: an index's children, an image's config and layers.
func (g *Gate) grant(rev string, repo Repository, manifest v1.Hash, shape *manifestShape) {
	until := g.o.now().Add(g.o.verdictTTL)
	if shape.isIndex() {
		g.o.allowances.Grant(rev, repo, manifest, shape.children(), until)
		return
	}
	g.o.allowances.Grant(rev, repo, manifest, shape.referencedBlobs(), until)
}

// parentAllows reports whether an allowed manifest of repo lets d through
// under the policy in force. A grant made under an older revision counts
// only once its parent has been decided again, and allowed, under the
// current one: a reload neither breaks a pull in flight nor keeps serving
// what the new policy refuses.
func (g *Gate) parentAllows(ctx context.Context, snap *Snapshot, repo Repository, d v1.Hash) (bool, error) {
	now := g.o.now()
	if g.o.allowances.Granted(snap.Revision, repo, d, now) {
		return true, nil
	}
	for _, parent := range g.o.allowances.Parents(repo, d, now) {
		m, err := g.reader.Manifest(ctx, repo, parent.String())
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("re-checking %s@%s, which listed %s: %w", repo, parent, d, err)
		}
		v, err := g.Manifest(ctx, &ManifestRequest{Repo: repo, Reference: parent.String(), Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes})
		if err != nil {
			return false, err
		}
		if !v.Allowed() || v.Revision != snap.Revision {
			continue
		}
		if shape, err := parseShape(m.Bytes); err == nil {
			g.grant(v.Revision, repo, parent, shape) // the parent's verdict may have come from the cache
		}
		if g.o.allowances.Granted(snap.Revision, repo, d, now) {
			return true, nil
		}
	}
	return false, nil
}

// audit writes the decision's log line and metrics.
func (g *Gate) audit(v *Verdict, start time.Time) {
	d := g.o.now().Sub(start)
	g.metrics.step("total", d)
	fields := []zap.Field{
		zap.String("image", v.Image), zap.String("digest", v.Digest.String()),
		zap.String("revision", v.Revision), zap.String("result", v.Decision.String()),
		zap.String("cause", string(v.Cause)), zap.String("message", v.Message()), zap.Duration("duration", d),
	}
	if v.Cause == CausePolicy {
		fields = append(fields, zap.String("reason", v.Outcome.Reason.String()))
	}
	if v.Identity != "" {
		fields = append(fields, zap.String("identity", v.Identity))
	}
	warned := v.Outcome.Warnings()
	for _, w := range warned {
		fields = append(fields, zap.Strings("warn."+w.Policy, w.Reasons))
	}
	switch {
	case !v.Allowed():
		g.o.logger.Warn("decision", fields...)
	case len(warned) > 0:
		g.o.logger.Warn("decision: served despite warn-mode policy violations", fields...)
	default:
		g.o.logger.Info("decision", fields...)
	}
	g.metrics.verdict(policyLabel(v), v)
}

// policyLabel is the policy a verdict is counted under: the first failing
// one, else the first matched one, else the cause.
func policyLabel(v *Verdict) string {
	if f := v.Outcome.FirstFailure(); f != nil {
		return f.Policy
	}
	if len(v.Outcome.Policies) > 0 {
		return v.Outcome.Policies[0].Policy
	}
	if v.Cause == CausePolicy {
		return v.Outcome.Reason.String()
	}
	return string(v.Cause)
}
