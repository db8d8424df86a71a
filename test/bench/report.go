package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Metric is one figure: a phase's measurement of one target.
type Metric struct {
	Phase   string    `json:"phase"`  // "manifest", "blob", ...
	Case    string    `json:"case"`   // "by tag", "full GET", "process", ...
	Target  string    `json:"target"` // targetUpstream, ...
	Name    string    `json:"name"`   // "req_per_s", "peak_rss", ...
	Unit    string    `json:"unit"`
	Value   float64   `json:"value"`             // the median when there are samples
	Samples []float64 `json:"samples,omitempty"` // one per round
	// Missing, when not empty, says why the figure was not measured
	// ("not measured: cosign missing"); Value is then meaningless.
	Missing string `json:"missing,omitempty"`
	// Note is printed under the figure's table (a profile's top lines).
	Note string `json:"note,omitempty"`
}

// Ratio compares one metric between two targets.
type Ratio struct {
	Name        string  `json:"name"`
	Value       float64 `json:"value"`
	Numerator   float64 `json:"numerator"`
	Denominator float64 `json:"denominator"`
	Unit        string  `json:"unit"`
}

// ratioSpec says which ratio to compute: Metric of Num over Metric of Den.
type ratioSpec struct {
	name, phase, caseName, metric, num, den string
}

// ratioSpecs are the headline comparisons. Add new ones here.
var ratioSpecs = slices.Concat([]ratioSpec{
	{"portcullis/upstream manifest req/s by tag", "manifest", "by tag", "req_per_s", targetPortcullis, targetUpstream},
	{"portcullis/upstream manifest req/s by digest", "manifest", "by digest", "req_per_s", targetPortcullis, targetUpstream},
	{"portcullis/distribution-proxy manifest req/s by tag", "manifest", "by tag", "req_per_s", targetPortcullis, targetDistProxy},
	{"portcullis/distribution-proxy manifest req/s by digest", "manifest", "by digest", "req_per_s", targetPortcullis, targetDistProxy},
	{"portcullis/reverse-proxy manifest CPU per request by tag", "manifest", "by tag", "cpu_per_10k", targetPortcullis, targetRevProxy},
	{"portcullis/distribution-proxy manifest CPU per request by tag", "manifest", "by tag", "cpu_per_10k", targetPortcullis, targetDistProxy},
}, coldRatioSpecs(), []ratioSpec{
	{"portcullis/distribution-proxy blob throughput", "blob", "full GET", "throughput", targetPortcullis, targetDistProxy},
	{"portcullis/reverse-proxy blob throughput", "blob", "full GET", "throughput", targetPortcullis, targetRevProxy},
	{"portcullis/reverse-proxy blob CPU per GiB", "blob", "full GET", "cpu_per_gib", targetPortcullis, targetRevProxy},
	{"portcullis/distribution-proxy blob-phase peak RSS", "blob", "process", "peak_rss", targetPortcullis, targetDistProxy},
	{"portcullis/reverse-proxy blob-phase peak RSS", "blob", "process", "peak_rss", targetPortcullis, targetRevProxy},
	{"replicas: discoveries per cold digest, with redis/alone", "replicas", replicasCold, "discoveries_per_digest", targetRedis, targetAlone},
	{"replicas: warm L1 hit latency, with redis/alone", "replicas", replicasWarm, "ns_per_op", targetRedis, targetAlone},
	{"portcullis-store warm blob/upstream throughput", "blob", "full GET", "throughput", targetPortcullisStore, targetUpstream},
	{"portcullis-store warm blob/distribution-proxy throughput", "blob", "full GET", "throughput", targetPortcullisStore, targetDistProxy},
	{"portcullis-store warm blob/reverse-proxy throughput", "blob", "full GET", "throughput", targetPortcullisStore, targetRevProxy},
	{"portcullis-store cold blob/reverse-proxy throughput (first GET, verified by the client)", "blob", "full GET", "first_get_verified", targetPortcullisStore, targetRevProxy},
	{"keyless+SET/key Check cost, legacy .sig", "verify-cost", verifyCostCase, "check", "keyless, legacy .sig + Rekor SET", "key, legacy .sig"},
	{"keyless+TSA/key Check cost, legacy .sig", "verify-cost", verifyCostCase, "check", "keyless, legacy .sig + TSA", "key, legacy .sig"},
	{"keyless+SET/key Check cost, bundle", "verify-cost", verifyCostCase, "check", "keyless, bundle + Rekor SET+proof", "key, sigstore bundle"},
	{"keyless+TSA/key Check cost, bundle", "verify-cost", verifyCostCase, "check", "keyless, bundle + TSA", "key, sigstore bundle"},
	{"signature+attestation/signature-only first decision (Discover+Check)", "verify-cost", verifyCostCase, "discover_check", attestationCase, "key, sigstore bundle"},
	{"attest-cold: signature+attestation/signature-only first GET p50", "attest-cold", attestColdCase, "p50", attestCase, attestPlainCase},
	{"verdict cache p99, 1M/10k verdicts", "verdict-cache", cacheCase, "p99", "1M verdicts", "10k verdicts"},
	{"verdict cache bytes per entry, 1M/10k verdicts", "verdict-cache", cacheCase, "bytes_per_entry", "1M verdicts", "10k verdicts"},
}, beforeRatioSpecs())

