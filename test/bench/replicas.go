package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	pfleet "github.com/portcullis-dev/portcullis/fleet"
	"github.com/portcullis-dev/portcullis/fleet/redistest"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/upstream"
	"github.com/portcullis-dev/portcullis/verify"
)

// replicasFleet is the upstream alone: the replicas phase runs its gates
// in process, over real upstream clients, with a real redis-server.
var replicasFleet = fleetSpec{}

// Targets of the replicas phase.
const (
	targetAlone = "3 replicas, each alone"
	targetRedis = "3 replicas + redis"
)

// Cases of the replicas phase.
const (
	replicasCold  = "cold digest on all 3 replicas"
	replicasWarm  = "warm by digest (L1 hit)"
	replicasRedis = "found in redis, not in L1"
)

// countingReader counts signature discoveries (one referrers request
// each).
type countingReader struct {
	verify.Reader
	discoveries atomic.Int64
}

func (c *countingReader) Referrers(ctx context.Context, repo verify.Repository, d v1.Hash) (*v1.IndexManifest, error) {
	c.discoveries.Add(1)
	return c.Reader.Referrers(ctx, repo, d)
}

// runReplicasPhase measures what sharing through Redis buys three
// replicas, side by side with three replicas alone: the signature
// discoveries upstream per cold digest requested on all three at once;
// the latency of a warm request (an L1 hit) with Redis configured and
// without; and the latency of a decision a fresh replica finds in Redis
// (not in L1). The gates are the production gate (gate.New) with the
// production fleet store, in process, over upstream clients of the real
// upstream; no HTTP in front (the proxy in front is the same either way).
func runReplicasPhase(ctx context.Context, b *bench, _ *fleet) ([]Metric, error) {
	n := b.cfg.replicaImages
	missing := func(why string) []Metric {
		var ms []Metric
		for _, c := range []struct{ cs, name, target, unit string }{
			{replicasCold, "discoveries_per_digest", targetRedis, "count"},
			{replicasWarm, "ns_per_op", targetRedis, "ns"},
			{replicasRedis, "p50", targetRedis, "µs"},
		} {
			ms = append(ms, Metric{Phase: "replicas", Case: c.cs, Target: c.target, Name: c.name, Unit: c.unit, Missing: why})
		}
		return ms
	}
	srv, err := redistest.Launch(filepath.Join(b.dir, "redis"))
	if err != nil {
		logf("phase replicas: %v", err)
		return missing("not measured: " + err.Error()), nil
	}
	defer srv.Stop()
	logf("phase replicas: pushing and signing %d images", n)
	imgs, err := b.signer.pushSignedSet(ctx, "replicas", "r", n)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	pol, err := policyfile.Load(filepath.Join(b.dir, "policy.yaml"))
	if err != nil {
		return nil, err
	}
	var fleetRegs []*prometheus.Registry // the shared replicas' fleet metrics
	newReplica := func(shared bool) (*gate.Gate, *countingReader, error) {
		up, err := upstream.New([]upstream.Config{{Registry: benchRegistry, Endpoint: &url.URL{Scheme: "http", Host: b.upAddr}}})
		if err != nil {
			return nil, nil, err
		}
		snap, err := gate.NewSnapshot(pol, nil)
		if err != nil {
			return nil, nil, err
		}
		r := &countingReader{Reader: up}
		opts := []gate.Option{gate.WithRegisterer(prometheus.NewRegistry())}
		if shared {
			reg := prometheus.NewRegistry()
			fleetRegs = append(fleetRegs, reg)
			st, err := pfleet.New(pfleet.Options{Client: pfleet.NewClient(&redis.Options{Addr: srv.Addr}), L1: gate.NewMemoryStore(1_000_000),
				Key: key, Prefix: "bench/", Registerer: reg})
			if err != nil {
				return nil, nil, err
			}
			opts = append(opts, gate.WithVerdictStore(st))
		}
		g, err := gate.New(r, snap, opts...)
		return g, r, err
	}
	type fetched struct {
		repo verify.Repository
		m    *verify.Manifest
	}
	up, err := upstream.New([]upstream.Config{{Registry: benchRegistry, Endpoint: &url.URL{Scheme: "http", Host: b.upAddr}}})
	if err != nil {
		return nil, err
	}
	manifests := make([]fetched, len(imgs))
	for i, im := range imgs {
		repo := verify.Repository{Registry: benchRegistry, Name: im.Repo}
		m, err := up.Manifest(ctx, repo, im.Digest)
		if err != nil {
			return nil, fmt.Errorf("manifest %s@%s: %w", im.Repo, im.Digest, err)
		}
		manifests[i] = fetched{repo, m}
	}
	ask := func(g *gate.Gate, f fetched) error {
		v, err := g.Manifest(ctx, &gate.ManifestRequest{Repo: f.repo, Reference: f.m.Digest.String(), Digest: f.m.Digest, MediaType: f.m.MediaType, Bytes: f.m.Bytes})
		if err != nil {
			return err
		}
		if !v.Allowed() {
			return fmt.Errorf("%s@%s refused: %s", f.repo, f.m.Digest, v.Message())
		}
		return nil
	}
	var ms []Metric
	var gates = map[bool][]*gate.Gate{}
	for _, shared := range []bool{false, true} {
		var readers []*countingReader
		for range 3 {
			g, r, err := newReplica(shared)
			if err != nil {
				return nil, err
			}
			gates[shared] = append(gates[shared], g)
			readers = append(readers, r)
		}
		start := time.Now()
		for _, f := range manifests {
			var wg sync.WaitGroup
			errs := make([]error, 3)
			for i, g := range gates[shared] {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = ask(g, f) }()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return nil, err
				}
			}
		}
		var total int64
		for _, r := range readers {
			total += r.discoveries.Load()
		}
		target := targetAlone
		if shared {
			target = targetRedis
		}
		logf("phase replicas: %s: %d discoveries for %d digests in %.1f s", target, total, n, time.Since(start).Seconds())
		if shared {
			// Why a digest was discovered more than once: a replica decides
			// itself when Redis fails or times out (errors), or when what it
			// reads there is not trusted (rejected).
			logf("phase replicas: %s: redis counters summed over the replicas: %s", target, fleetCounters(fleetRegs))
		}
		ms = append(ms,
			Metric{Phase: "replicas", Case: replicasCold, Target: target, Name: "discoveries", Unit: "count", Value: float64(total)},
			Metric{Phase: "replicas", Case: replicasCold, Target: target, Name: "discoveries_per_digest", Unit: "count", Value: float64(total) / float64(n)})
	}

	// Warm: the same L1 hit with and without Redis, alternated (ABBA),
	// after an untimed pass each and a GC before each timed run.
	probes := 500_000
	rounds := max(b.cfg.rounds, 7)
	if b.cfg.smoke {
		probes, rounds = 2_000, 1
	}
	warm := map[bool][]float64{}
	for round := -1; round < rounds; round++ {
		order := []bool{false, true}
		if round%2 != 0 {
			order = []bool{true, false} // ABBA: neither goes first every time
		}
		for _, shared := range order {
			g := gates[shared][0]
			runtime.GC()
			start := time.Now()
			for i := range probes {
				if err := ask(g, manifests[i%len(manifests)]); err != nil {
					return nil, err
				}
			}
			if round >= 0 {
				warm[shared] = append(warm[shared], float64(time.Since(start).Nanoseconds())/float64(probes))
			}
		}
	}
	for _, shared := range []bool{false, true} {
		target := targetAlone
		if shared {
			target = targetRedis
		}
		ms = append(ms, Metric{Phase: "replicas", Case: replicasWarm, Target: target, Name: "ns_per_op", Unit: "ns",
			Value: median(warm[shared]), Samples: warm[shared]})
	}

	// Found in Redis: a fourth replica, L1 empty, asks for every digest.
	g, r, err := newReplica(true)
	if err != nil {
		return nil, err
	}
	lat := make([]float64, 0, len(manifests))
	for _, f := range manifests {
		start := time.Now()
		if err := ask(g, f); err != nil {
			return nil, err
		}
		lat = append(lat, float64(time.Since(start).Microseconds()))
	}
	ms = append(ms,
		Metric{Phase: "replicas", Case: replicasRedis, Target: targetRedis, Name: "p50", Unit: "µs", Value: percentileOf(lat, 50)},
		Metric{Phase: "replicas", Case: replicasRedis, Target: targetRedis, Name: "p99", Unit: "µs", Value: percentileOf(lat, 99)},
		Metric{Phase: "replicas", Case: replicasRedis, Target: targetRedis, Name: "discoveries", Unit: "count", Value: float64(r.discoveries.Load())})
	return ms, nil
}

// fleetCounters sums the fleet stores' Redis counters (errors by op,
// rejected values by reason, decisions awaited) over regs, for the log.
func fleetCounters(regs []*prometheus.Registry) string {
	sums := map[string]float64{}
	for _, reg := range regs {
		mfs, err := reg.Gather()
		if err != nil {
			return err.Error()
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if m.GetCounter() == nil {
					continue
				}
				name := strings.TrimPrefix(mf.GetName(), "portcullis_redis_")
				for _, l := range m.GetLabel() {
					name += "{" + l.GetValue() + "}"
				}
				sums[name] += m.GetCounter().GetValue()
			}
		}
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(sums)) {
		if sums[k] != 0 {
			out = append(out, fmt.Sprintf("%s=%g", k, sums[k]))
		}
	}
	if len(out) == 0 {
		return "all zero"
	}
	return strings.Join(out, " ")
}
