// Command bench runs Portcullis side by side with the alternatives it is
// measured against, on one machine in one run, and reports the figures.
//
//	go run ./test/bench [flags]
//
// It starts a CNCF distribution registry as the upstream and, in front of
// it, a distribution registry in proxy mode, a plain httputil.ReverseProxy
// (./test/bench/revproxy) and Portcullis (enforcing a key policy: every
// fixture is signed, in-process, with verify/signing), each in its own
// process, fills the upstream, and measures:
//
//   - manifest: warm manifest GETs by tag and by digest through every
//     target (the upstream itself included; Portcullis with a cached verdict);
//   - cold: the first GET of never-seen signed images through Portcullis,
//     by tag and by digest (discovery and verification included), against
//     one manifest GET from the upstream and `cosign verify` of the same
//     references, with the upstream requests each first GET makes;
//   - herd: concurrent first GETs of one fresh digest, counting the
//     signature lookups that reach the upstream;
//   - blob: a full GET of one large blob through every target;
//   - attest-cold: first GETs of images whose policy also requires a SLSA
//     attestation against images with the signature alone;
//   - verify-cost: in process, the CPU cost of verifying one signature,
//     key against keyless (sigstore-go's VirtualSigstore), of a signature
//     with an attestation, and of a CEL condition;
//   - verdict-cache: in process, gate latency and heap per entry with many
//     cached verdicts.
//
// With -baseline REV it also builds Portcullis at git revision REV and
// runs it beside this tree (target portcullis-before) in the manifest,
// cold and blob phases, so that a change is measured against what it
// changed in one run (make bench passes the commit before the house
// redesign; see Makefile).
//
// Every process it starts listens on 127.0.0.1 only and is stopped on exit.
//
// make bench-smoke runs it with -smoke (tiny sizes, short runs, no cosign:
// CI checks that every target serves and verifies, asserting no timing);
// make bench runs it in full and writes docs/benchmarks.md and
// docs/benchmarks.png. Pass -json FILE, -md FILE and -png FILE (BENCH_FLAGS
// with make) to keep the figures elsewhere.
//
// Measurements are organised in phases (see phases below; -phases runs a
// subset); each phase gets freshly started servers, so a process's peak RSS
// belongs to one phase. A new figure is a new phase, or a new metric added
// by an existing one; the report pivots whatever metrics the phases
// return, computes ratioSpecs (report.go) and checks goals (goals.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// config is the harness's settings, from flags.
type config struct {
	registryBin   string
	rounds        int
	concurrency   int
	warmup        time.Duration
	duration      time.Duration
	blobSize      int64
	blobRuns      int
	smoke         bool
	keep          bool
	seed          uint64
	jsonPath      string
	mdPath        string
	pngPath       string
	coldImages    int
	replicaImages int
	cosignBin     string // "" when not measured
	herd          int
	herdTrials    int
	herdBlobSize  int64
	cacheSizes    []int
	cacheProbes   int
	verifyTime    time.Duration
	trace         bool
	baseline      string          // -baseline: a git revision to run beside this one
	only          map[string]bool // -phases; nil runs them all
	args          []string        // the command line, for the report
}

// phase is one group of measurements, run against a fresh fleet of
// servers (none, and a nil fleet, for in-process phases).
type phase struct {
	name  string
	fleet *fleetSpec
	run   func(ctx context.Context, b *bench, f *fleet) ([]Metric, error)
}