// beforeRatioSpecs compare this Portcullis with the -baseline one, in the
// figures issue 8 asks to stay within 5%: warm by tag and by digest,
// cold, blob.
func beforeRatioSpecs() []ratioSpec {
	out := []ratioSpec{
		{beforeRatio("manifest req/s by tag"), "manifest", "by tag", "req_per_s", targetPortcullis, targetBaseline},
		{beforeRatio("manifest req/s by digest"), "manifest", "by digest", "req_per_s", targetPortcullis, targetBaseline},
	}
	for by, f := range coldCases() {
		out = append(out, ratioSpec{beforeRatio(coldCase(by, f) + " p50"), "cold", coldCase(by, f), "p50", targetPortcullis, targetBaseline})
	}
	return append(out, ratioSpec{beforeRatio("blob throughput"), "blob", "full GET", "throughput", targetPortcullis, targetBaseline})
}

func beforeRatio(what string) string { return "portcullis/" + targetBaseline + " " + what }

// coldRatioSpecs compare each cold case's first GET with one upstream
// manifest GET of the same kind (tag or digest), and cosign verify with it.
func coldRatioSpecs() []ratioSpec {
	var out []ratioSpec
	for by, f := range coldCases() {
		c := coldCase(by, f)
		out = append(out,
			ratioSpec{upstreamRatio(by, f), "cold", c, "p50", targetPortcullis, targetUpstream},
			ratioSpec{cosignRatio(by, f), "cold", c, "p50", targetCosign, targetPortcullis})
	}
	return out
}

func upstreamRatio(by, format string) string {
	return "portcullis cold p50 / upstream manifest GET p50, by " + by + ", " + formatName(format)
}

func cosignRatio(by, format string) string {
	return "cosign-verify/portcullis cold p50 by " + by + ", " + formatName(format)
}

// Case names of the in-process phases.
const (
	verifyCostCase = "one signature, in process"
	cacheCase      = "gate.Manifest on a cached digest (in process)"
)

// Report is everything a run found; it is also the JSON document.
type Report struct {
	Mode     string            `json:"mode"` // "full" or "smoke"
	Started  time.Time         `json:"started"`
	Seconds  float64           `json:"seconds"`
	Settings map[string]any    `json:"settings"`
	Machine  Machine           `json:"machine"`
	Tools    map[string]string `json:"tools"`
	Fixtures fixtures          `json:"fixtures"`
	Metrics  []Metric          `json:"metrics"`
	Ratios   []Ratio           `json:"ratios"`
	Goals    []GoalResult      `json:"goals"`
	Notes    []string          `json:"notes"`
	Command  string            `json:"command"`
	Headline string            `json:"headline"`
}

func newReport(cfg config, b *bench) *Report {
	mode := "full"
	if cfg.smoke {
		mode = "smoke"
	}
	return &Report{
		Mode:    mode,
		Started: time.Now().UTC().Truncate(time.Second),
		Settings: map[string]any{
			"rounds": cfg.rounds, "concurrency": cfg.concurrency,
			"warmup": cfg.warmup.String(), "duration": cfg.duration.String(),
			"blob_size": cfg.blobSize, "blob_runs": cfg.blobRuns, "seed": cfg.seed,
		},
		Machine: currentMachine(),
		Tools:   b.tools,
		Notes:   notes,
		Command: strings.TrimSpace("go run ./test/bench " + strings.Join(cfg.args, " ")),
	}
}

