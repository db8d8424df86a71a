package gate

import (
	"context"
	"fmt"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
)

// maxPurgeMemo bounds the repositories whose match a purge remembers.
const maxPurgeMemo = 100_000

// PurgeSpec says which stored verdicts a purge drops: those of the images
// Image matches (every image when nil), denials only when DeniesOnly.
type PurgeSpec struct {
	Image      *policy.ImagePattern
	DeniesOnly bool
}

// Matcher returns the test of one stored verdict against p. It remembers
// one match per repository, not per verdict (a store walks its verdicts
// under its lock), and is not safe for concurrent use.
func (p PurgeSpec) Matcher() func(*Stored) bool {
	matched := map[verify.Repository]bool{}
	return func(s *Stored) bool {
		if p.DeniesOnly && s.Judgement.Decision != Deny {
			return false
		}
		if p.Image == nil {
			return true
		}
		m, ok := matched[s.Repo]
		if !ok {
			m = p.Image.Match(s.Repo.String())
			if len(matched) < maxPurgeMemo {
				matched[s.Repo] = m
			}
		}
		return m
	}
}

// Purge drops the stored verdicts of the images pattern matches (every
// image when pattern is nil), with the grants they made: the next request
// for one is decided again. A pull in progress of a purged image fails its
// next blob and succeeds when retried (its manifest is decided again).
// Denials only (deniesOnly) is what SIGHUP does: a signature pushed after
// a refusal is seen at once. A store shared by replicas purges on every
// replica.
//
// A verdict being decided while Purge runs is answered but not stored.
func (g *Gate) Purge(ctx context.Context, pattern *policy.ImagePattern, deniesOnly bool) (int, error) {
	g.purges.Add(1)
	n, err := g.store.Purge(ctx, PurgeSpec{Image: pattern, DeniesOnly: deniesOnly})
	if err != nil {
		return n, fmt.Errorf("verdict store: purging: %w", err)
	}
	return n, nil
}

// purgeCount is how many purges this gate has seen: its own, and those a
// shared store ran for other replicas.
func (g *Gate) purgeCount() uint64 {
	n := g.purges.Load()
	if c, ok := g.store.(PurgeCounter); ok {
		n += c.Purges()
	}
	return n
}