// phases run in order. Add new measurements here. The in-process phases
// come last, so their heap does not weigh on the load generator.
var phases = []phase{
	{name: "manifest", fleet: &allTargets, run: runManifestPhase},
	{name: "cold", fleet: &coldFleet, run: runColdPhase},
	{name: "herd", fleet: &herdFleet, run: runHerdPhase},
	{name: "blob", fleet: &blobFleet, run: runBlobPhase},
	{name: "store-herd", fleet: &storeHerdFleet, run: runStoreHerdPhase},
	{name: "replicas", fleet: &replicasFleet, run: runReplicasPhase},
	{name: "attest-cold", fleet: &attestFleet, run: runAttestColdPhase},
	{name: "verify-cost", run: runVerifyCostPhase},
	{name: "verdict-cache", run: runCachePhase},
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
	cfg := config{args: args}
	var blobSize, cacheSizes, only string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.registryBin, "registry", "", "distribution `registry` binary (default .tools/bin/registry, then $PATH)")
	fs.IntVar(&cfg.rounds, "rounds", 3, "load runs per target and case; the median is reported")
	fs.IntVar(&cfg.concurrency, "concurrency", 16, "keep-alive connections (one worker each) of the manifest load")
	fs.DurationVar(&cfg.warmup, "warmup", 500*time.Millisecond, "untimed load before each timed manifest run")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "length of each timed manifest run")
	fs.StringVar(&blobSize, "blob-size", "1GiB", "size of the large blob (bytes, or with KiB/MiB/GiB)")
	var herdBlobSize string
	fs.StringVar(&herdBlobSize, "herd-blob-size", "256MiB", "size of each blob of the store-herd phase")
	fs.IntVar(&cfg.blobRuns, "blob-runs", 3, "timed full GETs of the blob per target; the median is reported")
	fs.BoolVar(&cfg.smoke, "smoke", false, "tiny sizes and short runs (CI): checks every target serves, asserts no timing")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (logs, configs) after a successful run")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the blob's pseudo-random content")
	fs.StringVar(&cfg.jsonPath, "json", "", "write all figures as JSON to `FILE`")
	fs.StringVar(&cfg.mdPath, "md", "", "write the report (figures, goals, headline) as Markdown to `FILE`")
	fs.StringVar(&cfg.pngPath, "png", "", "draw the chart to `FILE` (PNG); the Markdown report links it")
	fs.IntVar(&cfg.coldImages, "cold-images", 400, "fresh signed images of the cold phase (half legacy, half bundle; each half alternately by tag and by digest: 100 a case; one case's p50 still moves up to 20% between runs, so -baseline is also compared over all of them pooled)")
	fs.IntVar(&cfg.replicaImages, "replica-images", 1000, "fresh signed images of the replicas phase, each requested on three replicas at once")
	fs.StringVar(&cfg.cosignBin, "cosign", "", "cosign `binary` the cold phase compares with (default .tools/bin/cosign; \"none\" skips it; -smoke skips it unless given)")
	fs.IntVar(&cfg.herd, "herd", 64, "concurrent first GETs of one fresh digest in the herd phase")
	fs.IntVar(&cfg.herdTrials, "herd-trials", 4, "herd trials, each on a fresh image (alternately legacy and bundle)")
	fs.StringVar(&cacheSizes, "cache-sizes", "10000,100000,1000000", "comma-separated verdict cache fills of the verdict-cache phase")
	fs.IntVar(&cfg.cacheProbes, "cache-probes", 200000, "timed gate lookups per verdict cache fill")
	fs.DurationVar(&cfg.verifyTime, "verify-benchtime", 500*time.Millisecond, "time per verify-cost benchmark (as go test -benchtime)")
	fs.BoolVar(&cfg.trace, "trace", false, "log every upstream request of the herd phase and of the cold phase's counted pass (method, path, duration)")
	fs.StringVar(&cfg.baseline, "baseline", "", "git `revision` of Portcullis to build and run beside this one (target "+targetBaseline+") in the manifest, cold and blob phases, with before/now goals")
	fs.StringVar(&only, "phases", "", "comma-separated phases to run (default all: "+phaseNames()+")")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.smoke {
		applySmoke(&cfg, &blobSize, &cacheSizes, set)
	}
	n, err := parseSize(blobSize)
	if err != nil {
		return cfg, fmt.Errorf("-blob-size: %w", err)
	}
	cfg.blobSize = n
	if cfg.smoke && !set["herd-blob-size"] {
		herdBlobSize = "1MiB"
	}
	if cfg.herdBlobSize, err = parseSize(herdBlobSize); err != nil {
		return cfg, fmt.Errorf("-herd-blob-size: %w", err)
	}
	if cfg.cacheSizes, err = parseCounts(cacheSizes); err != nil {
		return cfg, fmt.Errorf("-cache-sizes: %w", err)
	}
	if only != "" {
		cfg.only = map[string]bool{}
		for _, name := range strings.Split(only, ",") {
			name = strings.TrimSpace(name)
			if !strings.Contains(","+phaseNames()+",", ","+name+",") {
				return cfg, fmt.Errorf("-phases: no phase %q (have %s)", name, phaseNames())
			}
			cfg.only[name] = true
		}
		if !cfg.only["blob"] && !set["blob-size"] {
			cfg.blobSize = mib // no phase reads it: do not push 1 GiB
		}
		if !cfg.only["store-herd"] && !set["herd-blob-size"] {
			cfg.herdBlobSize = mib
		}
	}
	return cfg, validate(cfg)
}

