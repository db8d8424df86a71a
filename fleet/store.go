package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/verify"
)

// DefaultTimeout is the budget of one Redis operation on the request path
// unless Options.Timeout says otherwise; past it the replica goes on alone.
const DefaultTimeout = 50 * time.Millisecond

// maxGrantMembers bounds the verdicts read for one granted digest (a base
// layer may be granted by many images; any one fresh allow is enough).
const maxGrantMembers = 64

// Store is the verdict store replicas share: L1 in front, Redis behind.
// Safe for concurrent use.
type Store struct {
	rdb     *redis.Client
	l1      *gate.MemoryStore
	seal    *Sealer
	prefix  string
	timeout time.Duration // of one Redis operation on the request path
	id      string        // this replica, to skip its own messages
	log     *zap.Logger
	m       *metrics

	judgements gate.JudgementPool // what decoded allows share

	failing atomic.Pointer[string] // the last failure while Redis fails
	purges  atomic.Uint64          // purges run for other replicas
	plog    purgeLog               // the purges this replica knows of
	seen    seenNonces             // the messages received lately

	mu       sync.Mutex
	onReload func(revision string)

	decisions *sharedDecisions
}

var (
	_ gate.VerdictStore = (*Store)(nil)
	_ gate.Leaser       = (*Store)(nil)
	_ gate.PurgeCounter = (*Store)(nil)
)

