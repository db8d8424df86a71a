package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// event is a message on the replicas' channel: a purge to run, or a
// policy revision one replica put in force (the others look at their own
// policy file at once). Sealed like every value, and numbered (Nonce) so
// that a message replayed is ignored.
type event struct {
	Kind     string       `json:"kind"` // "purge" or "reload"
	From     string       `json:"from"` // the replica that sent it
	Nonce    string       `json:"nonce"`
	Sent     int64        `json:"sent"` // unix ms: an old message replayed is ignored
	Purge    *purgeRecord `json:"purge,omitempty"`
	Revision string       `json:"revision,omitempty"`
}

// maxEventAge is how old a message may be when it arrives.
const maxEventAge = time.Minute

// maxSeen bounds the nonces remembered (those of the last maxEventAge).
const maxSeen = 4096

// seenNonces remembers the nonces of recent messages.
type seenNonces struct {
	mu    sync.Mutex
	at    map[string]time.Time
	order []string
}

// first reports whether nonce is new, and remembers it.
func (n *seenNonces) first(nonce string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.at == nil {
		n.at = map[string]time.Time{}
	}
	if _, ok := n.at[nonce]; ok {
		return false
	}
	for len(n.order) > 0 && (len(n.order) >= maxSeen || now.Sub(n.at[n.order[0]]) > 2*maxEventAge) {
		delete(n.at, n.order[0])
		n.order = n.order[1:]
	}
	n.at[nonce] = now
	n.order = append(n.order, nonce)
	return true
}

func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Store) channel() string { return s.prefix + "events" }

// message is e sealed for the channel.
func (s *Store) message(e event) []byte {
	e.From, e.Nonce, e.Sent = s.id, newNonce(), time.Now().UnixMilli()
	b, _ := json.Marshal(e)
	return s.seal.Seal(s.channel(), b)
}

func (s *Store) publish(ctx context.Context, e event) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := s.rdb.Publish(ctx, s.channel(), s.message(e)).Err(); err != nil {
		s.failed(opPublish, err)
		return err
	}
	return nil
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
	_ = s.publish(ctx, event{Kind: "reload", Revision: revision})
}

// Run receives the other replicas' messages, reads the purge list every
// second (so that a purge sent while this replica was not listening is
// run all the same), and checks that Redis answers, until ctx ends. It
// reconnects by itself.
func (s *Store) Run(ctx context.Context) {
	if s.decisions != nil {
		go s.decisions.run(ctx)
	}
	sub := s.rdb.Subscribe(ctx, s.channel())
	defer sub.Close()
	msgs := sub.Channel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	s.catchUp(ctx) // the purges made before this replica started
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			s.receive(ctx, m)
		case <-tick.C:
			s.catchUp(ctx)
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
	now := time.Now()
	if age := now.Sub(time.UnixMilli(e.Sent)); age > maxEventAge || age < -maxEventAge || !s.seen.first(e.Nonce, now) {
		s.m.rejected.WithLabelValues(rejectExpired).Inc()
		return
	}
	if e.From == s.id {
		return
	}
	switch e.Kind {
	case "purge":
		if e.Purge != nil {
			s.learnPurge(ctx, *e.Purge)
		}
	case "reload":
		s.mu.Lock()
		fn := s.onReload
		s.mu.Unlock()
		if fn != nil {
			fn(e.Revision)
		}
	}
}
