package fleet

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// maxValue bounds what a replica reads of one Redis value. A verdict with
// its grants, a tag and a lease are far smaller; a larger value was
// written by something that is not a replica, and is rejected without
// this process ever holding more than maxValue bytes of it (GET would
// read it whole, whatever its size, up to Redis's 512 MB).
const maxValue = 1 << 20

// errOversize says a Redis value is larger than maxValue.
var errOversize = errors.New("a Redis value larger than any a replica writes")

// getBounded reads key's value, or at most maxValue+1 bytes of it.
func getBounded(ctx context.Context, c redis.Cmdable, key string) *redis.StringCmd {
	return c.GetRange(ctx, key, 0, maxValue)
}

// boundedValue is what getBounded read: redis.Nil for a missing key
// (GETRANGE answers "" for one; no replica writes an empty value), and
// errOversize for a value past maxValue.
func boundedValue(cmd *redis.StringCmd) ([]byte, error) {
	b, err := cmd.Bytes()
	switch {
	case err != nil:
		return nil, err
	case len(b) == 0:
		return nil, redis.Nil
	case len(b) > maxValue:
		return nil, errOversize
	}
	return b, nil
}

// getValue reads key's value with getBounded, counting an oversized one
// as rejected (it reads as missing: Redis answered, nothing usable).
func (s *Store) getValue(ctx context.Context, key string) ([]byte, error) {
	return s.checked(boundedValue(getBounded(ctx, s.rdb, key)))
}

// checked counts errOversize as a rejected value and turns it into
// redis.Nil.
func (s *Store) checked(b []byte, err error) ([]byte, error) {
	if errors.Is(err, errOversize) {
		s.m.rejected.WithLabelValues(rejectSize).Inc()
		return nil, redis.Nil
	}
	return b, err
}

// getValues reads the values of keys with getBounded, pipelined (one
// round trip, as MGET): nil where a key is missing or its value rejected.
func (s *Store) getValues(ctx context.Context, keys []string) ([][]byte, error) {
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = getBounded(ctx, p, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, cmd := range cmds {
		b, err := s.checked(boundedValue(cmd))
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}
