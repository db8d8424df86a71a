package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/gate"
)

// A lease is a Redis key holding its holder's random token, with a TTL of
// decisionTimeout: the holder renews it while it decides and deletes it
// when done; a holder that dies lets it expire, and another replica takes
// it. Both renewal and release act only while the key still holds the
// holder's token.
var (
	renewScript   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// awaitPoll is how often a waiter looks for the holder's verdict.
const awaitPoll = 20 * time.Millisecond

// Lease implements gate.Leaser.
func (s *Store) Lease(ctx context.Context, key string, ttl time.Duration) (bool, func(), error) {
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	lkey := s.leaseKey(key)
	cctx, cancel := context.WithTimeout(ctx, Timeout)
	held, err := s.rdb.SetNX(cctx, lkey, token, ttl).Result()
	cancel()
	if err != nil {
		s.failed(opLease, err)
		return false, nil, err
	}
	s.ok()
	if !held {
		return false, nil, nil
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { // renew while the decision runs
		defer close(stopped)
		t := time.NewTicker(max(ttl/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				rctx, cancel := context.WithTimeout(context.Background(), Timeout)
				_ = renewScript.Run(rctx, s.rdb, []string{lkey}, token, ttl.Milliseconds()).Err()
				cancel()
			}
		}
	}()
	release := func() {
		close(done)
		<-stopped
		rctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := releaseScript.Run(rctx, s.rdb, []string{lkey}, token).Err(); err != nil && !errors.Is(err, redis.Nil) {
			s.failed(opLease, err) // it expires by itself
		}
	}
	return true, release, nil
}

// Await implements gate.Leaser: it polls for a fresh verdict and the
// lease together, one round trip each time.
func (s *Store) Await(ctx context.Context, key string, until time.Time) (*gate.Stored, error) {
	rkey, lkey := s.verdictKey(key), s.leaseKey(key)
	for {
		cctx, cancel := context.WithTimeout(ctx, Timeout)
		var get *redis.StringCmd
		var exists *redis.IntCmd
		_, err := s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
			get = p.Get(cctx, rkey)
			exists = p.Exists(cctx, lkey)
			return nil
		})
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			s.failed(opAwait, err)
			return nil, err
		}
		s.ok()
		now := time.Now()
		if b, err := get.Bytes(); err == nil {
			if v := s.open(rkey, key, b, now); v != nil && now.Before(v.Fresh) {
				s.m.waited.Inc()
				_ = s.l1.Put(ctx, v, now)
				return v, nil
			}
		}
		if exists.Val() == 0 || !now.Before(until) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(awaitPoll, time.Until(until))):
		}
	}
}
