// Command bench runs Portcullis side by side with the alternatives it is
// measured against, on one machine in one run, and reports the figures.
//
//	go run ./test/bench [flags]
//
// It starts a CNCF distribution registry as the upstream and, in front of
// it, a distribution registry in proxy mode, a plain httputil.ReverseProxy
// (./test/bench/revproxy) and Portcullis, each in its own process, fills the
// upstream, and measures every target (the upstream itself included):
// warm manifest GETs by tag and by digest, and a full GET of one large blob.
// Every process it starts listens on 127.0.0.1 only and is stopped on exit.
//
// make bench-smoke runs it with -smoke (tiny sizes, short runs: CI checks
// that every target serves, asserting no timing); make bench runs it in
// full. Pass -json FILE and -md FILE (BENCH_FLAGS with make) to keep the
// figures.
//
// Measurements are organised in phases (see phases below); each phase gets
// freshly started servers, so a process's peak RSS belongs to one phase. A
// new figure is a new phase, or a new metric added by an existing one; the
// report pivots whatever metrics the phases return.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// config is the harness's settings, from flags.
type config struct {
	registryBin string
	rounds      int
	concurrency int
	warmup      time.Duration
	duration    time.Duration
	blobSize    int64
	blobRuns    int
	smoke       bool
	keep        bool
	seed        uint64
	jsonPath    string
	mdPath      string
}

// phase is one group of measurements, run against a fresh fleet of servers.
type phase struct {
	name string
	run  func(ctx context.Context, b *bench, f *fleet) ([]Metric, error)
}

// phases run in order. Add new measurements here.
var phases = []phase{
	{name: "manifest", run: runManifestPhase},
	{name: "blob", run: runBlobPhase},
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: FAIL:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	var blobSize string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.registryBin, "registry", "", "distribution `registry` binary (default .tools/bin/registry, then $PATH)")
	fs.IntVar(&cfg.rounds, "rounds", 3, "load runs per target and case; the median is reported")
	fs.IntVar(&cfg.concurrency, "concurrency", 16, "keep-alive connections (one worker each) of the manifest load")
	fs.DurationVar(&cfg.warmup, "warmup", 500*time.Millisecond, "untimed load before each timed manifest run")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "length of each timed manifest run")
	fs.StringVar(&blobSize, "blob-size", "1GiB", "size of the large blob (bytes, or with KiB/MiB/GiB)")
	fs.IntVar(&cfg.blobRuns, "blob-runs", 3, "timed full GETs of the blob per target; the median is reported")
	fs.BoolVar(&cfg.smoke, "smoke", false, "tiny sizes and short runs (CI): checks every target serves, asserts no timing")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (logs, configs) after a successful run")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the blob's pseudo-random content")
	fs.StringVar(&cfg.jsonPath, "json", "", "write all figures as JSON to `FILE`")
	fs.StringVar(&cfg.mdPath, "md", "", "write all figures as Markdown tables to `FILE`")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.smoke {
		applySmoke(&cfg, &blobSize, set)
	}
	n, err := parseSize(blobSize)
	if err != nil {
		return cfg, fmt.Errorf("-blob-size: %w", err)
	}
	cfg.blobSize = n
	return cfg, validate(cfg)
}

// applySmoke shrinks every setting the user did not give explicitly.
func applySmoke(cfg *config, blobSize *string, set map[string]bool) {
	if !set["rounds"] {
		cfg.rounds = 1
	}
	if !set["warmup"] {
		cfg.warmup = 200 * time.Millisecond
	}
	if !set["duration"] {
		cfg.duration = time.Second
	}
	if !set["blob-size"] {
		*blobSize = "16MiB"
	}
	if !set["blob-runs"] {
		cfg.blobRuns = 1
	}
}

func validate(cfg config) error {
	switch {
	case cfg.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case cfg.concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	case cfg.duration <= 0 || cfg.warmup < 0:
		return errors.New("-duration must be positive and -warmup not negative")
	case cfg.blobSize < 1:
		return errors.New("-blob-size must be positive")
	case cfg.blobRuns < 1:
		return errors.New("-blob-runs must be at least 1")
	}
	return nil
}

// run is the whole benchmark: set up, fill the upstream, run the phases,
// report. Every process started is stopped before it returns.
func run(ctx context.Context, cfg config) (err error) {
	b, err := newBench(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { b.close(err == nil) }()

	rep := newReport(cfg, b)
	if err := b.fill(ctx); err != nil {
		return fmt.Errorf("fill the upstream: %w", err)
	}
	rep.Fixtures = b.fix
	for _, ph := range phases {
		ms, err := b.runPhase(ctx, ph)
		if err != nil {
			return fmt.Errorf("phase %s: %w", ph.name, err)
		}
		rep.add(ms...)
	}
	rep.finish()
	return rep.write(os.Stdout, cfg)
}

// runPhase starts a fresh fleet, runs ph against it, adds each process's
// peak RSS for the phase, and stops the fleet.
func (b *bench) runPhase(ctx context.Context, ph phase) ([]Metric, error) {
	logf("phase %s: starting servers", ph.name)
	f, err := b.startFleet(ctx, ph.name)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	ms, err := ph.run(ctx, b, f)
	if err != nil {
		return nil, err
	}
	rss, err := f.peakRSS(ph.name)
	if err != nil {
		return nil, err
	}
	return append(ms, rss...), nil
}

// logf reports progress on stderr, keeping stdout for the results.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