// notes explain how to read the figures.
var notes = []string{
	"All servers run on 127.0.0.1 on the same machine as the load generator, which competes with them for CPU; other work on the machine (see loadavg) skews the figures.",
	"Each phase starts every server afresh; peak_rss is VmHWM of the process over that phase. The upstream row is the upstream, which served every target's requests in the phase.",
	"cpu_per_10k / cpu_per_gib: user+system CPU of the target's own process during the timed runs only; upstream_cpu_*: the upstream's CPU during the same runs; client_cpu_per_10k: the load generator's.",
	"Manifest loads: closed loop, one worker per keep-alive connection, containerd's Accept header, warm (primed and warmed up before timing); values are the median over rounds, rounds interleave the targets.",
	"Blob: first_get_verified is the first GET after the servers start, hashed by the client (for distribution-proxy it fills its storage from the upstream); throughput and CPU are from the later, unhashed GETs.",
	"The box has few cores: a target that answers from memory drives the load generator and itself to saturate them, so its req/s is a bound of the machine, not of the server; compare cpu_per_10k (the server's own cost) too.",
	"Blob GETs are one stream at a time; Portcullis hashes every full blob as it streams (to cut off bytes that do not match the digest), the other targets do not.",
	"Portcullis logs one JSON line per request to its log file; distribution runs with log level error and no access log; the reverse proxy logs nothing.",
	"Portcullis enforces policy.yaml (default deny; images must carry a signature by the run's key, cosign.pub); every fixture is signed in process with verify/signing (no Rekor entry). Warm manifest figures are with a cached verdict; the blob phase pulls the image's manifest first, as a client does.",
	"The upstream (distribution v3) has no OCI referrers API: a discovery asks /referrers/ (404), then reads the referrers fallback tag sha256-<hex>, and the .sig tag.",
	"Cold: each image is GET once, half of each format by tag and half by digest, one at a time, through a Portcullis started for the phase (connections warmed with the manifest fixture, so the upstream's /v2/ auth ping, once per registry, is not in the figures). The upstream row is a manifest GET of the same kind (tag or digest) of the warm fixture straight from the upstream by the same client on a warm connection, timed 3 times before each first GET; the multiples divide p50 by its p50. upstream_* and counted_p50 come from a second pass over the same images through a second Portcullis (fresh caches) behind the in-process counting proxy: upstream_requests counts all the requests a first GET set off (also those it did not wait for), upstream_sequential the most of those that ended before the answer and ran one after another (none overlapping: the round trips on the critical path, as timed at the proxy; two requests sent at once count as two when the first is answered before the second reaches the proxy, so a GET's count can exceed the protocol's, not fall below it), upstream_busy the time at least one of them was in flight, upstream_blob_requests the blob GETs among all of them; counted_p50 includes the extra hop. The legacy signatures' payloads name the image as clients pull it (" + benchRegistry + "/...), as `cosign sign` given that name writes them (the signer pushes to the upstream's address, so like `--sign-container-identity`): Portcullis then rebuilds each payload from the digest its .sig layer gives instead of reading it; a payload naming another repository, or with annotations, costs one more round trip in sequence (the blob), as every legacy signature did before. cosign verify runs the same references (tag or digest), straight against the upstream, one process per image (what a CI step or admission hook does), with --insecure-ignore-tlog=true and its HOME and TUF cache in the run's directory; its time includes process start. With --key and --insecure-ignore-tlog it needs no trust root: it connects only to the upstream (checked with strace -e connect).",
	"Herd: every client has its own connection, opened beforehand; the requests are released together. The counting proxy sits between Portcullis and the upstream in that phase only. discoveries is the larger of the referrers and .sig requests per trial (1 means one discovery served every client).",
	"verify-cost: testing.Benchmark in the harness's process; check is Checker.Check of one discovered signature with the authority compiled; discover_check adds Discover from go-containerregistry's in-memory registry over loopback. Keyless signatures come from sigstore-go's VirtualSigstore.",
	"verdict-cache: a gate.Gate with production defaults, filled in process with N allow verdicts (allow: unsigned policy, one repository, distinct digests); bytes_per_entry is the HeapAlloc growth (after GC) over N; p50/p99 are of gate.Manifest on uniformly random filled digests; hit_ratio is the share of those lookups the cache answered (the rest were decided again).",
}

func (r *Report) add(ms ...Metric) { r.Metrics = append(r.Metrics, ms...) }

