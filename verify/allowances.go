package verify

import (
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Allowances remembers what an allowed manifest lets through in its
// repository: the child manifests of an allowed index, and the config and
// layer blobs of an allowed image. An allowance lives as long as the verdict
// that made it and belongs to one policy revision.
//
// It is an interface because a later version shares allowances across
// replicas; MemoryAllowances is the in-process one.
type Allowances interface {
	// Grant records that digests may be served from repo under revision rev
	// until the given time.
	Grant(rev string, repo Repository, digests []v1.Hash, until time.Time)
	// Granted reports whether d may be served from repo under rev now.
	Granted(rev string, repo Repository, d v1.Hash, now time.Time) bool
}

// MemoryAllowances is an in-process Allowances: a map swept of expired
// entries as it grows. It never forgets a live allowance under memory
// pressure (that would refuse the layers of an allowed image); its size is
// bounded by what was pulled within one verdict TTL.
type MemoryAllowances struct {
	mu        sync.Mutex
	until     map[string]time.Time
	nextSweep int
}

var _ Allowances = (*MemoryAllowances)(nil)

// NewMemoryAllowances returns an empty in-process Allowances.
func NewMemoryAllowances() *MemoryAllowances {
	return &MemoryAllowances{until: map[string]time.Time{}, nextSweep: 1024}
}

func allowanceKey(rev string, repo Repository, d v1.Hash) string {
	return rev + "|" + repo.Registry + "/" + repo.Name + "@" + d.Algorithm + ":" + d.Hex
}

// Grant implements Allowances.
func (m *MemoryAllowances) Grant(rev string, repo Repository, digests []v1.Hash, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range digests {
		k := allowanceKey(rev, repo, d)
		if until.After(m.until[k]) {
			m.until[k] = until
		}
	}
	if len(m.until) >= m.nextSweep {
		m.sweep(time.Now())
	}
}

// Granted implements Allowances.
func (m *MemoryAllowances) Granted(rev string, repo Repository, d v1.Hash, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.until[allowanceKey(rev, repo, d)]
	return ok && now.Before(until)
}

// Len is the number of allowances held, live or not yet swept.
func (m *MemoryAllowances) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.until)
}

// sweep drops expired entries and sets the size of the next sweep to twice
// what is left, so sweeping costs O(1) amortised per grant.
func (m *MemoryAllowances) sweep(now time.Time) {
	for k, until := range m.until {
		if !now.Before(until) {
			delete(m.until, k)
		}
	}
	m.nextSweep = max(2*len(m.until), 1024)
}
