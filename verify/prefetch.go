package verify

import (
	"context"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// prefetchAhead is how many candidates of each list (the .sig tag's
// layers, the referrers) are read ahead, as soon as that list arrives: a
// signature's payload or referrer manifest need not wait for the other
// list, and an image rarely has more signatures than this.
const prefetchAhead = 2

// prefetcher is the Reader of one Discover: it starts the first reads of
// each candidate as soon as the list naming it arrives, and hands their
// results to the candidate when it asks (a read asked for again is
// shared, never made twice). What is fetched and how it is checked do not
// change; only when. Reads nobody asks for (a candidate over the budget
// of another list) are cancelled when the Discover ends (stop); there are
// at most prefetchAhead per list, and never more than MaxSignatures.
type prefetcher struct {
	Reader
	ctx  context.Context // the Discover's, cancelled by stop
	stop context.CancelFunc

	mu        sync.Mutex
	blobs     map[v1.Hash]*pending
	manifests map[string]*pending
}

// pending is one read in flight or done.
type pending struct {
	done chan struct{}
	max  int64 // a blob's limit
	blob []byte
	m    *Manifest
	err  error
}

func newPrefetcher(ctx context.Context, r Reader) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	return &prefetcher{Reader: r, ctx: ctx, stop: cancel, blobs: map[v1.Hash]*pending{}, manifests: map[string]*pending{}}
}

// blobAhead starts reading blob d (at most max bytes) of repo.
func (p *prefetcher) blobAhead(repo Repository, d v1.Hash, max int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.blobs[d]; ok {
		return
	}
	f := &pending{done: make(chan struct{}), max: max}
	p.blobs[d] = f
	go func() {
		defer close(f.done)
		f.blob, f.err = p.Reader.Blob(p.ctx, repo, d, max)
	}()
}

// manifestAhead starts reading manifest ref of repo.
func (p *prefetcher) manifestAhead(repo Repository, ref string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.manifests[ref]; ok {
		return
	}
	f := &pending{done: make(chan struct{})}
	p.manifests[ref] = f
	go func() {
		defer close(f.done)
		f.m, f.err = p.Reader.Manifest(p.ctx, repo, ref)
	}()
}

// Blob is the read started ahead, when there is one with the same limit.
func (p *prefetcher) Blob(ctx context.Context, repo Repository, d v1.Hash, max int64) ([]byte, error) {
	p.mu.Lock()
	f := p.blobs[d]
	p.mu.Unlock()
	if f == nil || f.max != max {
		return p.Reader.Blob(ctx, repo, d, max)
	}
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return f.blob, f.err
}

// Manifest is the read started ahead, when there is one.
func (p *prefetcher) Manifest(ctx context.Context, repo Repository, ref string) (*Manifest, error) {
	p.mu.Lock()
	f := p.manifests[ref]
	p.mu.Unlock()
	if f == nil {
		return p.Reader.Manifest(ctx, repo, ref)
	}
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return f.m, f.err
}

func (f *pending) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// legacyAhead starts reading the payloads of the first layers of a .sig
// manifest that examine will read (simple-signing layers within the size
// limit).
func (e *examiner) legacyAhead(sigTag *Manifest) {
	cands, _ := legacyCandidates(sigTag, e.digest)
	for _, c := range cands[:min(len(cands), prefetchAhead, e.lim.MaxSignatures)] {
		if l := c.(legacyCandidate).layer; l.Size <= e.lim.MaxLayerBytes {
			e.pf.blobAhead(e.repo, l.Digest, e.lim.MaxLayerBytes)
		}
	}
}

// referrersAhead starts reading the first referrer manifests examine will
// read, in plan order.
func (e *examiner) referrersAhead(refs *v1.IndexManifest) {
	signed, rest := sortReferrers(refs)
	cands := append(signed, rest...)
	for _, c := range cands[:min(len(cands), prefetchAhead, e.lim.MaxSignatures)] {
		e.pf.manifestAhead(e.repo, c.(referrerCandidate).desc.Digest.String())
	}
}
