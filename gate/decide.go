package gate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
)

// decide reaches a verdict on req judged as as, with the grants it makes:
//   - bytes that are not a JSON manifest are refused;
//   - signature material is served only if its subject would be served in
//     this repository and it has the shape of its kind; it grants only
//     its own blobs (and, for a listing, its entries as material);
//   - an image is allowed when an allowed index of the repository lists
//     it, or the policy allows it on its own signatures; it grants its
//     children (an index) or its config and layers (an image).
func (g *Gate) decide(ctx context.Context, snap *Snapshot, req *ManifestRequest, as judgeAs, key string) (*Stored, error) {
	start := g.o.now()
	s := &Stored{Key: key, Repo: req.Repo, Digest: req.Digest, Reference: req.Reference, as: as}
	v := &Verdict{Image: req.Repo.String(), Digest: req.Digest}
	var until time.Time       // when an allow stops holding (zero: never)
	var ev []*policy.Evidence // what verified, for the audit line
	shape, err := parseShape(req.Bytes)
	switch {
	case err != nil:
		v.Judgement = &Judgement{Decision: Deny, Cause: CauseMalformed, Revision: snap.Revision,
			Why: fmt.Sprintf("refused: the manifest is not valid JSON: %v", err)}
	case as.material():
		if v.Judgement, until, err = g.decideMaterial(ctx, snap, req, shape, as); err != nil {
			return nil, err
		}
		if v.Allowed() {
			s.Grants = shape.grants(GrantReferrer, GrantMaterialBlob)
		}
	default:
		if v.Judgement, ev, until, err = g.decideImage(ctx, snap, req); err != nil {
			return nil, err
		}
		if v.Allowed() {
			s.Grants = shape.grants(GrantChild, GrantBlob)
			for _, src := range sources(snap, req) {
				s.AddSource(src)
			}
		}
	}
	now := g.o.now()
	s.Judgement, s.Decided = v.Judgement, now
	if v.Allowed() {
		s.Judgement = g.judgements.intern(v.Judgement)
		s.Fresh = now.Add(g.o.verdictTTL)
		// Kept past freshness for stale-if-error serving, and for at least
		// one more TTL so that a pull that got the manifest from a fresh
		// verdict can still fetch its layers (they decide it again).
		s.Expires = s.Fresh.Add(max(g.o.staleIfError, g.o.verdictTTL))
		if !until.IsZero() {
			// It rests on an attestation's maxAge (its own, or its index's
			// or subject's): never cached, nor served stale, past the age.
			s.SetUntil(until)
			s.Fresh, s.Expires = policy.Earliest(s.Fresh, until), policy.Earliest(s.Expires, until)
		}
	} else {
		s.Fresh = now.Add(g.o.denyTTL)
		s.Expires = s.Fresh
	}
	rq := oci.RequestFrom(ctx)
	g.audit(rq, v, start, ev)
	if !as.material() {
		g.record(rq, req.Reference, v, resultOf(v), s.Fresh)
	}
	return s, nil
}

// decideImage applies the policy to an image (or index) of a repository.
// The evidence is that of the authorities that passed, for the audit line.
func (g *Gate) decideImage(ctx context.Context, snap *Snapshot, req *ManifestRequest) (*Judgement, []*policy.Evidence, time.Time, error) {
	parent, err := g.granted(ctx, snap, req.Repo, req.Digest, GrantChild)
	// With the other replicas unreachable, whether one of them allowed an
	// index listing this manifest is unknown: its own signatures may
	// still allow it; a refusal would be no decision.
	parentUnknown := errors.Is(err, ErrSharedUnavailable)
	if err != nil && !parentUnknown {
		return nil, nil, time.Time{}, err
	}
	if parent.ok {
		return &Judgement{Decision: Allow, Cause: CauseParent, Revision: snap.Revision, Why: "allowed: listed by an allowed index"}, nil, parent.until, nil
	}
	image := req.Repo.String()
	plan := snap.Policy.For(image, req.Digest.String())
	results, err := g.check(ctx, snap, plan, req)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	var ev []*policy.Evidence // in the plan's order, so the log names the same signature each time
	for _, a := range plan.Authorities() {
		if r := results[a]; r.Passed && r.Evidence != nil {
			ev = append(ev, r.Evidence)
		}
	}
	out := plan.Decide(results)
	if !out.Allowed && parentUnknown {
		return nil, nil, time.Time{}, fmt.Errorf("refused on its own signatures, and whether an allowed index lists it is unknown: %w", err)
	}
	if !out.Allowed {
		if err := trustNotLoaded(plan, out, results); err != nil {
			return nil, nil, time.Time{}, err
		}
	}
	j := policyJudgement(plan, out, snap.Revision)
	if j.Decision == Deny && oci.IsDigest(req.Reference) && isImageManifest(req.Bytes) {
		// Asked for by digest before any index listing it was allowed:
		// the gate cannot know its parent.
		j.Why += "; if it is one platform of a multi-arch image, pull the image by its tag or its index digest: a platform is served as a child of its allowed index"
	}
	return j, ev, out.ValidUntil, nil
}

