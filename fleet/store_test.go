package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/portcullis-dev/portcullis/fleet/redistest"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/verify"
)

var testKey = []byte(strings.Repeat("k", 32))

// replica is one Store on the shared server, with its own L1.
func replica(t *testing.T, srv *redistest.Server, key []byte) *Store {
	t.Helper()
	c := NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	s, err := New(Options{Client: c, L1: gate.NewMemoryStore(1000), Key: key, Prefix: "test/", DecisionEntries: 100,
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func digest(s string) v1.Hash {
	h, _ := oci.Digest("sha256", []byte(s))
	return h
}

var repo = verify.Repository{Registry: "r.example", Name: "acme/app"}

// allow is an allow verdict on image under rev granting layer.
func allow(rev, image, layer string, now time.Time, ttl time.Duration) *gate.Stored {
	d := digest(image)
	return &gate.Stored{Key: gate.ImageKey(rev, repo, d), Repo: repo, Digest: d, Reference: "v1",
		Judgement: &gate.Judgement{Decision: gate.Allow, Cause: gate.CausePolicy, Revision: rev, Identity: "release-key"},
		Fresh:     now.Add(ttl), Expires: now.Add(2 * ttl), Decided: now,
		Grants: []gate.Grant{{Kind: gate.GrantBlob, Digest: digest(layer)}}}
}

// TestSharedVerdicts: what one replica stores the other finds, verdict
// and grant, with Redis's TTL no longer than the verdict's life; once
// learned it is in the other's L1 (served with Redis gone).
func TestSharedVerdicts(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, testKey), replica(t, srv, testKey)
	ctx, now := context.Background(), time.Now()
	v := allow("rev1", "img", "layer", now, time.Minute)
	if err := a.Put(ctx, v, now); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, v.Key, now)
	if err != nil || got == nil || got.Judgement.Decision != gate.Allow || got.Judgement.Identity != "release-key" || !got.Expires.Equal(v.Expires) {
		t.Fatalf("the other replica got %+v %v", got, err)
	}
	if ttl := a.rdb.PTTL(ctx, a.verdictKey(v.Key)).Val(); ttl <= 0 || ttl > 2*time.Minute {
		t.Errorf("redis TTL %v, want at most the verdict's life (2m)", ttl)
	}
	c := replica(t, srv, testKey)
	ps, err := c.Granting(ctx, repo, digest("layer"), gate.GrantBlob, now)
	if err != nil || len(ps) != 1 || ps[0].Key != v.Key {
		t.Fatalf("a third replica's grants of the layer: %v %v", ps, err)
	}
	if ps, _ := c.Granting(ctx, repo, digest("layer"), gate.GrantChild, now); len(ps) != 0 {
		t.Error("a blob grant counted as a child grant")
	}
	if ps, _ := c.Granting(ctx, verify.Repository{Registry: "r.example", Name: "other"}, digest("layer"), gate.GrantBlob, now); len(ps) != 0 {
		t.Error("a grant reached another repository")
	}
	if got, _ := b.Get(ctx, gate.ImageKey("rev2", repo, v.Digest), now); got != nil {
		t.Error("a verdict of another revision was found")
	}
	srv.Stop()
	if got, _ := b.Get(ctx, v.Key, now); got == nil {
		t.Error("a verdict learned from Redis is not in L1")
	}
	if got, _ := b.Get(ctx, v.Key, now.Add(3*time.Minute)); got != nil {
		t.Error("L1 kept a verdict learned from Redis past its expiry")
	}
}

// TestSharedRareParts: a verdict's Until (an attestation's maxAge) and
// its Sources (signaturesFrom repositories, granted GrantSourced of the
// verdict's own digest) reach another replica, and a sourced grant holds
// only in its source repository and only for that digest.
func TestSharedRareParts(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, testKey), replica(t, srv, testKey)
	ctx, now := context.Background(), time.Now()
	v := allow("rev1", "img", "layer", now, time.Minute)
	until := now.Add(90 * time.Second).Round(time.Millisecond)
	v.SetUntil(until)
	src := verify.Repository{Registry: "r.example", Name: "signatures/app"}
	v.AddSource(src)
	v.AddSource(src)
	if len(v.Sources()) != 1 {
		t.Fatalf("sources %v, want one", v.Sources())
	}
	if err := a.Put(ctx, v, now); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, v.Key, now)
	if err != nil || got == nil || !got.Until().Equal(until) || len(got.Sources()) != 1 || got.Sources()[0] != src {
		t.Fatalf("the other replica got %+v (until %v, sources %v) %v", got, got.Until(), got.Sources(), err)
	}
	c := replica(t, srv, testKey)
	if ps, err := c.Granting(ctx, src, v.Digest, gate.GrantSourced, now); err != nil || len(ps) != 1 || ps[0].Key != v.Key {
		t.Errorf("a third replica's sourced grants in %s: %v %v", src, ps, err)
	}
	for _, tc := range []struct {
		repo verify.Repository
		d    v1.Hash
	}{{repo, v.Digest}, {src, digest("other")}} {
		if ps, _ := c.Granting(ctx, tc.repo, tc.d, gate.GrantSourced, now); len(ps) != 0 {
			t.Errorf("a sourced grant held in %s for %s", tc.repo, tc.d)
		}
	}
}

