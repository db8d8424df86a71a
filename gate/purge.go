package gate

import (
	"context"
	"fmt"

	"github.com/portcullis-dev/portcullis/policy"
)

// Purge drops the stored verdicts of the images pattern matches (every
// image when pattern is nil), with the grants they made: the next request
// for one is decided again. A pull in progress of a purged image fails its
// next blob and succeeds when retried (its manifest is decided again).
// Denials only (deniesOnly) is what SIGHUP does: a signature pushed after
// a refusal is seen at once.
func (g *Gate) Purge(ctx context.Context, pattern *policy.ImagePattern, deniesOnly bool) (int, error) {
	n, err := g.store.Purge(ctx, func(s *Stored) bool {
		if deniesOnly && s.Judgement.Decision != Deny {
			return false
		}
		return pattern == nil || pattern.Match(s.Repo.String())
	})
	if err != nil {
		return n, fmt.Errorf("verdict store: purging: %w", err)
	}
	return n, nil
}
