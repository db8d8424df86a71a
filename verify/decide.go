package verify

import (
	"context"
	"fmt"
	"time"

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
	base := Verdict{Image: req.Repo.String(), Digest: req.Digest, Revision: snap.Revision}
	shape, err := parseShape(req.Bytes)
	if err != nil {
		v := base
		v.Decision, v.Cause = Deny, CauseMalformed
		v.Message = fmt.Sprintf("%s@%s refused: the manifest is not valid JSON: %v", v.Image, v.Digest, err)
		g.audit(&v, start)
		return &v, nil
	}
	if v := g.exempt(snap, req, shape, base); v != nil {
		g.audit(v, start)
		return v, nil
	}
	if g.o.allowances.Granted(snap.Revision, req.Repo, req.Digest, start) {
		v := base
		v.Decision, v.Cause = Allow, CauseParent
		v.Message = fmt.Sprintf("%s@%s allowed: listed by an allowed index", v.Image, v.Digest)
		g.grant(snap, req, shape)
		g.audit(&v, start)
		return &v, nil
	}
	plan := snap.Policy.For(base.Image, req.Digest.String())
	results, err := g.check(ctx, snap, plan, req)
	if err != nil {
		g.metrics.errors.Inc()
		return nil, err
	}
	v := policyVerdict(plan, plan.Decide(results))
	v.Revision = snap.Revision
	if v.Allowed() {
		g.grant(snap, req, shape)
	}
	g.audit(v, start)
	return v, nil
}

// exempt returns the verdict for signature material, or nil when the
// manifest is not signature material and goes through the normal gate.
// Only signature-shaped manifests are exempt, so a runnable image stored
// under a .sig tag or as a referrer is no bypass.
func (g *Gate) exempt(snap *Snapshot, req *ManifestRequest, shape *manifestShape, base Verdict) *Verdict {
	sigTag := IsSignatureTag(req.Reference)
	if !sigTag && shape.Subject == nil {
		return nil
	}
	v := base
	v.Decision = Allow
	switch {
	case shape.signatureShaped():
		v.Cause = CauseSignatureArtifact
		v.Message = fmt.Sprintf("%s@%s allowed: signature material", v.Image, v.Digest)
		g.grant(snap, req, shape)
	case sigTag && shape.isIndex() && !signatureSuffix(req.Reference):
		// A referrers fallback index lists referrers; it grants nothing:
		// each listed manifest is judged when fetched.
		v.Cause = CauseReferrersIndex
		v.Message = fmt.Sprintf("%s@%s allowed: referrers index", v.Image, v.Digest)
	default:
		return nil
	}
	return &v
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
func (g *Gate) grant(snap *Snapshot, req *ManifestRequest, shape *manifestShape) {
	until := g.o.now().Add(g.o.verdictTTL)
	if shape.isIndex() {
		g.o.allowances.Grant(snap.Revision, req.Repo, shape.children(), until)
		return
	}
	g.o.allowances.Grant(snap.Revision, req.Repo, shape.referencedBlobs(), until)
}

// audit writes the decision's log line and metrics.
func (g *Gate) audit(v *Verdict, start time.Time) {
	d := g.o.now().Sub(start)
	g.metrics.step("total", d)
	fields := []zap.Field{
		zap.String("image", v.Image), zap.String("digest", v.Digest.String()),
		zap.String("revision", v.Revision), zap.String("result", v.Decision.String()),
		zap.String("cause", string(v.Cause)), zap.String("message", v.Message), zap.Duration("duration", d),
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
