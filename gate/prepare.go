package gate

import (
	"context"
	"errors"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/verify"
)

// maxPrepared bounds the discoveries started ahead at once; past it a
// manifest is decided as if none had been started.
const maxPrepared = 1024

// A manifest asked for by digest has a known digest before its bytes
// arrive, and finding its signatures needs only the digest. So while the
// proxy fetches the bytes, PrepareManifest starts that discovery, and the
// decision on the bytes takes its result instead of starting it then: a
// cold decision by digest waits for the longer of the two, not their sum.
//
// Only discovery is done ahead: reading claims, which grants nothing. The
// decision still checks them under the snapshot in force when it runs, on
// the bytes fetched (hashed to the same digest), and takes them only when
// they are what it would read itself now: the same source and limits, the
// same revision, no purge since, and started within decisionTimeout.

// prepKey names a discovery started ahead: an image's digest in the
// repository the client asked in.
type prepKey struct {
	repo verify.Repository
	d    v1.Hash
}

// prepared is one discovery started ahead, shared by the requests for
// the same manifest that are waiting for its bytes.
type prepared struct {
	done    chan struct{}
	cancel  context.CancelFunc
	refs    int  // requests holding it (under preparer.mu)
	taken   bool // a decision took it: no other may, and no request cancels it
	purges  uint64
	rev     string    // the revision it was started under
	started time.Time // by the gate's clock

	// Set before done is closed.
	src  verify.Repository // where it looked (its policies' source)
	lim  verify.Limits
	disc *verify.Discovery
	err  error
}

// finished reports whether p's discovery has ended.
func (p *prepared) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// preparer holds the discoveries started ahead.
type preparer struct {
	mu sync.Mutex
	m  map[prepKey]*prepared
}

// PrepareManifest starts finding the signatures of manifest d of repo, a
// digest a client asked for, while the caller fetches its bytes; the
// caller calls release when it is done with the request (a discovery no
// decision took is then stopped and dropped). A request that comes while
// one is running (or taken by a decision) shares it; one that comes after
// it ended untaken starts another. It starts nothing with a verdict store
// shared between replicas (a Leaser), when a verdict on d is fresh, when
// too many are started already, or (found in the background, off the
// caller's path) when d is served through an allowed index or a served
// referrers listing, or its policies need no signatures. Its lookups do
// not teach the upstream client that a repository lacks the referrers
// API (oci.WithAhead): the manifest may not exist.
func (g *Gate) PrepareManifest(ctx context.Context, repo verify.Repository, d v1.Hash) (release func()) {
	if _, shared := g.store.(Leaser); shared {
		// Replicas take turns at a decision (fleetTurn) only once they
		// have the bytes: a discovery started ahead would run on every
		// replica asked, where the fleet makes one.
		return func() {}
	}
	snap := g.snap.Load()
	now := g.o.now()
	if s, err := g.store.Get(ctx, judgeAs{}.key(snap.Revision, repo, d), now); err != nil || (s != nil && now.Before(s.Fresh)) {
		return func() {} // decided already (an allow or a denial): nothing to read
	}
	k := prepKey{repo, d}
	g.prep.mu.Lock()
	p := g.prep.m[k]
	switch {
	case p != nil && (p.taken || !p.finished()):
		p.refs++
	case p == nil && len(g.prep.m) >= maxPrepared:
		g.prep.mu.Unlock()
		return func() {}
	default: // none, or one that ended untaken: it may be old, read afresh
		pctx, cancel := context.WithTimeout(oci.WithAhead(context.WithoutCancel(ctx)), 2*g.o.decisionTimeout)
		p = &prepared{done: make(chan struct{}), cancel: cancel, refs: 1, purges: g.purgeCount(), rev: snap.Revision, started: now}
		g.prep.m[k] = p // the one it replaces is its holders' until they release it
		go g.prepare(pctx, snap, k, p)
	}
	g.prep.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { g.unprepare(k, p) }) }
}

// unprepare is a request's release of p: the last one stops and drops a
// discovery no decision took.
func (g *Gate) unprepare(k prepKey, p *prepared) {
	g.prep.mu.Lock()
	defer g.prep.mu.Unlock()
	if p.refs--; p.refs > 0 {
		return
	}
	if !p.taken {
		p.cancel()
	}
	if g.prep.m[k] == p {
		delete(g.prep.m, k)
	}
}

// prepare runs p's discovery, unless nothing will need it.
func (g *Gate) prepare(ctx context.Context, snap *Snapshot, k prepKey, p *prepared) {
	defer close(p.done)
	defer p.cancel()
	for _, kind := range []GrantKind{GrantChild, GrantReferrer} {
		if ps, err := g.store.Granting(ctx, k.repo, k.d, kind, g.o.now()); err != nil || len(ps) > 0 {
			p.err = errNotPrepared
			return
		}
	}
	srcs, lim := g.reads(snap.Policy.For(k.repo.String(), k.d.String()), k.repo)
	if len(srcs) == 0 {
		p.err = errNotPrepared
		return
	}
	p.src, p.lim = srcs[0], lim // the first a decision reads; the others it reads itself
	p.disc, p.err = verify.DiscoverFrom(ctx, g.reader, p.src, k.repo, k.d, p.lim)
}

// errNotPrepared: the discovery started ahead found it was not needed.
var errNotPrepared = errors.New("not prepared")

// takePrepared is the discovery started ahead for req's digest, if there
// is one and it is what a decision under snap reading src with lim would
// read now; ok is false when the caller must discover itself (also when
// it ended in errNotPrepared or a context error: the decision's own
// context may have time left). A discovery is taken once: a later
// decision on the same manifest reads afresh.
func (g *Gate) takePrepared(ctx context.Context, snap *Snapshot, req *ManifestRequest, src verify.Repository, lim verify.Limits) (disc *verify.Discovery, ok bool, err error) {
	k := prepKey{req.Repo, req.Digest}
	g.prep.mu.Lock()
	p := g.prep.m[k]
	if p == nil || p.taken || p.rev != snap.Revision || g.o.now().Sub(p.started) > g.o.decisionTimeout {
		g.prep.mu.Unlock()
		return nil, false, nil
	}
	p.taken = true // it stays until released, so that a request arriving now starts no second one
	g.prep.mu.Unlock()
	select {
	case <-ctx.Done():
		p.cancel()
		return nil, false, ctx.Err()
	case <-p.done:
	}
	switch {
	case p.src != src || p.lim != lim:
		return nil, false, nil // its policies changed: not what this decision reads
	case p.purges != g.purgeCount():
		return nil, false, nil // it may have read what a purge since was for
	case errors.Is(p.err, errNotPrepared), errors.Is(p.err, context.Canceled), errors.Is(p.err, context.DeadlineExceeded):
		return nil, false, nil
	}
	return p.disc, true, p.err
}
