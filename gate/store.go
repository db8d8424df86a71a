package gate

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/verify"
)

// GrantKind says what a grant lets through. Kinds never stand in for one
// another: a blob grant never satisfies a manifest check, and a grant of
// signature material never makes a manifest an image.
type GrantKind uint8

const (
	// GrantChild is a manifest listed by an allowed index: served as an
	// image of the same repository.
	GrantChild GrantKind = iota + 1
	// GrantBlob is a config or layer of an allowed image manifest.
	GrantBlob
	// GrantMaterialBlob is a config or layer of served signature material:
	// served only because that artifact lists it, and only up to its size.
	GrantMaterialBlob
	// GrantReferrer is a manifest listed by a served referrers answer or
	// fallback index: it may be served as signature material of the
	// listing's subject (if it has the shape of a referrer).
	GrantReferrer
	// GrantSourced is an allowed image whose matching policy reads
	// signatures from another repository (an authority's signaturesFrom,
	// one of the verdict's Sources): signature material about it may be
	// served there. It is never among a verdict's Grants, which hold in
	// its own repository: Stored.AddSource records it.
	GrantSourced
)

// Grant is one digest an allowed verdict lets through, and how.
type Grant struct {
	Kind   GrantKind
	Digest v1.Hash
	// Size is the descriptor's size (bounds a material blob).
	Size int64
}

// Stored is a verdict as the store keeps it: the judgement, the request it
// judged (so it can be decided again), until when it is reused, and the
// grants it made, which live and die with it.
type Stored struct {
	Key  string
	Repo verify.Repository
	// Digest is the manifest (or referrers answer) judged.
	Digest v1.Hash
	// Reference is what the client asked for (a tag or a digest); deciding
	// again replays it.
	Reference string
	// as is what the manifest was judged as (an image, or material of a
	// kind about a subject).
	as        judgeAs
	Judgement *Judgement
	// Fresh is until when the verdict is reused without deciding again;
	// Expires when it is dropped (Fresh plus the stale-if-error window and
	// the grace a pull in progress needs to fetch its layers).
	Fresh, Expires time.Time
	// Decided is when the verdict was decided (a shared store drops a
	// verdict decided before a purge that selects it).
	Decided time.Time
	// Grants hold in Repo; none is GrantSourced (see Sources).
	Grants []Grant
	// rare is what few verdicts carry (see Until and Sources); nil for the
	// rest. A pointer keeps a cached verdict in the allocator's 256-byte
	// class: a million of them are cached.
	rare *storedRare
}

type storedRare struct {
	until   time.Time
	sources []verify.Repository
}

func (s *Stored) rarePart() *storedRare {
	if s.rare == nil {
		s.rare = &storedRare{}
	}
	return s.rare
}

// Until, when not zero, is when an allow stops holding whatever the
// freshness: an attestation's maxAge it rests on, or that of the index or
// subject it was allowed through. Fresh and Expires never pass it.
func (s *Stored) Until() time.Time {
	if s.rare == nil {
		return time.Time{}
	}
	return s.rare.until
}

// SetUntil sets Until (a zero t clears it).
func (s *Stored) SetUntil(t time.Time) {
	if t.IsZero() && s.rare == nil {
		return
	}
	s.rarePart().until = t
}

// Sources are the signaturesFrom repositories of an allowed image's
// policies: the verdict grants its own Digest there with GrantSourced, so
// that the signature material kept there is served about it.
func (s *Stored) Sources() []verify.Repository {
	if s.rare == nil {
		return nil
	}
	return s.rare.sources
}

// AddSource adds r to Sources (once).
func (s *Stored) AddSource(r verify.Repository) {
	if !slices.Contains(s.Sources(), r) {
		s.rarePart().sources = append(s.rarePart().sources, r)
	}
}

// EachGrant calls fn with every grant of s and the repository it holds in:
// Grants in Repo, then GrantSourced of Digest in each of Sources.
func (s *Stored) EachGrant(fn func(repo verify.Repository, g Grant)) {
	for _, g := range s.Grants {
		fn(s.Repo, g)
	}
	for _, r := range s.Sources() {
		fn(r, Grant{Kind: GrantSourced, Digest: s.Digest})
	}
}

// HasGrant reports whether s grants d with kind in repo.
func (s *Stored) HasGrant(repo verify.Repository, d v1.Hash, kind GrantKind) bool {
	if kind == GrantSourced {
		return d == s.Digest && slices.Contains(s.Sources(), repo)
	}
	return repo == s.Repo && slices.ContainsFunc(s.Grants, func(g Grant) bool { return g.Digest == d && g.Kind == kind })
}

// cost is the verdict plus its grants.
func (s *Stored) cost() int { return 1 + len(s.Grants) + len(s.Sources()) }