// TestUntrustedValues: whatever else is written in Redis is ignored and
// counted: garbage, a value sealed with another key, a verdict copied
// under another key (another image, another revision), an expired one
// replayed.
func TestUntrustedValues(t *testing.T) {
	srv := redistest.Start(t)
	a := replica(t, srv, testKey)
	b := replica(t, srv, testKey)
	evil := replica(t, srv, []byte(strings.Repeat("e", 32)))
	ctx, now := context.Background(), time.Now()
	good := allow("rev1", "good", "good-layer", now, time.Minute)
	if err := a.Put(ctx, good, now); err != nil {
		t.Fatal(err)
	}
	sealed := a.rdb.Get(ctx, a.verdictKey(good.Key)).Val()
	refused := gate.ImageKey("rev1", repo, digest("refused"))
	otherRev := gate.ImageKey("rev2", repo, good.Digest)
	cases := []struct {
		name, key, reason string
		write             func(rkey string)
	}{
		{"garbage", refused, rejectSeal, func(rkey string) { a.rdb.Set(ctx, rkey, "allow", time.Minute) }},
		{"another key's seal", refused, rejectSeal, func(string) { _ = evil.Put(ctx, allow("rev1", "refused", "x", now, time.Minute), now) }},
		{"copied to another image", refused, rejectSeal, func(rkey string) { a.rdb.Set(ctx, rkey, sealed, time.Minute) }},
		{"copied to another revision", otherRev, rejectSeal, func(rkey string) { a.rdb.Set(ctx, rkey, sealed, time.Minute) }},
		{"larger than any replica writes", refused, rejectSize, func(rkey string) {
			a.rdb.Set(ctx, rkey, strings.Repeat("x", maxValue+1), time.Minute)
		}},
		{"resealed for another image", refused, rejectKey, func(rkey string) {
			payload, _ := a.seal.Open(a.verdictKey(good.Key), []byte(sealed))
			a.rdb.Set(ctx, rkey, a.seal.Seal(rkey, payload), time.Minute) // only a key holder could do this
		}},
	}
	for _, tc := range cases {
		rkey := a.verdictKey(tc.key)
		tc.write(rkey)
		before := testutil.ToFloat64(b.m.rejected.WithLabelValues(tc.reason))
		if got, _ := b.Get(ctx, tc.key, now); got != nil {
			t.Errorf("%s: trusted: %+v", tc.name, got.Judgement)
		}
		if testutil.ToFloat64(b.m.rejected.WithLabelValues(tc.reason)) != before+1 {
			t.Errorf("%s: not counted as %s", tc.name, tc.reason)
		}
		a.rdb.Del(ctx, rkey)
	}
	// A grant index entry pointing at a verdict that does not grant the
	// digest grants nothing.
	a.rdb.ZAdd(ctx, a.grantKey(gate.GrantIndexKey(repo, digest("refused-layer"), gate.GrantBlob)), redis.Z{Score: 1e15, Member: hashed(good.Key)})
	if ps, _ := b.Granting(ctx, repo, digest("refused-layer"), gate.GrantBlob, now); len(ps) != 0 {
		t.Errorf("a forged index entry granted a layer: %v", ps)
	}
	// An oversized value among a grant's verdicts is read no further than
	// maxValue, counted, and grants nothing; a good one beside it still
	// does.
	huge := hashed(gate.ImageKey("rev1", repo, digest("huge")))
	a.rdb.Set(ctx, a.prefix+"v/"+huge, strings.Repeat("x", 4*maxValue), time.Minute)
	layerIndex := a.grantKey(gate.GrantIndexKey(repo, digest("good-layer"), gate.GrantBlob))
	a.rdb.ZAdd(ctx, layerIndex, redis.Z{Score: 1e15, Member: huge})
	before := testutil.ToFloat64(b.m.rejected.WithLabelValues(rejectSize))
	fresh := replica(t, srv, testKey)
	if ps, err := fresh.Granting(ctx, repo, digest("good-layer"), gate.GrantBlob, now); err != nil || len(ps) != 1 || ps[0].Key != good.Key {
		t.Errorf("a grant beside an oversized value: %v %v", ps, err)
	}
	if testutil.ToFloat64(fresh.m.rejected.WithLabelValues(rejectSize)) != 1 {
		t.Errorf("the oversized value among a grant's verdicts is not counted (%v before on another replica)", before)
	}
	// A lease holding an oversized value is forged: not waited for.
	lkey := gate.ImageKey("rev1", repo, digest("leased"))
	a.rdb.Set(ctx, a.leaseKey(lkey), strings.Repeat("x", 2*maxValue), time.Minute)
	if held, _, err := b.Lease(ctx, lkey, time.Minute); held || !errors.Is(err, errForgedLease) {
		t.Errorf("an oversized lease: held %v, err %v; want errForgedLease", held, err)
	}
	// A verdict replayed after its expiry.
	if got, _ := replica(t, srv, testKey).Get(ctx, good.Key, now.Add(3*time.Minute)); got != nil {
		t.Error("an expired verdict was trusted")
	}
}

