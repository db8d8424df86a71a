package verify

import (
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Allowances remembers what an allowed manifest lets through in its
// repository: the child manifests of an allowed index, and the config and
// layer blobs of an allowed image. A grant lives as long as the verdict
// that made it, and names the policy revision and the parent manifest that
// made it: under a newer revision the parent is decided again before the
// grant is used, so a reload neither breaks pulls in flight nor lets a
// revoked image through.
//
// It is an interface because a later version shares allowances across
// replicas; MemoryAllowances is the in-process one.
type Allowances interface {
	// Grant records that parent, allowed under revision rev, lets digests
	// be served from repo until the given time.
	Grant(rev string, repo Repository, parent v1.Hash, digests []v1.Hash, until time.Time)
	// Granted reports whether d may be served from repo under rev now.
	Granted(rev string, repo Repository, d v1.Hash, now time.Time) bool
	// Parents lists the manifests that granted d in repo under any revision
	// and whose grants have not expired.
	Parents(repo Repository, d v1.Hash, now time.Time) []v1.Hash
}

// MemoryAllowances is an in-process Allowances: a map swept of expired
// grants as it grows. It never forgets a live grant under memory pressure
// (that would refuse the layers of an allowed image); its size is bounded
// by what was pulled within one verdict TTL.
type MemoryAllowances struct {
	mu        sync.Mutex
	grants    map[string][]grant
	nextSweep int
}

type grant struct {
	rev    string
	parent v1.Hash
	until  time.Time
}

// maxGrantsPerDigest bounds the grants kept for one digest (a layer shared
// by many images of a repository); the oldest are dropped first.
const maxGrantsPerDigest = 8

var _ Allowances = (*MemoryAllowances)(nil)

// NewMemoryAllowances returns an empty in-process Allowances.
func NewMemoryAllowances() *MemoryAllowances {
	return &MemoryAllowances{grants: map[string][]grant{}, nextSweep: 1024}
}

func allowanceKey(repo Repository, d v1.Hash) string {
	return repo.Registry + "/" + repo.Name + "@" + d.Algorithm + ":" + d.Hex
}

// Grant implements Allowances.
func (m *MemoryAllowances) Grant(rev string, repo Repository, parent v1.Hash, digests []v1.Hash, until time.Time) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range digests {
		k := allowanceKey(repo, d)
		m.grants[k] = addGrant(m.grants[k], grant{rev: rev, parent: parent, until: until}, now)
	}
	if len(m.grants) >= m.nextSweep {
		m.sweep(now)
	}
}

// addGrant adds g to gs, replacing a grant of the same revision and parent
// and dropping expired ones.
func addGrant(gs []grant, g grant, now time.Time) []grant {
	out := gs[:0]
	for _, old := range gs {
		if old.rev == g.rev && old.parent == g.parent {
			if old.until.After(g.until) {
				g.until = old.until
			}
			continue
		}
		if now.Before(old.until) {
			out = append(out, old)
		}
	}
	out = append(out, g)
	if len(out) > maxGrantsPerDigest {
		out = out[len(out)-maxGrantsPerDigest:]
	}
	return out
}

// Granted implements Allowances.
func (m *MemoryAllowances) Granted(rev string, repo Repository, d v1.Hash, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range m.grants[allowanceKey(repo, d)] {
		if g.rev == rev && now.Before(g.until) {
			return true
		}
	}
	return false
}

// Parents implements Allowances.
func (m *MemoryAllowances) Parents(repo Repository, d v1.Hash, now time.Time) []v1.Hash {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []v1.Hash
	for _, g := range m.grants[allowanceKey(repo, d)] {
		if now.Before(g.until) {
			out = append(out, g.parent)
		}
	}
	return out
}

// Len is the number of digests with grants, live or not yet swept.
func (m *MemoryAllowances) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.grants)
}

// sweep drops expired grants and sets the size of the next sweep to twice
// what is left, so sweeping costs O(1) amortised per grant.
func (m *MemoryAllowances) sweep(now time.Time) {
	for k, gs := range m.grants {
		live := gs[:0]
		for _, g := range gs {
			if now.Before(g.until) {
				live = append(live, g)
			}
		}
		if len(live) == 0 {
			delete(m.grants, k)
		} else {
			m.grants[k] = live
		}
	}
	m.nextSweep = max(2*len(m.grants), 1024)
}