// VerdictStore keeps verdicts with their grants. A grant is found through
// the verdicts that made it and is gone when they are. Implementations are
// bounded; a store failure is an error, and the gate fails closed on it.
type VerdictStore interface {
	// Get returns the verdict stored under key, or nil.
	Get(ctx context.Context, key string, now time.Time) (*Stored, error)
	// Put stores v (replacing any verdict under v.Key); now is the gate's
	// clock, for dropping expired verdicts on the way.
	Put(ctx context.Context, v *Stored, now time.Time) error
	// Granting lists the live verdicts of repo that grant d with kind.
	Granting(ctx context.Context, repo verify.Repository, d v1.Hash, kind GrantKind, now time.Time) ([]*Stored, error)
	// Purge drops every verdict p selects, with its grants, and says how
	// many it dropped.
	Purge(ctx context.Context, p PurgeSpec) (int, error)
}

// MemoryStore is the in-process VerdictStore: a least-recently-used list
// bounded by cost (one per verdict plus one per grant), with an index from
// granted digest to the verdicts granting it. Eviction and expiry drop a
// verdict and its grants together, so no grant outlives its verdict and
// the index never holds more than the list does.
//
// It is not ristretto: ristretto's admission policy may drop a Set, and a
// dropped verdict would take with it the grants of a manifest just served,
// refusing its layers.
type MemoryStore struct {
	mu      sync.Mutex
	maxCost int
	cost    int
	lru     *list.List // of *Stored, most recent first
	byKey   map[string]*list.Element
	index   map[grantKey][]*list.Element
}

type grantKey struct {
	repo verify.Repository
	d    v1.Hash
	kind GrantKind
}

var _ VerdictStore = (*MemoryStore)(nil)

// NewMemoryStore returns a MemoryStore holding at most maxCost verdicts
// and grants.
func NewMemoryStore(maxCost int) *MemoryStore {
	return &MemoryStore{maxCost: max(maxCost, 1), lru: list.New(),
		byKey: map[string]*list.Element{}, index: map[grantKey][]*list.Element{}}
}

// Get implements VerdictStore.
func (m *MemoryStore) Get(_ context.Context, key string, now time.Time) (*Stored, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byKey[key]
	if !ok {
		return nil, nil
	}
	s := el.Value.(*Stored)
	if !now.Before(s.Expires) {
		m.remove(el)
		return nil, nil
	}
	m.lru.MoveToFront(el)
	return s, nil
}

// Put implements VerdictStore.
func (m *MemoryStore) Put(_ context.Context, v *Stored, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.byKey[v.Key]; ok {
		m.remove(el)
	}
	if v.cost() > m.maxCost {
		return nil // larger than the whole store: decided every time
	}
	el := m.lru.PushFront(v)
	m.byKey[v.Key] = el
	m.cost += v.cost()
	v.EachGrant(func(repo verify.Repository, g Grant) {
		k := grantKey{repo, g.Digest, g.Kind}
		m.index[k] = append(m.index[k], el)
	})
	for m.cost > m.maxCost {
		m.remove(m.lru.Back())
	}
	m.sweep(now)
	return nil
}

// sweepPerPut is how many of the least recently used verdicts each Put
// looks at for expiry: expired verdicts (and their grants) are dropped as
// the store is written, not only when the store is full.
const sweepPerPut = 2

func (m *MemoryStore) sweep(now time.Time) {
	for range sweepPerPut {
		el := m.lru.Back()
		if el == nil || now.Before(el.Value.(*Stored).Expires) {
			return
		}
		m.remove(el)
	}
}

// Granting implements VerdictStore.
func (m *MemoryStore) Granting(_ context.Context, repo verify.Repository, d v1.Hash, kind GrantKind, now time.Time) ([]*Stored, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	els := m.index[grantKey{repo, d, kind}]
	out := make([]*Stored, 0, len(els))
	for _, el := range els {
		if s := el.Value.(*Stored); now.Before(s.Expires) {
			out = append(out, s)
		}
	}
	return out, nil
}

// Purge implements VerdictStore.
func (m *MemoryStore) Purge(_ context.Context, p PurgeSpec) (int, error) {
	drop := p.Matcher()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for el := m.lru.Front(); el != nil; {
		next := el.Next()
		if drop(el.Value.(*Stored)) {
			m.remove(el)
			n++
		}
		el = next
	}
	return n, nil
}

// Len is the number of verdicts held, and Cost their cost with grants.
func (m *MemoryStore) Len() (verdicts, cost int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len(), m.cost
}

func (m *MemoryStore) remove(el *list.Element) {
	s := el.Value.(*Stored)
	m.lru.Remove(el)
	delete(m.byKey, s.Key)
	m.cost -= s.cost()
	s.EachGrant(func(repo verify.Repository, g Grant) {
		k := grantKey{repo, g.Digest, g.Kind}
		els := m.index[k]
		for i, e := range els {
			if e == el {
				els = append(els[:i], els[i+1:]...)
				break
			}
		}
		if len(els) == 0 {
			delete(m.index, k)
		} else {
			m.index[k] = els
		}
	})
}