// TestLease: one holder at a time; a waiter gets the holder's verdict;
// a lease released without a verdict, or whose holder died, ends the
// wait, and another replica takes it.
func TestLease(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, testKey), replica(t, srv, testKey)
	ctx, now := context.Background(), time.Now()
	v := allow("rev1", "leased", "l", now, time.Minute)
	held, release, err := a.Lease(ctx, v.Key, 300*time.Millisecond)
	if err != nil || !held {
		t.Fatalf("first lease: %v %v", held, err)
	}
	if held, _, _ := b.Lease(ctx, v.Key, time.Second); held {
		t.Fatal("two holders")
	}
	go func() {
		time.Sleep(600 * time.Millisecond) // past the TTL: renewed meanwhile
		_ = a.Put(ctx, v, time.Now())
		release()
	}()
	got, err := b.Await(ctx, v.Key, nil, time.Now().Add(5*time.Second))
	if err != nil || got == nil || got.Key != v.Key {
		t.Fatalf("await: %v %v", got, err)
	}
	// A holder that died: its lease expires and the wait ends.
	dead := gate.ImageKey("rev1", repo, digest("dead"))
	a.rdb.Set(ctx, a.leaseKey(dead), a.seal.Seal(a.leaseKey(dead), []byte("a dead replica's token")), 200*time.Millisecond)
	start := time.Now()
	if got, err := b.Await(ctx, dead, nil, time.Now().Add(5*time.Second)); got != nil || err != nil {
		t.Fatalf("await of a dead holder: %v %v", got, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the wait for a dead holder took %v", d)
	}
	if held, release, _ := b.Lease(ctx, dead, time.Second); !held {
		t.Error("the expired lease could not be taken")
	} else {
		release()
	}
	// A lease no replica sealed: no one waits for it.
	forged := gate.ImageKey("rev1", repo, digest("forged"))
	a.rdb.Set(ctx, a.leaseKey(forged), "someone", time.Hour)
	if held, _, err := b.Lease(ctx, forged, time.Second); held || !errors.Is(err, errForgedLease) {
		t.Errorf("a forged lease: held %v, %v; want errForgedLease", held, err)
	}
	start = time.Now()
	if _, err := b.Await(ctx, forged, nil, time.Now().Add(5*time.Second)); !errors.Is(err, errForgedLease) || time.Since(start) > time.Second {
		t.Errorf("awaiting a forged lease: %v after %v", err, time.Since(start))
	}
	// A waiter is not handed back the verdict it is deciding again.
	old := allow("rev1", "again", "l", now, time.Minute)
	_ = a.Put(ctx, old, now)
	held, release, _ = a.Lease(ctx, old.Key, time.Second)
	if !held {
		t.Fatal("lease")
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		nv := allow("rev1", "again", "l", time.Now(), time.Minute)
		nv.Decided = time.Now()
		_ = a.Put(ctx, nv, time.Now())
		release()
	}()
	if got, err := b.Await(ctx, old.Key, old, time.Now().Add(5*time.Second)); err != nil || got == nil || got.Decided.Equal(old.Decided) {
		t.Errorf("await with the old verdict stored: %+v %v, want the new one", got, err)
	}
}