// trustNotLoaded is the first "trust root not loaded yet" among the
// authorities of the enforcing policies that failed, in file order: the
// refusal may only be for want of that root, so it is no decision (503,
// naming the root) until the root loads. A root missing only for a
// policy that passed, or that warns, changes nothing.
func trustNotLoaded(plan *policy.Plan, out policy.Outcome, results map[*policy.Authority]policy.AuthorityResult) error {
	for i, pr := range out.Policies {
		if pr.Passed || pr.Mode != policy.Enforce || i >= len(plan.Matched) {
			continue
		}
		for _, a := range plan.Matched[i].Authorities {
			for _, f := range results[a].Failures {
				if f.Class == policy.FailTrustNotLoaded {
					return errors.New(f.Detail)
				}
			}
		}
	}
	return nil
}

// decideMaterial judges signature material: its subject must be served in
// this repository, and it must have the shape of its kind.
func (g *Gate) decideMaterial(ctx context.Context, snap *Snapshot, req *ManifestRequest, shape *manifestShape, as judgeAs) (*Judgement, time.Time, error) {
	what := materialName(as)
	served, why, until, err := g.subjectServed(ctx, snap, req.Repo, as)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !served {
		// Material in a signaturesFrom repository: about an image allowed
		// in a repository whose matching policy names this one.
		sourced, err := g.granted(ctx, snap, req.Repo, as.subject, GrantSourced)
		if err != nil {
			return nil, time.Time{}, err
		}
		if sourced.ok {
			served, until = true, sourced.until
		}
	}
	if !served {
		return &Judgement{Decision: Deny, Cause: CauseSubjectRefused, Revision: snap.Revision,
			Why: fmt.Sprintf("refused: %s of %s, which is not served here: %s", what, as.subject, why)}, time.Time{}, nil
	}
	problem, err := shapeProblem(ctx, g.reader, req.Repo, as.kind, shape, g.o.limits)
	if err != nil {
		return nil, time.Time{}, err
	}
	if problem != "" {
		return &Judgement{Decision: Deny, Cause: CauseNotMaterial, Revision: snap.Revision,
			Why: fmt.Sprintf("is not %s of %s: %s", what, as.subject, problem)}, time.Time{}, nil
	}
	return &Judgement{Decision: Allow, Cause: CauseSignatureArtifact, Revision: snap.Revision,
		Why: "allowed: " + what + " of an allowed image"}, until, nil
}

func materialName(as judgeAs) string {
	switch as.kind {
	case kindSig, kindAtt, kindSBOM:
		return "the ." + string(as.kind) + " signature material"
	case kindFallback:
		return "the referrers fallback index"
	case kindReferrers:
		return "the referrers answer"
	}
	return "a referrer"
}

// maxSubjectDepth bounds material about material (a signature of a
// signature): deeper chains are refused.
const maxSubjectDepth = 2

type depthKey struct{}

// subjectServed reports whether material's subject would be served in repo
// as an image (allowed, or a child of an allowed index), deciding it now
// when no verdict is stored: cosign asks for referrers and .sig before any
// manifest GET. A subject that does not exist is not served.
func (g *Gate) subjectServed(ctx context.Context, snap *Snapshot, repo verify.Repository, as judgeAs) (bool, string, time.Time, error) {
	depth, _ := ctx.Value(depthKey{}).(int)
	if depth >= maxSubjectDepth {
		return false, "signature material of signature material, too deep", time.Time{}, nil
	}
	ctx = context.WithValue(ctx, depthKey{}, depth+1)
	if as.subject.Hex == "" {
		return false, "no subject", time.Time{}, nil
	}
	m, err := g.reader.Manifest(ctx, repo, as.subject.String())
	if errors.Is(err, verify.ErrNotFound) {
		return false, "no such manifest", time.Time{}, nil
	}
	if err != nil {
		return false, "", time.Time{}, fmt.Errorf("reading subject %s@%s: %w", repo, as.subject, err)
	}
	req := &ManifestRequest{Repo: repo, Reference: as.subject.String(), Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes}
	v, err := g.verdict(ctx, snap, req, judgeAs{})
	if err != nil {
		return false, "", time.Time{}, err
	}
	return v.Allowed(), v.Why, v.until(), nil
}