func phaseNames() string {
	var names []string
	for _, ph := range phases {
		names = append(names, ph.name)
	}
	return strings.Join(names, ",")
}

// applySmoke shrinks every setting the user did not give explicitly.
func applySmoke(cfg *config, blobSize, cacheSizes *string, set map[string]bool) {
	if !set["rounds"] {
		cfg.rounds = 1
	}
	if !set["warmup"] {
		cfg.warmup = 100 * time.Millisecond
	}
	if !set["duration"] {
		cfg.duration = 500 * time.Millisecond
	}
	if !set["cold-images"] {
		cfg.coldImages = 5
	}
	if !set["replica-images"] {
		cfg.replicaImages = 10
	}
	if !set["cosign"] {
		cfg.cosignBin = "none"
	}
	if !set["herd-trials"] {
		cfg.herdTrials = 2
	}
	if !set["cache-sizes"] {
		*cacheSizes = "1000,10000"
	}
	if !set["cache-probes"] {
		cfg.cacheProbes = 20000
	}
	if !set["verify-benchtime"] {
		cfg.verifyTime = 20 * time.Millisecond
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
	case cfg.replicaImages < 1:
		return errors.New("-replica-images must be at least 1")
	case cfg.coldImages < 1:
		return errors.New("-cold-images must be at least 1")
	case cfg.herd < 1 || cfg.herdTrials < 1:
		return errors.New("-herd and -herd-trials must be at least 1")
	case len(cfg.cacheSizes) == 0 || cfg.cacheProbes < 1:
		return errors.New("-cache-sizes needs a size and -cache-probes must be at least 1")
	case cfg.verifyTime <= 0:
		return errors.New("-verify-benchtime must be positive")
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
	start := time.Now()
	if err := b.fill(ctx); err != nil {
		return fmt.Errorf("fill the upstream: %w", err)
	}
	logf("fill: done in %.1f s", time.Since(start).Seconds())
	rep.Fixtures = b.fix
	for _, ph := range phases {
		if cfg.only != nil && !cfg.only[ph.name] {
			continue
		}
		start := time.Now()
		ms, err := b.runPhase(ctx, ph)
		if err != nil {
			return fmt.Errorf("phase %s: %w", ph.name, err)
		}
		logf("phase %s: done in %.1f s", ph.name, time.Since(start).Seconds())
		rep.add(ms...)
	}
	rep.finish()
	return rep.write(os.Stdout, cfg)
}

// runPhase starts a fresh fleet, runs ph against it, adds each process's
// peak RSS for the phase, and stops the fleet.
func (b *bench) runPhase(ctx context.Context, ph phase) ([]Metric, error) {
	if ph.fleet == nil {
		logf("phase %s: in process", ph.name)
		return ph.run(ctx, b, nil)
	}
	logf("phase %s: starting servers", ph.name)
	f, err := b.startFleet(ctx, ph.name, *ph.fleet)
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
