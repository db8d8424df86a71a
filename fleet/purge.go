package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/policy"
)

// A purge must hold on every replica, against a verdict read back from
// Redis by a replica that had not heard of it yet, a decision that was in
// flight on another replica, and a sealed verdict saved before the purge
// and written back after it. So a purge is a record (what it selects, and
// when), kept in a list in Redis and in each replica's purgeLog: a verdict
// decided before a purge that selects it is refused whenever it is read
// from Redis, whoever wrote it.

// purgeRecord is one purge.
type purgeRecord struct {
	Nonce      string `json:"nonce"`
	Image      string `json:"image,omitempty"` // "" for every image
	DeniesOnly bool   `json:"deniesOnly,omitempty"`
	At         int64  `json:"at"` // unix ms

	image *policy.ImagePattern // Image parsed
}

// maxPurges bounds the purges remembered (in Redis and in each replica).
const maxPurges = 256

// purgeMargin covers the clocks of replicas disagreeing: a verdict decided
// up to this long after a purge (by another replica's clock) is refused
// too, and simply decided again.
const purgeMargin = 2 * time.Second

func (r *purgeRecord) parse() error {
	if r.Image == "" {
		return nil
	}
	p, err := policy.ParseImagePattern(r.Image)
	if err != nil {
		return err
	}
	r.image = &p
	return nil
}

func (r *purgeRecord) spec() gate.PurgeSpec {
	return gate.PurgeSpec{Image: r.image, DeniesOnly: r.DeniesOnly}
}

// selects reports whether the purge drops v.
func (r *purgeRecord) selects(v *gate.Stored) bool {
	if !v.Decided.Before(time.UnixMilli(r.At).Add(purgeMargin)) {
		return false
	}
	if r.DeniesOnly && v.Judgement.Decision != gate.Deny {
		return false
	}
	return r.image == nil || r.image.Match(v.Repo.String())
}

// purgeLog is the purges a replica knows of, the newest maxPurges.
type purgeLog struct {
	mu   sync.RWMutex
	recs []*purgeRecord
	have map[string]bool // by nonce
}

// add records r, and reports whether it is new.
func (l *purgeLog) add(r *purgeRecord) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.have == nil {
		l.have = map[string]bool{}
	}
	if l.have[r.Nonce] {
		return false
	}
	if len(l.recs) == maxPurges {
		delete(l.have, l.recs[0].Nonce)
		l.recs = l.recs[1:]
	}
	l.recs = append(l.recs, r)
	l.have[r.Nonce] = true
	return true
}

// purged reports whether a known purge drops v.
func (l *purgeLog) purged(v *gate.Stored) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, r := range l.recs {
		if r.selects(v) {
			return true
		}
	}
	return false
}

func (s *Store) purgesKey() string { return s.prefix + "purges" }

// learnPurge runs a purge another replica made, once.
func (s *Store) learnPurge(ctx context.Context, r purgeRecord) {
	if r.parse() != nil || r.Nonce == "" {
		s.m.rejected.WithLabelValues(rejectDecode).Inc()
		return
	}
	if !s.plog.add(&r) {
		return
	}
	s.purges.Add(1)
	n, _ := s.l1.Purge(ctx, r.spec())
	s.log.Info("purge from another replica", zap.String("image", r.Image), zap.Bool("deniesOnly", r.DeniesOnly), zap.Int("verdicts", n))
}

// catchUp reads the purge list (a purge whose message this replica
// missed), and tells whether Redis answers.
func (s *Store) catchUp(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	vals, err := s.rdb.LRange(ctx, s.purgesKey(), 0, maxPurges-1).Result()
	if err != nil {
		s.failed(opPing, err)
		return
	}
	s.ok()
	for i := len(vals) - 1; i >= 0; i-- { // oldest first
		payload, err := s.seal.Open(s.purgesKey(), []byte(vals[i]))
		var r purgeRecord
		if err != nil || json.Unmarshal(payload, &r) != nil {
			s.m.rejected.WithLabelValues(rejectSeal).Inc()
			continue
		}
		s.learnPurge(ctx, r)
	}
}

// errNotShared says a purge ran on this replica but may not reach the
// others (Redis did not answer).
var errNotShared = errors.New("purged on this replica; Redis did not answer, so other replicas may keep these verdicts until they expire")

// scanBatch is how many keys one SCAN step of a purge reads.
const scanBatch = 500

// purgeTimeout bounds a purge's walk of Redis.
const purgeTimeout = 10 * time.Second

// Purge implements gate.VerdictStore: it records the purge (from now on
// no replica takes a verdict it selects from Redis), tells the other
// replicas, drops what it selects from Redis and from L1, and returns how
// many verdicts it dropped (from Redis, or from L1 when Redis cannot
// answer, with an error saying the purge may not have reached the others).
func (s *Store) Purge(ctx context.Context, p gate.PurgeSpec) (int, error) {
	r := &purgeRecord{Nonce: newNonce(), DeniesOnly: p.DeniesOnly, At: time.Now().UnixMilli(), image: p.Image}
	if p.Image != nil {
		r.Image = p.Image.String()
	}
	s.plog.add(r)
	local, err := s.l1.Purge(ctx, p)
	if err != nil {
		return local, err
	}
	b, _ := json.Marshal(r)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), purgeTimeout)
	defer cancel()
	_, err = s.rdb.Pipelined(wctx, func(pl redisPipeliner) error {
		pl.LPush(wctx, s.purgesKey(), s.seal.Seal(s.purgesKey(), b))
		pl.LTrim(wctx, s.purgesKey(), 0, maxPurges-1)
		pl.Publish(wctx, s.channel(), s.message(event{Kind: "purge", Purge: r}))
		return nil
	})
	if err != nil {
		s.failed(opPurge, err)
		return local, fmt.Errorf("%w: %v", errNotShared, err)
	}
	dropped, err := s.dropMatching(wctx, p)
	if err != nil {
		s.failed(opPurge, err)
		return local, fmt.Errorf("%w: %v", errNotShared, err)
	}
	s.ok()
	return dropped, nil
}

// dropMatching deletes from Redis the verdicts p selects (and values that
// do not open: they are no one's verdicts).
func (s *Store) dropMatching(ctx context.Context, p gate.PurgeSpec) (int, error) {
	match := p.Matcher()
	now := time.Now()
	dropped := 0
	iter := s.rdb.Scan(ctx, 0, s.prefix+"v/*", scanBatch).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		vals, err := s.getValues(ctx, batch)
		if err != nil {
			return err
		}
		var drop []string
		for i, val := range vals {
			if val == nil {
				continue
			}
			if v := s.decode(batch[i], "", val, now); v == nil || match(v) {
				drop = append(drop, batch[i])
			}
		}
		if len(drop) > 0 {
			n, err := s.rdb.Del(ctx, drop...).Result()
			if err != nil {
				return err
			}
			dropped += int(n)
		}
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == scanBatch {
			if err := flush(); err != nil {
				return dropped, err
			}
		}
	}
	return dropped, errors.Join(iter.Err(), flush())
}