// finish computes the ratios and closes the timing.
func (r *Report) finish() {
	r.Seconds = math.Round(time.Since(r.Started).Seconds())
	r.Machine.LoadAvgTo = loadAvg()
	for _, s := range ratioSpecs {
		num, ok1 := r.find(s.phase, s.caseName, s.metric, s.num)
		den, ok2 := r.find(s.phase, s.caseName, s.metric, s.den)
		if !ok1 || !ok2 || den.Value == 0 || num.Missing != "" || den.Missing != "" {
			continue
		}
		r.Ratios = append(r.Ratios, Ratio{Name: s.name, Value: num.Value / den.Value,
			Numerator: num.Value, Denominator: den.Value, Unit: num.Unit})
	}
	r.Goals = r.evalGoals()
	r.Headline = r.headline()
}

func (r *Report) find(phase, caseName, name, target string) (Metric, bool) {
	for _, m := range r.Metrics {
		if m.Phase == phase && m.Case == caseName && m.Name == name && m.Target == target {
			return m, true
		}
	}
	return Metric{}, false
}

// value is a measured figure's value; false when absent or not measured.
func (r *Report) value(phase, caseName, name, target string) (float64, bool) {
	m, ok := r.find(phase, caseName, name, target)
	if !ok || m.Missing != "" {
		return 0, false
	}
	return m.Value, true
}

func (r *Report) ratio(name string) (float64, bool) {
	for _, x := range r.Ratios {
		if x.Name == name {
			return x.Value, true
		}
	}
	return 0, false
}

// write prints the tables to w and writes the -json and -md files.
func (r *Report) write(w io.Writer, cfg config) error {
	if err := r.writeText(w); err != nil {
		return fmt.Errorf("print results: %w", err)
	}
	if cfg.jsonPath != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		if err := os.WriteFile(cfg.jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("-json: %w", err)
		}
	}
	var chart string
	if cfg.pngPath != "" {
		if err := r.writeChart(cfg.pngPath); err != nil {
			return fmt.Errorf("-png: %w", err)
		}
		chart = cfg.pngPath
		if cfg.mdPath != "" {
			if rel, err := filepath.Rel(filepath.Dir(cfg.mdPath), cfg.pngPath); err == nil {
				chart = rel
			}
		}
	}
	if cfg.mdPath != "" {
		var sb strings.Builder
		r.writeMarkdown(&sb, chart)
		if err := os.WriteFile(cfg.mdPath, []byte(sb.String()), 0o644); err != nil {
			return fmt.Errorf("-md: %w", err)
		}
	}
	return nil
}

// table is the metrics of one phase and case: a row per target, a column
// per metric, in the order they were reported.
type table struct {
	title   string
	columns []string // metric names
	units   map[string]string
	rows    []string // targets
	cells   map[[2]string]Metric
	notes   []string
}

func (r *Report) tables() []*table {
	var out []*table
	byKey := map[[2]string]*table{}
	prev := map[[3]string]string{} // the metric a target reported before
	for _, m := range r.Metrics {
		k := [2]string{m.Phase, m.Case}
		t := byKey[k]
		if t == nil {
			t = &table{title: m.Phase + ", " + m.Case, units: map[string]string{}, cells: map[[2]string]Metric{}}
			byKey[k] = t
			out = append(out, t)
		}
		if _, seen := t.units[m.Name]; !seen {
			t.insertColumn(m.Name, prev[[3]string{m.Phase, m.Case, m.Target}])
			t.units[m.Name] = m.Unit
		}
		prev[[3]string{m.Phase, m.Case, m.Target}] = m.Name
		if !slices.Contains(t.rows, m.Target) {
			t.rows = append(t.rows, m.Target)
		}
		t.cells[[2]string{m.Target, m.Name}] = m
		if m.Note != "" {
			t.notes = append(t.notes, m.Target+" "+m.Name+":\n"+m.Note)
		}
	}
	return out
}

// insertColumn adds name after column after (at the end if after is not a
// column), so a metric only some targets report keeps its place.
func (t *table) insertColumn(name, after string) {
	i := slices.Index(t.columns, after)
	if i < 0 {
		t.columns = append(t.columns, name)
		return
	}
	t.columns = slices.Insert(t.columns, i+1, name)
}

func (t *table) header() []string {
	h := []string{"target"}
	for _, c := range t.columns {
		h = append(h, c+" ("+t.units[c]+")")
	}
	return h
}

