package upstream

import (
	"sync"
	"time"
)

// referrersMemory remembers, per repository, that an upstream answered a
// referrers lookup as a registry without the API does, so the next lookups
// go straight to the fallback tag (a cold verification saves a round
// trip). Only the gate's own lookups teach it (a client's request for a
// repository that does not exist must not switch the API off for
// others); client requests only read it. It is bounded: when full, it
// forgets everything, which costs one extra request per repository.
type referrersMemory struct {
	mu    sync.Mutex
	until map[string]time.Time
}

const (
	// referrersMemoryTTL is how long an absent API is believed.
	referrersMemoryTTL = 5 * time.Minute
	// maxReferrersMemory bounds the repositories remembered.
	maxReferrersMemory = 4096
)

func newReferrersMemory() *referrersMemory {
	return &referrersMemory{until: map[string]time.Time{}}
}

func (m *referrersMemory) absent(repo string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.until[repo]
	return ok && now.Before(u)
}

func (m *referrersMemory) note(repo string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.until) >= maxReferrersMemory {
		clear(m.until)
	}
	m.until[repo] = now.Add(referrersMemoryTTL)
}