// TestRedisDown: with Redis stopped, every operation returns within its
// budget, as a miss, the replica keeps what it decides in L1 and says it
// is degraded; once Redis is back, it is not.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	a := replica(t, srv, testKey)
	ctx, now := context.Background(), time.Now()
	srv.Stop()
	v := allow("rev1", "down", "l", now, time.Minute)
	start := time.Now()
	if err := a.Put(ctx, v, now); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Get(ctx, gate.ImageKey("rev1", repo, digest("other")), now); got != nil || err != nil {
		t.Fatalf("get with Redis down: %v %v", got, err)
	}
	if _, _, err := a.Lease(ctx, v.Key, time.Second); err == nil {
		t.Error("a lease with Redis down")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("three operations with Redis down took %v", d)
	}
	if got, _ := a.Get(ctx, v.Key, now); got == nil {
		t.Error("a verdict decided while Redis was down is lost")
	}
	if ps, err := a.Granting(ctx, repo, digest("l"), gate.GrantBlob, now); err != nil || len(ps) != 1 {
		t.Errorf("a grant this replica holds, with Redis down: %v %v", ps, err)
	}
	if _, err := a.Granting(ctx, repo, digest("unknown"), gate.GrantBlob, now); !errors.Is(err, gate.ErrSharedUnavailable) {
		t.Errorf("a grant only Redis could know of, with Redis down: %v, want ErrSharedUnavailable (no decision)", err)
	}
	if d := a.Degraded(); !strings.HasPrefix(d, "redis unavailable") {
		t.Errorf("degraded %q", d)
	}
	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for a.Degraded() != "" && time.Now().Before(deadline) {
		a.Get(ctx, v.Key+"x", now)
		time.Sleep(50 * time.Millisecond)
	}
	if d := a.Degraded(); d != "" {
		t.Errorf("still degraded after Redis came back: %q", d)
	}
}

