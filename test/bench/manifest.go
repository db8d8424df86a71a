package main

import (
	"context"
	"fmt"
	"os"
)

// manifestCase is one kind of manifest request.
type manifestCase struct{ name, ref string }

// manifestSample is the outcome of one timed load run.
type manifestSample struct {
	rps, p50, p99         float64
	cpu, upCPU, clientCPU float64 // CPU seconds per 10k requests
	requests              int
}

// runManifestPhase loads every target with warm manifest GETs, by tag and
// by digest, -rounds times, interleaving targets so background noise
// spreads over all of them, and reports the medians.
func runManifestPhase(ctx context.Context, b *bench, f *fleet) ([]Metric, error) {
	cases := []manifestCase{{"tag", b.fix.Tag}, {"digest", b.fix.ManifestDigest}}
	samples := map[[2]string][]manifestSample{}
	for round := 1; round <= b.cfg.rounds; round++ {
		for _, c := range cases {
			for _, t := range f.targets {
				s, err := measureManifest(ctx, b, f, t, c)
				if err != nil {
					return nil, fmt.Errorf("%s by %s, round %d: %w", t.name, c.name, round, err)
				}
				logf("manifest by %s: %s round %d: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %.2f CPU s/10k",
					c.name, t.name, round, s.rps, s.p50, s.p99, s.cpu)
				k := [2]string{c.name, t.name}
				samples[k] = append(samples[k], s)
			}
		}
	}
	var ms []Metric
	for _, c := range cases {
		for _, t := range f.targets {
			ms = append(ms, manifestMetrics(c.name, t.name, samples[[2]string{c.name, t.name}])...)
		}
	}
	return ms, nil
}

// measureManifest primes and warms one target, then times one load run
// with the CPU time of the target, the upstream and this process around it.
func measureManifest(ctx context.Context, b *bench, f *fleet, t *target, c manifestCase) (manifestSample, error) {
	l := newLoader(loadSpec{
		url:        t.base + "/v2/" + b.fix.Repo + "/manifests/" + c.ref,
		accept:     containerdAccept,
		wantDigest: b.fix.ManifestDigest,
		wantSize:   b.fix.ManifestSize,
	}, b.cfg.concurrency)
	defer l.close()
	if err := l.prime(ctx); err != nil {
		return manifestSample{}, err
	}
	if b.cfg.warmup > 0 {
		if _, err := l.run(ctx, b.cfg.warmup); err != nil {
			return manifestSample{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	m, err := startCPU(t.proc.Pid(), f.upstream.Pid(), os.Getpid())
	if err != nil {
		return manifestSample{}, err
	}
	res, err := l.run(ctx, b.cfg.duration)
	if err != nil {
		return manifestSample{}, err
	}
	cpu, err := m.stop()
	if err != nil {
		return manifestSample{}, err
	}
	per10k := 1e4 / float64(res.requests())
	return manifestSample{
		rps: res.rate(), p50: res.percentile(50), p99: res.percentile(99),
		cpu: cpu[0] * per10k, upCPU: cpu[1] * per10k, clientCPU: cpu[2] * per10k,
		requests: res.requests(),
	}, nil
}

// manifestMetrics turns one target's samples of one case into medians.
func manifestMetrics(caseName, targetName string, ss []manifestSample) []Metric {
	col := func(get func(manifestSample) float64) []float64 {
		out := make([]float64, len(ss))
		for i, s := range ss {
			out[i] = get(s)
		}
		return out
	}
	metric := func(name, unit string, get func(manifestSample) float64) Metric {
		v := col(get)
		return Metric{Phase: "manifest", Case: "by " + caseName, Target: targetName,
			Name: name, Unit: unit, Value: median(v), Samples: v}
	}
	ms := []Metric{
		metric("req_per_s", "req/s", func(s manifestSample) float64 { return s.rps }),
		metric("p50", "ms", func(s manifestSample) float64 { return s.p50 }),
		metric("p99", "ms", func(s manifestSample) float64 { return s.p99 }),
		metric("cpu_per_10k", "CPU s/10k req", func(s manifestSample) float64 { return s.cpu }),
	}
	if targetName != targetUpstream {
		ms = append(ms, metric("upstream_cpu_per_10k", "CPU s/10k req", func(s manifestSample) float64 { return s.upCPU }))
	}
	return append(ms,
		metric("client_cpu_per_10k", "CPU s/10k req", func(s manifestSample) float64 { return s.clientCPU }),
		metric("requests", "req", func(s manifestSample) float64 { return float64(s.requests) }),
	)
}
