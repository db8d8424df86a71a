package verify

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/portcullis-dev/portcullis/policy"
)

// Snapshot is what a decision is made under: a compiled policy, the
// checker holding its trust roots, and their combined revision. A reload
// swaps the whole snapshot at once.
type Snapshot struct {
	Policy  *policy.Policy
	Checker *Checker
	// Revision keys verdicts and allowances: the policy file's revision,
	// plus that of any trust material refreshed at run time.
	Revision string
}

// Gate decides whether manifests and blobs may be served. It finds and
// verifies signatures through a Reader, evaluates the current policy,
// caches verdicts (allows for VerdictTTL, denials for DenyTTL, errors never),
// runs one verification for concurrent first requests, and remembers what
// an allowed manifest lets through (children, blobs) as Allowances.
type Gate struct {
	reader     Reader
	snap       atomic.Pointer[Snapshot]
	o          gateOptions
	cache      *ristretto.Cache[string, *cachedVerdict]
	judgements judgementPool
	flight     singleflight.Group
	metrics    *gateMetrics
}

// cachedVerdict is a cache entry: the judgement (shared between entries
// where it repeats) and until when it is reused without deciding again.
type cachedVerdict struct {
	j     *Judgement
	fresh time.Time
}

type gateOptions struct {
	verdictTTL, denyTTL, staleIfError, decisionTimeout time.Duration
	limits                                             Limits
	cacheEntries                                       int64
	allowances                                         Allowances
	logger                                             *zap.Logger
	registerer                                         prometheus.Registerer
	now                                                func() time.Time
}

// GateOption configures a Gate.
type GateOption func(*gateOptions) error

// WithVerdictTTL sets how long an allow verdict is reused (default 10m).
func WithVerdictTTL(d time.Duration) GateOption {
	return func(o *gateOptions) error { o.verdictTTL = d; return nonNegative("verdictTTL", d) }
}

// WithDenyTTL sets how long a denial is reused (default 30s: a signature
// may be pushed later).
func WithDenyTTL(d time.Duration) GateOption {
	return func(o *gateOptions) error { o.denyTTL = d; return nonNegative("denyTTL", d) }
}

// WithStaleIfError lets an expired allow verdict be used for up to d while
// a new decision fails with an error (default 1h). A denial never becomes
// an allow this way.
func WithStaleIfError(d time.Duration) GateOption {
	return func(o *gateOptions) error { o.staleIfError = d; return nonNegative("staleIfError", d) }
}

// WithDecisionTimeout bounds one decision (default 10s).
func WithDecisionTimeout(d time.Duration) GateOption {
	return func(o *gateOptions) error {
		if d <= 0 {
			return fmt.Errorf("decisionTimeout must be positive, got %v", d)
		}
		o.decisionTimeout = d
		return nil
	}
}

// WithLimits bounds signature discovery (default 32 signatures, 1 MiB each).
func WithLimits(l Limits) GateOption {
	return func(o *gateOptions) error { o.limits = l; return nil }
}

// WithVerdictCacheEntries bounds the verdict cache (default 1,000,000).
func WithVerdictCacheEntries(n int64) GateOption {
	return func(o *gateOptions) error {
		if n <= 0 {
			return fmt.Errorf("verdict cache size must be positive, got %d", n)
		}
		o.cacheEntries = n
		return nil
	}
}

// WithAllowances replaces the in-process Allowances (for sharing them).
func WithAllowances(a Allowances) GateOption {
	return func(o *gateOptions) error { o.allowances = a; return nil }
}

// WithGateLogger sets the logger for the audit line of every decision
// (default: discard).
func WithGateLogger(l *zap.Logger) GateOption {
	return func(o *gateOptions) error { o.logger = l; return nil }
}

// WithGateRegisterer registers the gate's metrics with r.
func WithGateRegisterer(r prometheus.Registerer) GateOption {
	return func(o *gateOptions) error { o.registerer = r; return nil }
}

func nonNegative(name string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s must not be negative, got %v", name, d)
	}
	return nil
}

// NewGate returns a Gate reading signatures through r and deciding under
// snap until SetSnapshot replaces it.
func NewGate(r Reader, snap *Snapshot, opts ...GateOption) (*Gate, error) {
	o := gateOptions{
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
		return nil, errors.New("a Gate needs a Reader and a Snapshot with a Policy and a Checker")
	}
	if o.allowances == nil {
		o.allowances = NewMemoryAllowances()
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, *cachedVerdict]{
		NumCounters: 10 * o.cacheEntries, MaxCost: o.cacheEntries, BufferItems: 64,
		IgnoreInternalCost: true, // costs count verdicts, not bytes
	})
	if err != nil {
		return nil, fmt.Errorf("verdict cache: %w", err)
	}
	g := &Gate{reader: r, o: o, cache: cache, metrics: newGateMetrics(o.registerer)}
	g.snap.Store(snap)
	return g, nil
}