func (t *table) row(target string) []string {
	row := []string{target}
	for _, c := range t.columns {
		m, ok := t.cells[[2]string{target, c}]
		switch {
		case !ok:
			row = append(row, "-")
		case m.Missing != "":
			row = append(row, m.Missing)
		default:
			row = append(row, formatValue(m.Value))
		}
	}
	return row
}

// formatValue prints about four significant digits without exponents.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	case a >= 1:
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.4f", v)
}

func (r *Report) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\nPortcullis side-by-side benchmark (%s mode), %s\n", r.Mode, r.machineLine())
	for _, t := range r.tables() {
		fmt.Fprintf(tw, "\n%s\n", t.title)
		fmt.Fprintln(tw, strings.Join(t.header(), "\t")+"\t")
		for _, target := range t.rows {
			fmt.Fprintln(tw, strings.Join(t.row(target), "\t")+"\t")
		}
	}
	fmt.Fprintln(tw, "\nratios")
	for _, x := range r.Ratios {
		fmt.Fprintf(tw, "%s\t%.3f\t(%s / %s %s)\t\n", x.Name, x.Value, formatValue(x.Numerator), formatValue(x.Denominator), x.Unit)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\ngoals")
	for _, g := range r.Goals {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", g.Status, g.Name, g.Measured, g.Want)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, g := range r.Goals {
		if g.Note != "" && g.Status != goalMet {
			fmt.Fprintf(w, "  %s: %s\n", g.Name, g.Note)
		}
	}
	for _, t := range r.tables() {
		for _, n := range t.notes {
			fmt.Fprintf(w, "\n%s, %s\n", t.title, n)
		}
	}
	fmt.Fprintf(w, "\nheadline (for README.md)\n\n%s\n", r.Headline)
	return nil
}

func (r *Report) writeMarkdown(w io.Writer, chart string) {
	fmt.Fprintf(w, "# Portcullis benchmarks\n\n")
	fmt.Fprintf(w, "Portcullis against what a user would run instead, side by side on one machine in one run: "+
		"the registry it fronts (CNCF distribution), distribution's pull-through proxy, a plain `httputil.ReverseProxy`, "+
		"and `cosign verify`. Portcullis runs as in production, enforcing a signature policy. "+
		"Generated by `test/bench` (%s mode); do not edit by hand.\n\n", r.Mode)
	fmt.Fprintf(w, "## Reproduce\n\n```sh\nmake tools   # distribution registry, crane, cosign into .tools/bin\n"+
		"make bench   # go run ./test/bench -md docs/benchmarks.md -png docs/benchmarks.png\n```\n\n"+
		"This run: `%s` (commit in the portcullis row below).\n\n", r.Command)
	fmt.Fprintf(w, "Run %s, %.0f s. Machine: %s, %s RAM. Load average %s at start, %s at end "+
		"(other work on the machine skews every figure; compare within one run).\n\n",
		r.Started.Format(time.RFC3339), r.Seconds, r.machineLine(), r.Machine.MemTotal, r.Machine.LoadAvgFrom, r.Machine.LoadAvgTo)
	fmt.Fprintln(w, "| tool | version |\n|---|---|")
	for _, k := range slices.Sorted(maps.Keys(r.Tools)) {
		fmt.Fprintf(w, "| %s | %s |\n", k, r.Tools[k])
	}
	fmt.Fprintf(w, "\nSettings: %s.\n", settingsLine(r.Settings))
	fmt.Fprintf(w, "\n## Headline\n\n%s\n", r.Headline)
	if chart != "" {
		fmt.Fprintf(w, "\n![warm manifest req/s, cold first GET latency against cosign verify, blob throughput](%s)\n", chart)
	}
	fmt.Fprintln(w, "\n## Goals\n\n| status | figure | measured | goal | what bounds it here |\n|---|---|---|---|---|")
	for _, g := range r.Goals {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", g.Status, g.Name, g.Measured, g.Want, g.Note)
	}
	for _, t := range r.tables() {
		fmt.Fprintf(w, "\n## %s\n\n", t.title)
		if d := t.doc(); d != "" {
			fmt.Fprintf(w, "%s\n\n", d)
		}
		h := t.header()
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(h, " | "), strings.Repeat("---|", len(h)))
		for _, target := range t.rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(t.row(target), " | "))
		}
		for _, n := range t.notes {
			fmt.Fprintf(w, "\n```\n%s\n```\n", n)
		}
	}
	fmt.Fprintln(w, "\n## Ratios\n\n| ratio | value | numerator | denominator |\n|---|---|---|---|")
	for _, x := range r.Ratios {
		fmt.Fprintf(w, "| %s | %.3f | %s %s | %s %s |\n", x.Name, x.Value, formatValue(x.Numerator), x.Unit, formatValue(x.Denominator), x.Unit)
	}
	fmt.Fprintln(w, "\n## Notes")
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprint(w, profilingDoc)
}