// check discovers the image's signatures once per repository they are
// read from (the image's own, and each authority's signaturesFrom) and
// checks every authority the plan needs. Errors mean no decision (never an
// allow).
func (g *Gate) check(ctx context.Context, snap *Snapshot, plan *policy.Plan, req *ManifestRequest) (map[*policy.Authority]policy.AuthorityResult, error) {
	srcs, lim := g.reads(plan, req.Repo)
	if len(srcs) == 0 {
		return nil, nil
	}
	t0 := time.Now()
	discs := map[verify.Repository]*verify.Discovery{}
	for _, src := range srcs {
		disc, err := g.discover(ctx, snap, req, src, lim)
		if err != nil {
			g.metrics.step("discovery", time.Since(t0))
			return nil, fmt.Errorf("finding the signatures of %s@%s in %s: %w", req.Repo, req.Digest, src, err)
		}
		discs[src] = disc
		g.metrics.signatures.Add(float64(len(disc.Signatures)))
	}
	g.metrics.step("discovery", time.Since(t0))
	t1 := time.Now()
	results := map[*policy.Authority]policy.AuthorityResult{}
	for _, ip := range plan.Matched {
		if ip.AllowUnsigned {
			continue
		}
		for _, a := range ip.Authorities {
			if _, done := results[a]; !done {
				results[a] = snap.Checker.CheckAt(a, discs[sourceOf(a, req.Repo)], plan.Image, ip.MatchRepository, g.o.now())
			}
		}
	}
	g.metrics.step("crypto", time.Since(t1))
	return results, nil
}

// reads are where a decision under plan reads the signatures of an image
// of repo (each source once, in the plan's order: the image's own
// repository, or an authority's signaturesFrom) and with what limits;
// none when the plan checks no signature (break-glass, or no authority).
func (g *Gate) reads(plan *policy.Plan, repo verify.Repository) ([]verify.Repository, verify.Limits) {
	lim := g.o.limits
	if plan.BreakGlass {
		return nil, lim
	}
	var srcs []verify.Repository
	for _, a := range plan.Authorities() {
		if src := sourceOf(a, repo); !slices.Contains(srcs, src) {
			srcs = append(srcs, src)
		}
	}
	lim.Attestations = needsAttestations(plan)
	return srcs, lim
}

// discover finds the signatures of req's digest in src: those found
// ahead (PrepareManifest) while its bytes were fetched, else afresh.
func (g *Gate) discover(ctx context.Context, snap *Snapshot, req *ManifestRequest, src verify.Repository, lim verify.Limits) (*verify.Discovery, error) {
	if disc, ok, err := g.takePrepared(ctx, snap, req, src, lim); ok || err != nil {
		return disc, err
	}
	return verify.DiscoverFrom(ctx, g.reader, src, req.Repo, req.Digest, lim)
}

// audit writes the decision's log line and metrics; ev is what verified
// (the signing time and where the signature was found are logged).
func (g *Gate) audit(rq oci.Request, v *Verdict, start time.Time, ev []*policy.Evidence) {
	d := g.o.now().Sub(start)
	g.metrics.step("total", d)
	fields := []zap.Field{
		zap.String("requestId", rq.ID), zap.String("client", rq.Client),
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
	if len(ev) > 0 {
		e := ev[0]
		fields = append(fields, zap.String("signature", e.Source))
		if !e.SigningTime.IsZero() {
			fields = append(fields, zap.Time("signedAt", e.SigningTime), zap.String("signingTimeSource", e.TimeSource))
		}
	}
	if d := v.Detail(); len(d) > 0 {
		fields = append(fields, violations(d))
	}
	switch resultOf(v) {
	case ResultDeny:
		g.o.logger.Warn("decision", fields...)
	case ResultWarn:
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
		return policy.PseudoPolicyPrefix + v.Outcome.Reason.String()
	}
	return policy.PseudoPolicyPrefix + string(v.Cause)
}

// needsAttestations reports whether an authority of the plan requires
// attestations (discovery then also reads the legacy .att tag).
func needsAttestations(plan *policy.Plan) bool {
	for _, a := range plan.Authorities() {
		if len(a.Attestations) > 0 {
			return true
		}
	}
	return false
}

// sourceOf is the repository a's signatures are read from for an image of
// repo: its signaturesFrom, else repo.
func sourceOf(a *policy.Authority, repo verify.Repository) verify.Repository {
	if a.SignaturesFrom.Name != "" {
		return a.SignaturesFrom
	}
	return repo
}

// sources are where an allowed image is granted GrantSourced: each
// signaturesFrom repository its matching policies name, so that its
// signature material is served there.
func sources(snap *Snapshot, req *ManifestRequest) []verify.Repository {
	var out []verify.Repository
	for _, a := range snap.Policy.For(req.Repo.String(), req.Digest.String()).Authorities() {
		if src := a.SignaturesFrom; src.Name != "" && src != req.Repo && !slices.Contains(out, src) {
			out = append(out, src)
		}
	}
	return out
}