// Options configure a Store.
type Options struct {
	// Client is the Redis connection (see NewClient).
	Client *redis.Client
	// L1 is the process's own store, in front.
	L1 *gate.MemoryStore
	// Key is the HMAC key every replica shares.
	Key []byte
	// Prefix starts every key and channel name.
	Prefix string
	// DecisionEntries bounds the shared decision log (0: none shared).
	DecisionEntries int64
	// Timeout bounds one Redis operation on the request path (0:
	// DefaultTimeout).
	Timeout    time.Duration
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// New returns the Store of o. Run must run for purges and reloads to
// reach this replica.
func New(o Options) (*Store, error) {
	if len(o.Key) < MinKeyBytes {
		return nil, fmt.Errorf("the HMAC key has %d bytes; at least %d are needed", len(o.Key), MinKeyBytes)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	s := &Store{rdb: o.Client, l1: o.L1, seal: NewSealer(o.Key), prefix: o.Prefix, id: hex.EncodeToString(id),
		timeout: o.Timeout, log: o.Logger, m: newMetrics(o.Registerer)}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.m.up.Set(1)
	if o.DecisionEntries > 0 {
		s.decisions = &sharedDecisions{s: s, entries: o.DecisionEntries, queue: make(chan gate.Record, recordQueue)}
	}
	redis.SetLogger(redisLogger{s.log.Named("redis")})
	return s, nil
}

// MinKeyBytes is the shortest HMAC key New takes.
const MinKeyBytes = 32

// Close closes the connections to Redis.
func (s *Store) Close() error { return s.rdb.Close() }

// redisLogger sends go-redis's own messages (reconnects, pool trouble) to
// zap, at debug: the Store logs and counts failures itself.
type redisLogger struct{ log *zap.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// redisPipeliner is what a pipeline's commands are queued on.
type redisPipeliner = redis.Pipeliner

// NewClient returns a Redis client whose every command is bounded by its
// context (no retries: a slow Redis costs one Options.Timeout, then the replica
// goes on alone), dials included: with TLS, the handshake is bounded by
// the command's context too (go-redis's own TLS dial is not).
func NewClient(opt *redis.Options) *redis.Client {
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1
	opt.DialTimeout = max(opt.DialTimeout, time.Second)
	// The request path bounds each command by its context (Options.Timeout); this
	// is the backstop for the admin's longer reads (the shared decision
	// log, a purge's walk), whose contexts allow seconds.
	opt.ReadTimeout, opt.WriteTimeout = 3*time.Second, 3*time.Second
	if tc := opt.TLSConfig; tc != nil && opt.Dialer == nil {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: opt.DialTimeout}, Config: tc}
		opt.Dialer = d.DialContext
		opt.TLSConfig = nil
	}
	return redis.NewClient(opt)
}

// hashed is the Redis-safe name of a key of any length.
func hashed(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (s *Store) verdictKey(key string) string  { return s.prefix + "v/" + hashed(key) }
func (s *Store) leaseKey(key string) string    { return s.prefix + "l/" + hashed(key) }
func (s *Store) grantKey(gk string) string     { return s.prefix + "g/" + hashed(gk) }
func (s *Store) verdictOfHash(h string) string { return s.prefix + "v/" + h }

// failed counts a Redis failure of op and marks the replica alone.
func (s *Store) failed(op string, err error) {
	s.m.errors.WithLabelValues(op).Inc()
	msg := err.Error()
	if s.failing.Swap(&msg) == nil {
		s.m.up.Set(0)
		s.log.Warn("redis unavailable: this replica goes on alone (its own memory and decisions)", zap.String("op", op), zap.Error(err))
	}
}

// ok marks Redis as answering again.
func (s *Store) ok() {
	if s.failing.Load() != nil && s.failing.Swap(nil) != nil {
		s.m.up.Set(1)
		s.log.Info("redis answers again: verdicts are shared")
	}
}

// Degraded is "" while Redis answers, else why the replica is alone.
func (s *Store) Degraded() string {
	if p := s.failing.Load(); p != nil {
		return "redis unavailable: " + *p
	}
	return ""
}

// Purges implements gate.PurgeCounter.
func (s *Store) Purges() uint64 { return s.purges.Load() }

// open is decode, less the verdicts a known purge drops.
func (s *Store) open(rkey, key string, b []byte, now time.Time) *gate.Stored {
	v := s.decode(rkey, key, b, now)
	if v != nil && s.plog.purged(v) {
		s.m.rejected.WithLabelValues(rejectPurged).Inc()
		return nil
	}
	return v
}

// decode checks and decodes the verdict stored at rkey for key ("" when
// only the hash is known: the decoded key must then hash to rkey's).
func (s *Store) decode(rkey, key string, b []byte, now time.Time) *gate.Stored {
	payload, err := s.seal.Open(rkey, b)
	if err != nil {
		s.m.rejected.WithLabelValues(rejectSeal).Inc()
		return nil
	}
	if key == "" {
		var probe struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(payload, &probe); err != nil || s.verdictKey(probe.Key) != rkey {
			s.m.rejected.WithLabelValues(rejectKey).Inc()
			return nil
		}
		key = probe.Key
	}
	v, err := gate.DecodeStored(payload, key)
	switch {
	case errors.Is(err, gate.ErrWrongKey):
		s.m.rejected.WithLabelValues(rejectKey).Inc()
		return nil
	case err != nil:
		s.m.rejected.WithLabelValues(rejectDecode).Inc()
		return nil
	case !now.Before(v.Expires):
		s.m.rejected.WithLabelValues(rejectExpired).Inc()
		return nil
	}
	v.Judgement = s.judgements.Intern(v.Judgement)
	return v
}

// Get implements gate.VerdictStore: L1, else Redis (what Redis gives is
// kept in L1 until its own expiry).
func (s *Store) Get(ctx context.Context, key string, now time.Time) (*gate.Stored, error) {
	if v, err := s.l1.Get(ctx, key, now); v != nil || err != nil {
		return v, err
	}
	return s.fetch(ctx, key, now, opGet), nil
}

// fetch reads key's verdict from Redis alone, into L1.
func (s *Store) fetch(ctx context.Context, key string, now time.Time, op string) *gate.Stored {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rkey := s.verdictKey(key)
	b, err := s.getValue(ctx, rkey)
	if errors.Is(err, redis.Nil) {
		s.ok()
		return nil
	}
	if err != nil {
		s.failed(op, err)
		return nil
	}
	s.ok()
	v := s.open(rkey, key, b, now)
	if v == nil {
		return nil
	}
	s.m.hits.Inc()
	_ = s.l1.Put(ctx, v, now)
	return v
}

// Put implements gate.VerdictStore: into L1, and published to Redis with
// its grants, for as long as it lives.
func (s *Store) Put(ctx context.Context, v *gate.Stored, now time.Time) error {
	if err := s.l1.Put(ctx, v, now); err != nil {
		return err
	}
	ttl := v.Expires.Sub(now)
	if ttl < time.Millisecond {
		return nil
	}
	b, err := gate.EncodeStored(v)
	if err != nil {
		return fmt.Errorf("encoding verdict: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	rkey := s.verdictKey(v.Key)
	member := hashed(v.Key)
	nowMs, ttlMs := now.UnixMilli(), ttl.Milliseconds()
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, rkey, s.seal.Seal(rkey, b), ttl)
		v.EachGrant(func(repo verify.Repository, gr gate.Grant) {
			gk := s.grantKey(gate.GrantIndexKey(repo, gr.Digest, gr.Kind))
			p.ZAdd(ctx, gk, redis.Z{Score: float64(v.Expires.UnixMilli()), Member: member})
			p.ZRemRangeByScore(ctx, gk, "-inf", strconv.FormatInt(nowMs, 10))
			p.Eval(ctx, extendScript, []string{gk}, ttlMs)
		})
		return nil
	})
	if err != nil {
		s.failed(opPut, err)
		return nil // kept in L1: this replica still serves what it decided
	}
	s.ok()
	return nil
}

// Granting implements gate.VerdictStore: L1's answer when it holds a
// fresh allow, else L1's and Redis's together; gate.ErrSharedUnavailable
// when Redis cannot answer (the gate then makes no decision: 503).
func (s *Store) Granting(ctx context.Context, repo verify.Repository, d v1.Hash, kind gate.GrantKind, now time.Time) ([]*gate.Stored, error) {
	local, err := s.l1.Granting(ctx, repo, d, kind, now)
	if err != nil {
		return nil, err
	}
	for _, v := range local {
		if v.Judgement.Decision == gate.Allow && now.Before(v.Fresh) {
			return local, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	gk := s.grantKey(gate.GrantIndexKey(repo, d, kind))
	// The verdicts that expire last first: the newest decisions, of the
	// revision in force.
	members, err := s.rdb.ZRevRangeByScore(ctx, gk, &redis.ZRangeBy{
		Min: strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf", Count: maxGrantMembers}).Result()
	if err != nil {
		s.failed(opGrants, err)
		return local, fmt.Errorf("%w: %v", gate.ErrSharedUnavailable, err)
	}
	s.ok()
	if len(members) == 0 {
		return local, nil
	}
	rkeys := make([]string, len(members))
	for i, m := range members {
		rkeys[i] = s.verdictOfHash(m)
	}
	vals, err := s.getValues(ctx, rkeys)
	if err != nil {
		s.failed(opGrants, err)
		return local, fmt.Errorf("%w: %v", gate.ErrSharedUnavailable, err)
	}
	seen := make(map[string]bool, len(local))
	for _, v := range local {
		seen[v.Key] = true
	}
	out := local
	var junk []any // members that name no verdict granting d: dropped
	for i, val := range vals {
		if val == nil {
			junk = append(junk, members[i]) // expired or purged since it was listed
			continue
		}
		v := s.open(rkeys[i], "", val, now)
		if v == nil || !grants(v, repo, d, kind) {
			junk = append(junk, members[i])
			continue
		}
		if seen[v.Key] {
			continue
		}
		seen[v.Key] = true
		s.m.hits.Inc()
		_ = s.l1.Put(ctx, v, now)
		out = append(out, v)
	}
	if len(junk) > 0 {
		_ = s.rdb.ZRem(ctx, gk, junk...).Err() // best effort
	}
	return out, nil
}

// extendScript sets a key's TTL to ARGV[1] ms unless it is longer already
// (EXPIRE ... GT without needing Redis 7).
const extendScript = `local t = redis.call("PTTL", KEYS[1])
if t >= 0 and t >= tonumber(ARGV[1]) then return 0 end
return redis.call("PEXPIRE", KEYS[1], ARGV[1])`

// grants reports whether v grants d with kind in repo (an index entry that
// points at a verdict not granting it grants nothing).
func grants(v *gate.Stored, repo verify.Repository, d v1.Hash, kind gate.GrantKind) bool {
	return v.HasGrant(repo, d, kind)
}