// doc is the table's introduction: tableDoc's entry for its title, else
// for its phase (none for the process tables).
func (t *table) doc() string {
	if d, ok := tableDoc[t.title]; ok {
		return d
	}
	if strings.HasSuffix(t.title, "process") {
		return ""
	}
	return tableDoc[strings.SplitN(t.title, ",", 2)[0]]
}

// tableDoc introduces each phase's tables in the Markdown report, and the
// tables named by their title.
var tableDoc = map[string]string{
	"manifest":             "Warm manifest GETs (closed loop, keep-alive connections, containerd's Accept header); Portcullis answers from its manifest cache with a cached verdict. cpu_per_10k is the server process's own CPU.",
	"cold":                 "First GET of never-seen signed images through Portcullis (manifest fetch, signature discovery, verification, policy), against one manifest GET of the same kind straight from the upstream (upstream row) and `cosign verify --key` of the same references; upstream_* are the upstream requests per first GET, from a counted second pass (see Notes).",
	"cold, " + coldAllCase: "Over every first GET of the timed pass: Portcullis's own CPU (user+system of its process) per first GET, and its upstream requests per first GET by route with their mean time as Portcullis timed them (portcullis_upstream_request_duration_seconds, to the response headers, from /metrics).",
	"herd":                 "Concurrent first GETs of one fresh signed digest through Portcullis; upstream_* count the requests that reached the upstream, by kind.",
	"blob":                 "One stream at a time; the manifest is pulled first (Portcullis serves blobs of allowed manifests only). portcullis-store is Portcullis with a content store: its first GET fetches the blob into the store (hashed, written to disk, streamed at once), the timed GETs read it from disk (sendfile); first_get_* are that first GET's (verified by the client, for every target), concurrent_4_throughput four warm GETs at once. The sha256 row is SHA-256 of a GiB on one core of this process.",
	"store-herd":           "Portcullis with a content store: one cold GET of a blob alone, then the herd's clients (a connection each) GET another blob of the same size at once (cold: one upstream fetch streamed to all), then the same blob again from the store (warm); times are to the last byte; the first four clients hash what they get, all check the length. Before the herds, 100 GETs of that image's manifest by tag within tagTTL (2s here), and after the herds, once tagTTL has passed, one more: the upstream requests each caused.",
	"verify-cost":          "CPU cost of verifying one signature with a key against keyless (Fulcio certificate with a Rekor SET, or an RFC 3161 timestamp), in both formats.",
	"verdict-cache":        "The verification gate with many cached verdicts: latency of a cached decision and heap per cached verdict.",
}

const profilingDoc = `
## Profiling

The side-by-side run measures processes from outside; these in-process
benchmarks give CPU and heap profiles of the same paths:

` + "```sh" + `
go test ./test/bench -run '^$' -bench Blob -benchtime 20x -cpuprofile /tmp/cpu.out
go test ./test/bench -run '^$' -bench VerifyCost -cpuprofile /tmp/cpu.out
go test ./test/bench -run '^$' -bench ManifestWarm -cpuprofile /tmp/cpu.out
go test ./verify -run '^$' -bench GateCacheHit -memprofile /tmp/mem.out
go tool pprof -top -nodecount 30 /tmp/cpu.out
` + "```" + `

With -keep, the verdict-cache phase leaves its heap profile
(verdict-cache-<N>.heap.pprof) in the run's directory when an entry costs
more than 300 bytes: ` + "`go tool pprof -sample_index=inuse_space -top FILE`" + `.
`

func (r *Report) machineLine() string {
	m := r.Machine
	return fmt.Sprintf("%d x %s, Linux %s, %s, %s", m.NProc, m.CPUModel, m.Kernel, m.GoVersion, m.Platform)
}

func settingsLine(s map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, s[k]))
	}
	return strings.Join(parts, ", ")
}
