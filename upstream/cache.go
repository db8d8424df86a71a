package upstream

import (
	"strings"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
)

// tagCache remembers tag -> digest resolutions for tagTTL, keyed by registry,
// repository, tag and the client's Accept set (the same tag can resolve to
// an index for one client and to a manifest for another). An entry is kept
// staleIfError longer than its TTL, to be used only when the upstream cannot
// be asked.
type tagCache struct {
	c          *ristretto.Cache[string, tagEntry]
	ttl, stale time.Duration
}

type tagEntry struct {
	digest v1.Hash
	fresh  time.Time // used without asking the upstream until then
}

const maxCachedTags = 100_000

func newTagCache(ttl, stale time.Duration) (*tagCache, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, tagEntry]{
		NumCounters: 10 * maxCachedTags,
		MaxCost:     maxCachedTags,
		BufferItems: 64,
		// Costs count entries, not bytes.
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, err
	}
	return &tagCache{c: c, ttl: ttl, stale: stale}, nil
}

func tagKey(repo oci.Repository, tag, accept string) string {
	return repo.Registry + "/" + repo.Name + ":" + tag + "|" + accept
}

// get returns the cached digest, whether it is still fresh, whether it may
// still stand in while the upstream is down (staleIfError), and whether the
// tag is known at all.
func (t *tagCache) get(key string, now time.Time) (d v1.Hash, fresh, usableStale, ok bool) {
	e, ok := t.c.Get(key)
	if !ok {
		return v1.Hash{}, false, false, false
	}
	return e.digest, now.Before(e.fresh), now.Before(e.fresh.Add(t.stale)), true
}

// set records a resolution. It is kept past its TTL, for staleIfError and
// so that the next resolution of a tag seen before can be a cheap HEAD.
func (t *tagCache) set(key string, d v1.Hash, now time.Time) {
	keep := t.ttl + max(t.stale, seenTagMemory)
	t.c.SetWithTTL(key, tagEntry{digest: d, fresh: now.Add(t.ttl)}, 1, keep)
}

// seenTagMemory is how long a tag's last resolution is remembered, at
// least, after its TTL.
const seenTagMemory = 10 * time.Minute

// manifestCache keeps recently served manifests by registry/repo@digest,
// bounded by their total size. Digests are immutable, so there is no TTL;
// the key includes the repository so that a manifest is only served from a
// repository the upstream served it from.
type manifestCache struct {
	c *ristretto.Cache[string, *oci.Manifest]
}

func newManifestCache(maxBytes int64) (*manifestCache, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, *oci.Manifest]{
		NumCounters: max(maxBytes/100, 1000), // ~10x the entries of 1 KiB manifests
		MaxCost:     maxBytes,
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return &manifestCache{c: c}, nil
}

func manifestKey(repo oci.Repository, d v1.Hash) string {
	return repo.Registry + "/" + repo.Name + "@" + d.Algorithm + ":" + d.Hex
}

func (m *manifestCache) get(key string) (*oci.Manifest, bool) { return m.c.Get(key) }

func (m *manifestCache) set(key string, e *oci.Manifest) {
	m.c.Set(key, e, int64(len(e.Bytes)+len(key)+64))
}

// acceptKey turns a client's Accept header into a cache-key part. It is
// the header as sent, not a parsed set: clients send the same header every
// time, and two spellings of one set only cost a second cache entry.
func acceptKey(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values, ",")
}
