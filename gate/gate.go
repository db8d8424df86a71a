package gate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
)

// Snapshot is what a decision is made under: a compiled policy, the
// checker holding its trust roots, and their combined revision. A reload
// swaps the whole snapshot at once.
type Snapshot struct {
	Policy  *policy.Policy
	Checker *verify.Checker
	// Revision keys verdicts and allowances: the policy file's revision,
	// plus that of any trust material refreshed at run time.
	Revision string
}

// Gate decides whether manifests and blobs may be served. It finds and
// verifies signatures through a Reader, evaluates the current policy,
// stores verdicts with the grants they make (allows for VerdictTTL,
// denials for DenyTTL, errors never), and runs one decision for
// concurrent first requests. The rules it enforces are in docs/SECURITY.md.
type Gate struct {
	reader     verify.Reader
	snap       atomic.Pointer[Snapshot]
	o          options
	store      VerdictStore
	judgements judgementPool
	flight     singleflight.Group
	prep       preparer // discoveries started ahead (PrepareManifest)
	metrics    *gateMetrics
	// purges counts Purge calls: a verdict decided across one is not
	// stored, whatever it says (it may have read what the purge was for:
	// a signature since pushed, or one since deleted upstream).
	purges atomic.Uint64
}

type options struct {
	verdictTTL, denyTTL, staleIfError, decisionTimeout time.Duration
	limits                                             verify.Limits
	cacheEntries                                       int64
	store                                              VerdictStore
	decisions                                          *DecisionLog
	logger                                             *zap.Logger
	registerer                                         prometheus.Registerer
	now                                                func() time.Time
}

// Option configures a Gate.
type Option func(*options) error

// WithVerdictTTL sets how long an allow verdict is reused (default 10m).
func WithVerdictTTL(d time.Duration) Option {
	return func(o *options) error { o.verdictTTL = d; return nonNegative("verdictTTL", d) }
}

// WithDenyTTL sets how long a denial is reused (default 30s: a signature
// may be pushed later).
func WithDenyTTL(d time.Duration) Option {
	return func(o *options) error { o.denyTTL = d; return nonNegative("denyTTL", d) }
}

// WithStaleIfError lets an expired allow verdict be used for up to d while
// a new decision fails with an error (default 1h). A denial never becomes
// an allow this way.
func WithStaleIfError(d time.Duration) Option {
	return func(o *options) error { o.staleIfError = d; return nonNegative("staleIfError", d) }
}

// WithDecisionTimeout bounds one decision (default 10s).
func WithDecisionTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("decisionTimeout must be positive, got %v", d)
		}
		o.decisionTimeout = d
		return nil
	}
}

// WithLimits bounds signature discovery (default 32 signatures, 1 MiB each).
func WithLimits(l verify.Limits) Option {
	return func(o *options) error { o.limits = l; return nil }
}

// WithVerdictCacheEntries bounds the in-process verdict store: verdicts
// plus the grants they hold (default 1,000,000).
func WithVerdictCacheEntries(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("verdict cache size must be positive, got %d", n)
		}
		o.cacheEntries = n
		return nil
	}
}

// WithVerdictStore replaces the in-process verdict store (for sharing
// verdicts between replicas).
func WithVerdictStore(s VerdictStore) Option {
	return func(o *options) error {
		if s == nil {
			return errors.New("nil VerdictStore")
		}
		o.store = s
		return nil
	}
}

// WithDecisionLog records every decision, every request served despite a
// warn-mode violation, every blob refused and every decision that failed
// in l (default: none).
func WithDecisionLog(l *DecisionLog) Option {
	return func(o *options) error { o.decisions = l; return nil }
}

// WithLogger sets the logger for the audit line of every decision
// (default: discard).
func WithLogger(l *zap.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithClock sets the gate's clock (default time.Now): tests move time
// with a fake clock instead of sleeping.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithRegisterer registers the gate's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) error { o.registerer = r; return nil }
}

func nonNegative(name string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s must not be negative, got %v", name, d)
	}
	return nil
}

