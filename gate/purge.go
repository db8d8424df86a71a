package gate

import (
	"context"
	"fmt"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
)

// maxPurgeMemo bounds the repositories whose match a purge remembers.
const maxPurgeMemo = 100_000

// Purge drops the stored verdicts of the images pattern matches (every
// image when pattern is nil), with the grants they made: the next request
// for one is decided again. A pull in progress of a purged image fails its
// next blob and succeeds when retried (its manifest is decided again).
// Denials only (deniesOnly) is what SIGHUP does: a signature pushed after
// a refusal is seen at once.
//
// A verdict being decided while Purge runs is answered but not stored.
func (g *Gate) Purge(ctx context.Context, pattern *policy.ImagePattern, deniesOnly bool) (int, error) {
	g.purges.Add(1)
	matched := map[verify.Repository]bool{} // one match per repository, not per verdict: the walk holds the store's lock
	n, err := g.store.Purge(ctx, func(s *Stored) bool {
		if deniesOnly && s.Judgement.Decision != Deny {
			return false
		}
		if pattern == nil {
			return true
		}
		m, ok := matched[s.Repo]
		if !ok {
			m = pattern.Match(s.Repo.String())
			if len(matched) < maxPurgeMemo {
				matched[s.Repo] = m
			}
		}
		return m
	})
	if err != nil {
		return n, fmt.Errorf("verdict store: purging: %w", err)
	}
	return n, nil
}
