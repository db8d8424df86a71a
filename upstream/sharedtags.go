package upstream

import (
	"context"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// SharedTags is where replicas share tag resolutions (package fleet): a
// replica that resolved a tag spares the others the upstream round trip
// for the rest of tagTTL. The digest is then served only under its own
// verdict, as any. Implementations are bounded in time and never fail the
// caller: a miss or a failure is as if nothing was shared.
type SharedTags interface {
	// GetTag returns the resolution stored under key and when it was
	// seen, or false.
	GetTag(ctx context.Context, key string) (d v1.Hash, seen time.Time, ok bool)
	// PutTag stores a resolution seen at seen, for ttl.
	PutTag(ctx context.Context, key string, d v1.Hash, seen time.Time, ttl time.Duration)
}

// WithSharedTags makes the client read tag resolutions from s before
// asking the upstream, and write there what it resolves.
func WithSharedTags(s SharedTags) Option {
	return func(o *options) error { o.sharedTags = s; return nil }
}

// sharedTag is a resolution another replica made within tagTTL, now kept
// in the tag cache until the end of its TTL.
func (c *Client) sharedTag(ctx context.Context, key string) (v1.Hash, bool) {
	if c.sharedTags == nil || c.tags.ttl <= 0 {
		return v1.Hash{}, false
	}
	d, seen, ok := c.sharedTags.GetTag(ctx, key)
	now := time.Now()
	if !ok || seen.After(now.Add(time.Second)) || !now.Before(seen.Add(c.tags.ttl)) {
		return v1.Hash{}, false
	}
	c.tags.set(key, d, seen)
	return d, true
}

// shareTag tells the other replicas of a resolution seen now.
func (c *Client) shareTag(ctx context.Context, key string, d v1.Hash, now time.Time) {
	if c.sharedTags != nil && c.tags.ttl > 0 {
		c.sharedTags.PutTag(ctx, key, d, now, c.tags.ttl)
	}
}