// TestPurgeAndEvents: a purge on one replica empties the others' L1 and
// Redis of what it selects; a reload is announced to the others; the
// decision log is every replica's.
func TestPurgeAndEvents(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, testKey), replica(t, srv, testKey)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloads := make(chan string, 1)
	b.OnReload(func(rev string) { reloads <- rev })
	go a.Run(ctx)
	go b.Run(ctx)
	time.Sleep(200 * time.Millisecond) // both subscribed
	now := time.Now()
	keep := allow("rev1", "keep", "k", now, time.Minute)
	keep.Repo = verify.Repository{Registry: "r.example", Name: "other/app"}
	keep.Key = gate.ImageKey("rev1", keep.Repo, keep.Digest)
	drop := allow("rev1", "drop", "d", now, time.Minute)
	for _, v := range []*gate.Stored{keep, drop} {
		_ = a.Put(ctx, v, now)
		if got, _ := b.Get(ctx, v.Key, now); got == nil {
			t.Fatal("not shared")
		}
	}
	pat, err := policyPattern("r.example/acme/**")
	if err != nil {
		t.Fatal(err)
	}
	n, err := a.Purge(ctx, gate.PurgeSpec{Image: pat})
	if err != nil || n != 1 {
		t.Fatalf("purged %d %v, want 1", n, err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for b.Purges() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := b.l1.Get(ctx, drop.Key, now); got != nil {
		t.Error("the other replica's L1 kept a purged verdict")
	}
	if got, _ := b.Get(ctx, keep.Key, now); got == nil {
		t.Error("a verdict the pattern does not match was purged")
	}
	a.AnnounceReload(ctx, "rev2")
	select {
	case rev := <-reloads:
		if rev != "rev2" {
			t.Errorf("reload of %q", rev)
		}
	case <-time.After(3 * time.Second):
		t.Error("the reload was not announced")
	}
	a.Decisions().Share(gate.Record{Time: now, Image: "r.example/acme/app", Result: gate.ResultDeny, Message: "from a"})
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := b.Decisions().Records(ctx)
		if err == nil && len(recs) == 1 && recs[0].Message == "from a" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("a decision of one replica is not in the other's log")
}

// TestPurgeHolds: after a purge, no replica takes the purged verdict from
// Redis again: not one that missed the message (it reads the purge list),
// not a sealed copy saved before the purge and written back after it, and
// not a verdict decided before the purge by a replica that had not heard
// of it. A verdict decided after it is taken. A purge that cannot reach
// Redis says so.
func TestPurgeHolds(t *testing.T) {
	srv := redistest.Start(t)
	a, b := replica(t, srv, testKey), replica(t, srv, testKey)
	ctx := context.Background()
	now := time.Now()
	v := allow("rev1", "revoked", "l", now.Add(-time.Second), time.Minute)
	_ = a.Put(ctx, v, now)
	saved := a.rdb.Get(ctx, a.verdictKey(v.Key)).Val()
	if _, err := a.Purge(ctx, gate.PurgeSpec{}); err != nil {
		t.Fatal(err)
	}
	a.rdb.Set(ctx, a.verdictKey(v.Key), saved, time.Minute) // replayed
	late := replica(t, srv, testKey)                        // never got the message
	late.catchUp(ctx)
	for name, r := range map[string]*Store{"the purging replica": a, "another": b, "a late one": late} {
		r.catchUp(ctx) // what Run does every second (no Run here: no message is heard)
		if got, _ := r.Get(ctx, v.Key, now); got != nil {
			t.Errorf("%s took a purged verdict back from Redis", name)
		}
	}
	if testutil.ToFloat64(late.m.rejected.WithLabelValues(rejectPurged)) != 1 {
		t.Error("the replayed verdict was not counted as purged")
	}
	// In flight on a replica that had not heard of the purge: decided
	// before it, stored after it.
	inflight := allow("rev1", "inflight", "l", now.Add(-time.Second), time.Minute)
	_ = late.Put(ctx, inflight, now)
	if got, _ := b.Get(ctx, inflight.Key, now); got != nil {
		t.Error("a verdict decided before the purge was taken")
	}
	after := allow("rev1", "revoked", "l", time.Now().Add(3*time.Second), time.Minute)
	_ = b.Put(ctx, after, time.Now())
	if got, _ := replica(t, srv, testKey).Get(ctx, after.Key, time.Now()); got == nil {
		t.Error("a verdict decided after the purge was refused")
	}
	srv.Stop()
	if _, err := a.Purge(ctx, gate.PurgeSpec{}); !errors.Is(err, errNotShared) {
		t.Errorf("a purge with Redis down: %v, want errNotShared", err)
	}
}

// TestRedisSlow: a Redis that accepts connections and never answers (a
// hung server, a black-holed network) costs each request-path operation
// its budget (50 ms by default, or Options.Timeout), not less and not much
// more, and the replica says it is alone.
func TestRedisSlow(t *testing.T) {
	for _, budget := range []time.Duration{0, 150 * time.Millisecond} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) { testRedisSlow(t, budget) })
	}
}

func testRedisSlow(t *testing.T, budget time.Duration) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never read, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	c := NewClient(&redis.Options{Addr: ln.Addr().String()})
	t.Cleanup(func() { c.Close() })
	s, err := New(Options{Client: c, L1: gate.NewMemoryStore(100), Key: testKey, Prefix: "test/", Timeout: budget, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if budget == 0 {
		budget = DefaultTimeout
	}
	ctx, now := context.Background(), time.Now()
	v := allow("rev1", "slow", "l", now, time.Minute)
	for name, op := range map[string]func(){
		"get":   func() { _, _ = s.Get(ctx, gate.ImageKey("rev1", repo, digest("x")), now) },
		"put":   func() { _ = s.Put(ctx, v, now) },
		"grant": func() { _, _ = s.Granting(ctx, repo, digest("y"), gate.GrantBlob, now) },
		"lease": func() { _, _, _ = s.Lease(ctx, v.Key+"z", time.Second) },
		"tag":   func() { _, _, _ = s.GetTag(ctx, "r/x:latest|") },
	} {
		start := time.Now()
		op()
		if d := time.Since(start); d < budget || d > 4*budget {
			t.Errorf("%s against a Redis that never answers took %v, want about %v", name, d, budget)
		}
	}
	if !strings.HasPrefix(s.Degraded(), "redis unavailable") {
		t.Errorf("degraded %q", s.Degraded())
	}
}