// SetSnapshot makes snap the policy in force, at once: verdicts made under
// an older revision are not used after it.
func (g *Gate) SetSnapshot(snap *Snapshot) { g.snap.Store(snap) }

// Snapshot is the policy in force.
func (g *Gate) Snapshot() *Snapshot { return g.snap.Load() }

// Wait blocks until pending verdict cache writes are visible (for tests).
func (g *Gate) Wait() { g.cache.Wait() }

// ManifestRequest is a manifest about to be served: the exact bytes and
// the digest they hash to.
type ManifestRequest struct {
	Repo      Repository
	Reference string // the tag or digest the client asked for
	Digest    v1.Hash
	MediaType string
	Bytes     []byte
}

// Manifest decides on a manifest. A non-nil error means no decision could
// be made (the caller answers 503); a Verdict always says allow or deny.
func (g *Gate) Manifest(ctx context.Context, req *ManifestRequest) (*Verdict, error) {
	snap := g.snap.Load()
	key := snap.Revision + "|" + req.Repo.String() + "@" + req.Digest.Algorithm + ":" + req.Digest.Hex
	now := g.o.now()
	cached, ok := g.cache.Get(key)
	// A cached denial is not reused for a manifest that an allowed parent
	// now lists (a child asked for before its index).
	if ok && now.Before(cached.fresh) && (cached.j.Decision == Allow || !g.o.allowances.Granted(snap.Revision, req.Repo, req.Digest, now)) {
		g.metrics.cacheLookup(true)
		return &Verdict{Image: req.Repo.String(), Digest: req.Digest, Judgement: cached.j}, nil
	}
	g.metrics.cacheLookup(false)
	ch := g.flight.DoChan(key, func() (any, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.o.decisionTimeout)
		defer cancel()
		v, err := g.decideManifest(dctx, snap, req)
		if err != nil {
			return nil, err
		}
		g.remember(key, v)
		return v, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err == nil {
			return res.Val.(*Verdict), nil
		}
		if ok && cached.j.Decision == Allow && now.Before(cached.fresh.Add(g.o.staleIfError)) {
			g.o.logger.Warn("decision failed: serving a stale allow verdict",
				zap.String("image", req.Repo.String()), zap.String("digest", req.Digest.String()), zap.Error(res.Err))
			g.metrics.stale.Inc()
			return &Verdict{Image: req.Repo.String(), Digest: req.Digest, Judgement: cached.j}, nil
		}
		return nil, res.Err
	}
}

// remember caches a verdict: allows for verdictTTL (kept staleIfError
// longer for outages), denials for denyTTL.
func (g *Gate) remember(key string, v *Verdict) {
	now := g.o.now()
	if v.Allowed() {
		j := g.judgements.intern(v.Judgement)
		g.cache.SetWithTTL(key, &cachedVerdict{j: j, fresh: now.Add(g.o.verdictTTL)}, 1, g.o.verdictTTL+g.o.staleIfError)
	} else if g.o.denyTTL > 0 {
		g.cache.SetWithTTL(key, &cachedVerdict{j: v.Judgement, fresh: now.Add(g.o.denyTTL)}, 1, g.o.denyTTL)
	}
}

// Blob decides on a blob: served only when an allowed manifest of the same
// repository references it, under the policy in force.
func (g *Gate) Blob(ctx context.Context, repo Repository, d v1.Hash) (*Verdict, error) {
	snap := g.snap.Load()
	v := &Verdict{Image: repo.String(), Digest: d}
	allowed, err := g.parentAllows(ctx, snap, repo, d)
	if err != nil {
		return nil, err
	}
	if allowed {
		v.Judgement = &Judgement{Decision: Allow, Cause: CauseParent, Revision: snap.Revision, Why: "allowed: referenced by an allowed manifest"}
		return v, nil
	}
	v.Judgement = &Judgement{Decision: Deny, Cause: CauseNotReferenced, Revision: snap.Revision,
		Why: fmt.Sprintf("refused: no manifest allowed in %s references this blob (pull the image by tag or digest first; its manifest is checked against the policy)", repo)}
	g.metrics.verdict(string(CauseNotReferenced), v)
	return v, nil
}