// New returns a Gate reading signatures through r and deciding under
// snap until SetSnapshot replaces it.
func New(r verify.Reader, snap *Snapshot, opts ...Option) (*Gate, error) {
	o := options{
		verdictTTL: 10 * time.Minute, denyTTL: 30 * time.Second, staleIfError: time.Hour,
		decisionTimeout: 10 * time.Second, cacheEntries: 1_000_000,
		logger: zap.NewNop(), now: time.Now,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if r == nil || snap == nil || snap.Policy == nil || snap.Checker == nil {
		return nil, errors.New("a Gate needs a verify.Reader and a Snapshot with a Policy and a Checker")
	}
	o.limits = o.limits.WithDefaults()
	if o.store == nil {
		o.store = NewMemoryStore(int(o.cacheEntries))
	}
	g := &Gate{reader: r, o: o, store: o.store, metrics: newGateMetrics(o.registerer), prep: preparer{m: map[prepKey]*prepared{}}}
	g.snap.Store(snap)
	return g, nil
}

// SetSnapshot makes snap the policy in force, at once: verdicts made under
// an older revision are not used after it.
func (g *Gate) SetSnapshot(snap *Snapshot) { g.snap.Store(snap) }

// Snapshot is the policy in force.
func (g *Gate) Snapshot() *Snapshot { return g.snap.Load() }

// ManifestRequest is a manifest about to be served: the exact bytes and
// the digest they hash to.
type ManifestRequest struct {
	Repo      verify.Repository
	Reference string // the tag or digest the client asked for
	Digest    v1.Hash
	MediaType string
	Bytes     []byte
}

// Manifest decides on a manifest. A non-nil error means no decision could
// be made (the caller answers 503); a Verdict always says allow or deny.
//
// A manifest under a signature tag is judged as that tag's material. Any
// other is judged as an image; one asked for by digest that is refused as
// an image may still be signature material, when it names a subject or a
// served referrers listing named it.
func (g *Gate) Manifest(ctx context.Context, req *ManifestRequest) (*Verdict, error) {
	as, tagged := signatureTagAs(req.Reference)
	if tagged {
		return g.verdict(ctx, g.snap.Load(), req, as) // material: not answered as an image
	}
	v, err := g.manifest(ctx, req)
	if v == nil || !v.material() {
		g.answered(ctx, req, v, err)
	}
	return v, err
}

// manifest decides on a manifest not under a signature tag.
func (g *Gate) manifest(ctx context.Context, req *ManifestRequest) (*Verdict, error) {
	snap := g.snap.Load()
	if !oci.IsDigest(req.Reference) {
		return g.verdict(ctx, snap, req, judgeAs{})
	}
	if s, err := g.store.Get(ctx, judgeAs{}.key(snap.Revision, req.Repo, req.Digest), g.o.now()); err == nil && s != nil &&
		s.Judgement.Decision == Allow && g.o.now().Before(s.Fresh) {
		g.metrics.cacheLookup(true)
		return g.verdictOf(req, s, false, true), nil
	}
	var material *Verdict
	if subject, ok := subjectOf(req.Bytes); ok {
		v, err := g.verdict(ctx, snap, req, judgeAs{kind: kindReferrer, subject: subject})
		if err != nil || v.Allowed() {
			return v, err
		}
		material = v
	}
	v, err := g.verdict(ctx, snap, req, judgeAs{})
	if err != nil || v.Allowed() {
		return v, err
	}
	if material == nil {
		subject, ok, err := g.listedSubject(ctx, req.Repo, req.Digest)
		if err != nil {
			return nil, err
		}
		if ok {
			if material, err = g.verdict(ctx, snap, req, judgeAs{kind: kindReferrer, subject: subject}); err != nil || material.Allowed() {
				return material, err
			}
		}
	}
	if material != nil {
		return material, nil // says why it is not served as signature material (404 when only its shape is wrong)
	}
	return v, nil
}

// Referrers decides on a referrers answer for subject, as it is about to
// be served: body must be an OCI index of OCI manifests, and subject must
// be served itself. Serving it lets the manifests it lists be served as
// signature material of subject (if they have that shape).
func (g *Gate) Referrers(ctx context.Context, repo verify.Repository, subject v1.Hash, body []byte) (*Verdict, error) {
	req := &ManifestRequest{Repo: repo, Reference: "referrers", Digest: digestOfBytes(body), MediaType: ociIndexType, Bytes: body}
	return g.verdict(ctx, g.snap.Load(), req, judgeAs{kind: kindReferrers, subject: subject})
}

// Blob decides on a blob: served only when an allowed manifest of the same
// repository lists it, or served signature material does (then at most
// Verdict.MaxBytes of it).
func (g *Gate) Blob(ctx context.Context, repo verify.Repository, d v1.Hash) (*Verdict, error) {
	snap := g.snap.Load()
	v := &Verdict{Image: repo.String(), Digest: d}
	if held, err := g.granted(ctx, snap, repo, d, GrantBlob); err != nil || held.ok {
		v.Judgement = &Judgement{Decision: Allow, Cause: CauseParent, Revision: snap.Revision, Why: "allowed: listed by an allowed manifest"}
		return v, err
	}
	held, err := g.granted(ctx, snap, repo, d, GrantMaterialBlob)
	if err != nil {
		return nil, err
	}
	if held.ok {
		v.Judgement = &Judgement{Decision: Allow, Cause: CauseSignatureArtifact, Revision: snap.Revision, Why: "allowed: listed by served signature material"}
		v.MaxBytes = held.size
		return v, nil
	}
	v.Judgement = &Judgement{Decision: Deny, Cause: CauseNotReferenced, Revision: snap.Revision,
		Why: fmt.Sprintf("refused: no manifest allowed in %s references this blob (pull the image by tag or digest first; its manifest is checked against the policy)", repo)}
	g.metrics.verdict(policyLabel(v), v)
	g.record(oci.RequestFrom(ctx), BlobReference, v, ResultDeny, time.Time{})
	return v, nil
}

// verdict returns the verdict on req judged as as: from the store while
// fresh, else decided (once for concurrent callers) and stored. When a new
// decision fails with an error, an allow still within staleIfError is used.
func (g *Gate) verdict(ctx context.Context, snap *Snapshot, req *ManifestRequest, as judgeAs) (*Verdict, error) {
	key := as.key(snap.Revision, req.Repo, req.Digest)
	now := g.o.now()
	cached, err := g.store.Get(ctx, key, now)
	if err != nil {
		g.metrics.errors.Inc()
		return nil, fmt.Errorf("verdict store: %w", err)
	}
	if cached != nil && now.Before(cached.Fresh) && (cached.Judgement.Decision == Allow || !g.mayHaveParent(ctx, snap, req, as)) {
		g.metrics.cacheLookup(true)
		return g.verdictOf(req, cached, false, true), nil
	}
	g.metrics.cacheLookup(false)
	var mine atomic.Bool // this call's flight ran: its decision is logged already
	ch := g.flight.DoChan(key, func() (any, error) {
		bg := context.WithoutCancel(ctx)
		// A decision may have been stored between the lookup above and
		// this flight (a flight that ended just before this one began):
		// use it rather than decide twice.
		if s, err := g.store.Get(bg, key, g.o.now()); err == nil && s != nil && s != cached && g.o.now().Before(s.Fresh) {
			return decided{s, true}, nil
		}
		// Another replica may be deciding it: wait for its verdict.
		fleet, release := g.fleetTurn(bg, key, cached)
		defer release()
		if fleet != nil {
			return decided{fleet, true}, nil
		}
		dctx, cancel := context.WithTimeout(bg, g.o.decisionTimeout)
		defer cancel()
		mine.Store(true)
		purges := g.purgeCount()
		s, err := g.decide(dctx, snap, req, as, key)
		if err != nil {
			g.metrics.errors.Inc()
			return nil, err
		}
		if !s.Expires.After(g.o.now()) || g.purgeCount() != purges {
			return decided{s, false}, nil
		}
		if err := g.store.Put(dctx, s, g.o.now()); err != nil {
			return nil, fmt.Errorf("verdict store: %w", err)
		}
		return decided{s, true}, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err == nil {
			d := res.Val.(decided)
			return g.verdictOf(req, d.s, mine.Load(), d.stored), nil
		}
		if cached != nil && cached.Judgement.Decision == Allow && now.Before(g.staleUntil(cached)) {
			g.o.logger.Warn("decision failed: serving a stale allow verdict",
				zap.String("image", req.Repo.String()), zap.String("digest", req.Digest.String()), zap.Error(res.Err))
			g.metrics.stale.Inc()
			return g.verdictOf(req, cached, false, true), nil
		}
		return nil, res.Err
	}
}

// decided is what a decision's flight returns: the verdict, and whether
// it is in the store (a denial says how long it is cached only then).
type decided struct {
	s      *Stored
	stored bool
}

// verdictOf is the verdict of s for req; decided says this call made the
// decision (which logged and recorded it), stored that s is in the store.
func (g *Gate) verdictOf(req *ManifestRequest, s *Stored, decided, stored bool) *Verdict {
	v := &Verdict{Image: req.Repo.String(), Digest: req.Digest, Judgement: s.Judgement, decided: decided, stored: s}
	if !v.Allowed() && stored {
		v.CachedFor = s.Fresh.Sub(g.o.now()).Round(time.Second)
	}
	return v
}

// mayHaveParent reports whether a cached image denial should yield to a
// decision again: an allowed index of the repository now lists it (a child
// asked for before its index).
func (g *Gate) mayHaveParent(ctx context.Context, snap *Snapshot, req *ManifestRequest, as judgeAs) bool {
	if as.material() {
		return false
	}
	ps, err := g.store.Granting(ctx, req.Repo, req.Digest, GrantChild, g.o.now())
	if errors.Is(err, ErrSharedUnavailable) {
		return false // as a replica alone would: the denial stands for its denyTTL
	}
	return err != nil || len(ps) > 0
}

// listedSubject is the subject of a served referrers listing that named d.
func (g *Gate) listedSubject(ctx context.Context, repo verify.Repository, d v1.Hash) (v1.Hash, bool, error) {
	ps, err := g.store.Granting(ctx, repo, d, GrantReferrer, g.o.now())
	if err != nil {
		return v1.Hash{}, false, fmt.Errorf("verdict store: %w", err)
	}
	for _, p := range ps {
		if p.Judgement.Decision == Allow {
			return p.as.subject, true, nil
		}
	}
	return v1.Hash{}, false, nil
}

// grantHeld is what granted found: whether a verdict grants the digest,
// the largest size it allows, and until when it holds (zero: no limit).
type grantHeld struct {
	ok    bool
	size  int64
	until time.Time
}

// heldBy is the grant p holds for d with kind.
func heldBy(p *Stored, d v1.Hash, kind GrantKind) grantHeld {
	return grantHeld{ok: true, size: grantSize(p, d, kind), until: p.Until()}
}

// granted reports whether a verdict that serves its manifest in repo under
// the policy in force grants d with kind, the largest size it allows, and
// its Until (an allow through it ends then too). A granting verdict that
// is no longer fresh, or of an older revision, is decided again first (so
// a reload neither breaks a pull in flight nor keeps serving what the new
// policy refuses); while that fails with an error, a granting allow within
// staleIfError still counts.
func (g *Gate) granted(ctx context.Context, snap *Snapshot, repo verify.Repository, d v1.Hash, kind GrantKind) (grantHeld, error) {
	now := g.o.now()
	ps, err := g.store.Granting(ctx, repo, d, kind, now)
	if err != nil {
		return grantHeld{}, fmt.Errorf("verdict store: %w", err)
	}
	var again []*Stored
	for _, p := range ps {
		if p.Judgement.Decision != Allow {
			continue
		}
		if p.Judgement.Revision == snap.Revision && now.Before(p.Fresh) {
			return heldBy(p, d, kind), nil
		}
		again = append(again, p)
	}
	var firstErr error
	for _, p := range again {
		s, ok, err := g.redecide(ctx, snap, p)
		if err != nil {
			if p.Judgement.Revision == snap.Revision && now.Before(g.staleUntil(p)) {
				return heldBy(p, d, kind), nil
			}
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		if ok && s.HasGrant(repo, d, kind) {
			// Allowed again (freshly, or by its stale verdict while the
			// decision failed: verdict checked staleUntil), and that
			// verdict grants d: what counts is its grants, not p's. The
			// same manifest makes the same grants of its own content, but
			// which signaturesFrom repositories it is granted in
			// (GrantSourced) is the policy's, and the new one may name
			// none. Never asked again here, as a stale answer would ask
			// for ever.
			return heldBy(s, d, kind), nil
		}
	}
	return grantHeld{}, firstErr
}

// redecide decides a stored verdict's request again under snap: ok when
// it is allowed under snap, with the verdict that says so (decided now,
// or kept while deciding failed).
func (g *Gate) redecide(ctx context.Context, snap *Snapshot, p *Stored) (s *Stored, ok bool, err error) {
	m, err := g.reader.Manifest(ctx, p.Repo, p.Digest.String())
	if errors.Is(err, verify.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("re-checking %s@%s: %w", p.Repo, p.Digest, err)
	}
	req := &ManifestRequest{Repo: p.Repo, Reference: p.Reference, Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes}
	v, err := g.verdict(ctx, snap, req, p.as)
	if err != nil {
		return nil, false, err
	}
	return v.stored, v.Allowed() && v.Revision == snap.Revision && v.stored != nil, nil
}

func grantSize(p *Stored, d v1.Hash, kind GrantKind) int64 {
	if kind != GrantMaterialBlob {
		return 0
	}
	for _, gr := range p.Grants {
		if gr.Kind == kind && gr.Digest == d {
			return max(gr.Size, 1)
		}
	}
	return 1
}

func digestOfBytes(b []byte) v1.Hash {
	h, _ := oci.Digest("sha256", b)
	return h
}

// staleUntil is when an allow stops being usable while new decisions fail
// (staleIfError): never past its Expires, which an allow resting on an
// attestation's maxAge has at that age.
func (g *Gate) staleUntil(s *Stored) time.Time {
	return policy.Earliest(s.Fresh.Add(g.o.staleIfError), s.Expires)
}
