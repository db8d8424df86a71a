package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
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
var ratioSpecs = []ratioSpec{
	{"portcullis/upstream manifest req/s by tag", "manifest", "by tag", "req_per_s", targetPortcullis, targetUpstream},
	{"portcullis/upstream manifest req/s by digest", "manifest", "by digest", "req_per_s", targetPortcullis, targetUpstream},
	{"portcullis/distribution-proxy manifest req/s by tag", "manifest", "by tag", "req_per_s", targetPortcullis, targetDistProxy},
	{"portcullis/distribution-proxy manifest req/s by digest", "manifest", "by digest", "req_per_s", targetPortcullis, targetDistProxy},
	{"portcullis/reverse-proxy manifest CPU per request by tag", "manifest", "by tag", "cpu_per_10k", targetPortcullis, targetRevProxy},
	{"portcullis/distribution-proxy blob throughput", "blob", "full GET", "throughput", targetPortcullis, targetDistProxy},
	{"portcullis/reverse-proxy blob throughput", "blob", "full GET", "throughput", targetPortcullis, targetRevProxy},
	{"portcullis/reverse-proxy blob CPU per GiB", "blob", "full GET", "cpu_per_gib", targetPortcullis, targetRevProxy},
	{"portcullis/distribution-proxy blob-phase peak RSS", "blob", "process", "peak_rss", targetPortcullis, targetDistProxy},
	{"portcullis/reverse-proxy blob-phase peak RSS", "blob", "process", "peak_rss", targetPortcullis, targetRevProxy},
}

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
	Notes    []string          `json:"notes"`
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
}

func (r *Report) add(ms ...Metric) { r.Metrics = append(r.Metrics, ms...) }

// finish computes the ratios and closes the timing.
func (r *Report) finish() {
	r.Seconds = math.Round(time.Since(r.Started).Seconds())
	r.Machine.LoadAvgTo = readTrim("/proc/loadavg")
	for _, s := range ratioSpecs {
		num, ok1 := r.find(s.phase, s.caseName, s.metric, s.num)
		den, ok2 := r.find(s.phase, s.caseName, s.metric, s.den)
		if !ok1 || !ok2 || den.Value == 0 {
			continue
		}
		r.Ratios = append(r.Ratios, Ratio{Name: s.name, Value: num.Value / den.Value,
			Numerator: num.Value, Denominator: den.Value, Unit: num.Unit})
	}
}

func (r *Report) find(phase, caseName, name, target string) (Metric, bool) {
	for _, m := range r.Metrics {
		if m.Phase == phase && m.Case == caseName && m.Name == name && m.Target == target {
			return m, true
		}
	}
	return Metric{}, false
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
	if cfg.mdPath != "" {
		var sb strings.Builder
		r.writeMarkdown(&sb)
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
	cells   map[[2]string]float64
}

func (r *Report) tables() []*table {
	var out []*table
	byKey := map[[2]string]*table{}
	prev := map[[3]string]string{} // the metric a target reported before
	for _, m := range r.Metrics {
		k := [2]string{m.Phase, m.Case}
		t := byKey[k]
		if t == nil {
			t = &table{title: m.Phase + ", " + m.Case, units: map[string]string{}, cells: map[[2]string]float64{}}
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
		t.cells[[2]string{m.Target, m.Name}] = m.Value
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
		v, ok := t.cells[[2]string{target, c}]
		if !ok {
			row = append(row, "-")
			continue
		}
		row = append(row, formatValue(v))
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
	fmt.Fprintln(tw)
	return tw.Flush()
}

func (r *Report) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "# Portcullis side-by-side benchmark (%s mode)\n\n", r.Mode)
	fmt.Fprintf(w, "Run %s, %.0f s. Machine: %s. Load average %s at start, %s at end.\n\n",
		r.Started.Format(time.RFC3339), r.Seconds, r.machineLine(), r.Machine.LoadAvgFrom, r.Machine.LoadAvgTo)
	fmt.Fprintln(w, "| tool | version |\n|---|---|")
	for _, k := range slices.Sorted(maps.Keys(r.Tools)) {
		fmt.Fprintf(w, "| %s | %s |\n", k, r.Tools[k])
	}
	fmt.Fprintf(w, "\nSettings: %s.\n", settingsLine(r.Settings))
	for _, t := range r.tables() {
		fmt.Fprintf(w, "\n## %s\n\n", t.title)
		h := t.header()
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(h, " | "), strings.Repeat("---|", len(h)))
		for _, target := range t.rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(t.row(target), " | "))
		}
	}
	fmt.Fprintln(w, "\n## ratios\n\n| ratio | value | numerator | denominator |\n|---|---|---|---|")
	for _, x := range r.Ratios {
		fmt.Fprintf(w, "| %s | %.3f | %s %s | %s %s |\n", x.Name, x.Value, formatValue(x.Numerator), x.Unit, formatValue(x.Denominator), x.Unit)
	}
	fmt.Fprintln(w, "\n## notes")
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

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
