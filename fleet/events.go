package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/policy"
)

// event is a message on the replicas' channel: a purge to run, or a
// policy revision one replica put in force (the others look at their own
// policy file at once). Sealed like every value.
type event struct {
	Kind       string `json:"kind"` // "purge" or "reload"
	From       string `json:"from"` // the replica that sent it
	Image      string `json:"image,omitempty"`
	DeniesOnly bool   `json:"deniesOnly,omitempty"`
	Revision   string `json:"revision,omitempty"`
	Sent       int64  `json:"sent"` // unix ms: an old message replayed is ignored
}

// maxEventAge is how old a message may be when it arrives.
const maxEventAge = time.Minute

func (s *Store) channel() string { return s.prefix + "events" }

func (s *Store) publish(ctx context.Context, e event) {
	e.From, e.Sent = s.id, time.Now().UnixMilli()
	b, _ := json.Marshal(e)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
	defer cancel()
	if err := s.rdb.Publish(ctx, s.channel(), s.seal.Seal(s.channel(), b)).Err(); err != nil {
		s.failed(opPublish, err)
	}
}

// OnReload sets what runs when another replica announces a new policy
// revision (serve: look at the policy file now).
func (s *Store) OnReload(fn func(revision string)) {
	s.mu.Lock()
	s.onReload = fn
	s.mu.Unlock()
}

// AnnounceReload tells the other replicas that revision is in force here.
func (s *Store) AnnounceReload(ctx context.Context, revision string) {
	s.publish(ctx, event{Kind: "reload", Revision: revision})
}

// Run receives the other replicas' messages and checks that Redis
// answers, until ctx ends. It reconnects by itself.
func (s *Store) Run(ctx context.Context) {
	if s.decisions != nil {
		go s.decisions.run(ctx)
	}
	sub := s.rdb.Subscribe(ctx, s.channel())
	defer sub.Close()
	msgs := sub.Channel()
	ping := time.NewTicker(time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			s.receive(ctx, m)
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, Timeout)
			if err := s.rdb.Ping(pctx).Err(); err != nil {
				s.failed(opPing, err)
			} else {
				s.ok()
			}
			cancel()
		}
	}
}

func (s *Store) receive(ctx context.Context, m *redis.Message) {
	payload, err := s.seal.Open(s.channel(), []byte(m.Payload))
	var e event
	if err != nil {
		s.m.rejected.WithLabelValues(rejectSeal).Inc()
		return
	}
	if json.Unmarshal(payload, &e) != nil {
		s.m.rejected.WithLabelValues(rejectDecode).Inc()
		return
	}
	if age := time.Since(time.UnixMilli(e.Sent)); age > maxEventAge || age < -maxEventAge {
		s.m.rejected.WithLabelValues(rejectExpired).Inc()
		return
	}
	if e.From == s.id {
		return
	}
	switch e.Kind {
	case "purge":
		spec := gate.PurgeSpec{DeniesOnly: e.DeniesOnly}
		if e.Image != "" {
			p, err := policy.ParseImagePattern(e.Image)
			if err != nil {
				s.m.rejected.WithLabelValues(rejectDecode).Inc()
				return
			}
			spec.Image = &p
		}
		s.purges.Add(1)
		n, _ := s.l1.Purge(ctx, spec)
		s.log.Info("purge from another replica", zap.String("image", e.Image), zap.Bool("deniesOnly", e.DeniesOnly), zap.Int("verdicts", n))
	case "reload":
		s.mu.Lock()
		fn := s.onReload
		s.mu.Unlock()
		if fn != nil {
			fn(e.Revision)
		}
	}
}

// scanBatch is how many keys one SCAN step of a purge reads.
const scanBatch = 500

// purgeTimeout bounds a purge's walk of Redis.
const purgeTimeout = 10 * time.Second

// Purge implements gate.VerdictStore: it drops what p selects from L1 and
// from Redis, and has every other replica drop it from its own L1. It
// returns how many verdicts it dropped from Redis (L1's count while Redis
// cannot answer).
func (s *Store) Purge(ctx context.Context, p gate.PurgeSpec) (int, error) {
	local, err := s.l1.Purge(ctx, p)
	if err != nil {
		return local, err
	}
	image := ""
	if p.Image != nil {
		image = p.Image.String()
	}
	s.publish(ctx, event{Kind: "purge", Image: image, DeniesOnly: p.DeniesOnly})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), purgeTimeout)
	defer cancel()
	match := p.Matcher()
	now := time.Now()
	dropped := 0
	iter := s.rdb.Scan(ctx, 0, s.prefix+"v/*", scanBatch).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		vals, err := s.rdb.MGet(ctx, batch...).Result()
		if err != nil {
			return err
		}
		var drop []string
		for i, val := range vals {
			str, ok := val.(string)
			if !ok {
				continue
			}
			// A value that does not open is dropped too: it is no one's
			// verdict.
			if v := s.open(batch[i], "", []byte(str), now); v == nil || match(v) {
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
				s.failed(opPurge, err)
				return local, nil
			}
		}
	}
	if err := errors.Join(iter.Err(), flush()); err != nil {
		s.failed(opPurge, err)
		return local, nil
	}
	s.ok()
	return dropped, nil
}
