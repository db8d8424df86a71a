package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/oci"
)

// tagValue is a tag resolution as replicas share it, sealed: the key
// (registry, repository, tag and Accept set) is in the value, so a value
// copied under another key is refused, and when it was seen, so that a
// value replayed after its tagTTL is refused by the reader.
type tagValue struct {
	Key    string    `json:"key"`
	Digest string    `json:"digest"`
	Seen   time.Time `json:"seen"`
}

func (s *Store) tagKey(key string) string { return s.prefix + "t/" + hashed(key) }

// GetTag is upstream.SharedTags's (fleet does not import upstream).
func (s *Store) GetTag(ctx context.Context, key string) (v1.Hash, time.Time, bool) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rkey := s.tagKey(key)
	b, err := s.getValue(ctx, rkey)
	if errors.Is(err, redis.Nil) {
		s.ok()
		return v1.Hash{}, time.Time{}, false
	}
	if err != nil {
		s.failed(opTag, err)
		return v1.Hash{}, time.Time{}, false
	}
	s.ok()
	payload, err := s.seal.Open(rkey, b)
	if err != nil {
		s.m.rejected.WithLabelValues(rejectSeal).Inc()
		return v1.Hash{}, time.Time{}, false
	}
	var tv tagValue
	if json.Unmarshal(payload, &tv) != nil || tv.Key != key {
		s.m.rejected.WithLabelValues(rejectKey).Inc()
		return v1.Hash{}, time.Time{}, false
	}
	d, err := oci.ParseDigest(tv.Digest)
	if err != nil {
		s.m.rejected.WithLabelValues(rejectDecode).Inc()
		return v1.Hash{}, time.Time{}, false
	}
	return d, tv.Seen, true
}

// PutTag is upstream.SharedTags's.
func (s *Store) PutTag(ctx context.Context, key string, d v1.Hash, seen time.Time, ttl time.Duration) {
	left := time.Until(seen.Add(ttl))
	if left < time.Millisecond {
		return
	}
	b, _ := json.Marshal(tagValue{Key: key, Digest: d.String(), Seen: seen.UTC()})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	rkey := s.tagKey(key)
	if err := s.rdb.Set(ctx, rkey, s.seal.Seal(rkey, b), left).Err(); err != nil {
		s.failed(opTag, err)
		return
	}
	s.ok()
}
