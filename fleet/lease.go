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

// A lease is a Redis key holding its holder's random token, sealed, with
// a TTL of decisionTimeout: the holder renews it while it decides and
// deletes it when done; a holder that dies lets it expire, and another
// replica takes it. Both renewal and release act only while the key still
// holds the holder's token. A lease that does not open was not taken by a
// replica: no one waits for it (the replica decides itself).

// errForgedLease says a decision's lease is held by a value no replica
// sealed.
var (
	renewScript   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

var errForgedLease = errors.New("the decision's lease in Redis was not taken by a replica")

// awaitPoll is how often a waiter looks for the holder's verdict.
const awaitPoll = 20 * time.Millisecond

// Lease implements gate.Leaser.
func (s *Store) Lease(ctx context.Context, key string, ttl time.Duration) (bool, func(), error) {
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	lkey := s.leaseKey(key)
	token := string(s.seal.Seal(lkey, []byte(hex.EncodeToString(tok))))
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	held, err := s.rdb.SetNX(cctx, lkey, token, ttl).Result()
	if err != nil {
		s.failed(opLease, err)
		return false, nil, err
	}
	s.ok()
	if !held {
		cur, err := boundedValue(getBounded(cctx, s.rdb, lkey))
		switch {
		case errors.Is(err, redis.Nil): // released meanwhile: the caller waits once, then tries again
		case errors.Is(err, errOversize):
			s.m.rejected.WithLabelValues(rejectLease).Inc()
			return false, nil, errForgedLease
		case err != nil:
			s.failed(opLease, err)
			return false, nil, err
		case !s.leaseOpens(lkey, cur):
			return false, nil, errForgedLease
		}
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
				rctx, cancel := context.WithTimeout(context.Background(), s.timeout)
				_ = renewScript.Run(rctx, s.rdb, []string{lkey}, token, ttl.Milliseconds()).Err()
				cancel()
			}
		}
	}()
	release := func() {
		close(done)
		<-stopped
		rctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		if err := releaseScript.Run(rctx, s.rdb, []string{lkey}, token).Err(); err != nil && !errors.Is(err, redis.Nil) {
			s.failed(opLease, err) // it expires by itself
		}
	}
	return true, release, nil
}

// leaseOpens reports whether a lease value was sealed by a replica.
func (s *Store) leaseOpens(lkey string, v []byte) bool {
	if _, err := s.seal.Open(lkey, v); err != nil {
		s.m.rejected.WithLabelValues(rejectLease).Inc()
		return false
	}
	return true
}

// Await implements gate.Leaser: it polls for a fresh verdict (not old)
// and the lease together, one round trip each time.
func (s *Store) Await(ctx context.Context, key string, old *gate.Stored, until time.Time) (*gate.Stored, error) {
	rkey, lkey := s.verdictKey(key), s.leaseKey(key)
	for {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		var get, lease *redis.StringCmd
		_, err := s.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
			get = getBounded(cctx, p, rkey)
			lease = getBounded(cctx, p, lkey)
			return nil
		})
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			s.failed(opAwait, err)
			return nil, err
		}
		s.ok()
		now := time.Now()
		if b, err := s.checked(boundedValue(get)); err == nil {
			if v := s.open(rkey, key, b, now); v != nil && now.Before(v.Fresh) && (old == nil || !v.Decided.Equal(old.Decided)) {
				s.m.waited.Inc()
				_ = s.l1.Put(ctx, v, now)
				return v, nil
			}
		}
		lv, lerr := boundedValue(lease)
		if errors.Is(lerr, errOversize) || (lerr == nil && !s.leaseOpens(lkey, lv)) {
			if lerr != nil {
				s.m.rejected.WithLabelValues(rejectLease).Inc()
			}
			return nil, errForgedLease
		}
		if lerr != nil || !now.Before(until) {
			return nil, nil // released (or expired) without a verdict, or waited long enough
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(awaitPoll, time.Until(until))):
		}
	}
}
