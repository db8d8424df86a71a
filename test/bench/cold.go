package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// targetCosign is the cosign CLI, as a row of the cold phase.
const targetCosign = "cosign-verify"

// coldFleet is Portcullis straight on the upstream, for timing, and its
// twin behind the counting proxy, for counting.
var coldFleet = fleetSpec{proxies: []string{targetPortcullis}, countedTwin: true, baseline: true}

// Reference kinds of a first GET.
const (
	byTag    = "tag"
	byDigest = "digest"
)

// coldRefs are the reference kinds, in report order.
var coldRefs = []string{byTag, byDigest}

// signedFormats are the signature formats of the fixtures, in report order.
var signedFormats = []string{formatLegacy, formatBundle}

// coldCases yields the cold phase's cases, as reference kind and format,
// in report order.
func coldCases() iter.Seq2[string, string] {
	return func(yield func(by, format string) bool) {
		for _, by := range coldRefs {
			for _, format := range signedFormats {
				if !yield(by, format) {
					return
				}
			}
		}
	}
}

// coldCase is the case name of one reference kind and signature format in
// the cold phase.
func coldCase(by, format string) string {
	return "first GET by " + by + ", " + formatName(format)
}

// coldGet is one first GET of the cold phase: an image and how it is named.
type coldGet struct {
	im signedImage
	by string // byTag or byDigest
}

// ref is the reference of the GET: the image's tag or its digest.
func (g coldGet) ref() string {
	if g.by == byTag {
		return g.im.Tag
	}
	return g.im.Digest
}

func (g coldGet) caseName() string { return coldCase(g.by, g.im.Format) }

// coldPlan names the cold images alternately by tag and by digest, per
// signature format, so every format has about as many of each.
func coldPlan(ims []signedImage) []coldGet {
	seen := map[string]int{}
	out := make([]coldGet, len(ims))
	for i, im := range ims {
		by := byTag
		if seen[im.Format]%2 == 1 {
			by = byDigest
		}
		seen[im.Format]++
		out[i] = coldGet{im: im, by: by}
	}
	return out
}

// upstreamGets is how many upstream manifest GETs are timed before each
// first GET through Portcullis.
const upstreamGets = 3

// runColdPhase GETs, through a freshly started Portcullis, the manifest of
// every cold image once, by tag or by digest (coldPlan), one at a time:
// each is a first request, so Portcullis fetches the manifest, discovers
// the signatures (referrers and .sig tag), verifies them and evaluates the
// policy before answering. Before each, it times upstreamGets manifest
// GETs of the same kind straight from the upstream, by the same client
// (the upstream row: what one upstream round trip costs at that moment).
// Then it runs `cosign verify` on the same references, straight against
// the upstream, and counts the upstream requests of each first GET
// through Portcullis's counted twin (countCold).
func runColdPhase(ctx context.Context, b *bench, f *fleet) ([]Metric, error) {
	plan := coldPlan(b.fix.Cold)
	out, err := timeCold(ctx, b, f.target(targetPortcullis), f.target(targetBaseline), plan)
	if err != nil {
		return nil, err
	}
	cm, err := runCosign(ctx, b, plan)
	if err != nil {
		return nil, err
	}
	tm, err := countCold(ctx, b, f, plan)
	if err != nil {
		return nil, err
	}
	return slices.Concat(out, cm, tm), nil
}

// getter is one timed GET (manifestGetter).
type getter = func(context.Context) (time.Duration, error)

// warmUp runs every get 3 times: a running proxy has its connections
// open, and the upstream's auth challenge (asked once per registry) is
// not the cold images' cost.
func warmUp(ctx context.Context, gets ...getter) error {
	for range 3 {
		for _, get := range gets {
			if _, err := get(ctx); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	return nil
}

// timeCold times the first GETs of plan through pc, each after
// upstreamGets upstream manifest GETs of the same reference kind, with
// Portcullis's CPU and its own timings of its upstream requests around
// them. With prior (the -baseline Portcullis; nil without one), each
// image's first GET goes through both, pc first for every other image of
// each case (coldFirsts).
func timeCold(ctx context.Context, b *bench, pc, prior *target, plan []coldGet) ([]Metric, error) {
	client := noProxyClient()
	defer client.CloseIdleConnections()
	up := "http://" + b.upAddr
	upstream := map[string]getter{
		byTag:    manifestGetter(client, up, b.fix.Repo, b.fix.Tag, b.fix.ManifestDigest),
		byDigest: manifestGetter(client, up, b.fix.Repo, b.fix.ManifestDigest, b.fix.ManifestDigest),
	}
	pcs := []*target{pc}
	gets := []getter{upstream[byTag], upstream[byDigest]}
	if prior != nil {
		pcs = append(pcs, prior)
	}
	for _, t := range pcs {
		gets = append(gets, manifestGetter(client, t.base, b.fix.Repo, b.fix.ManifestDigest, b.fix.ManifestDigest))
	}
	if err := warmUp(ctx, gets...); err != nil {
		return nil, err
	}
	before, err := scrapeUpstreamTimes(ctx, client, pc.admin)
	if err != nil {
		return nil, err
	}
	cpu, err := startCPU(pc.proc.Pid())
	if err != nil {
		return nil, err
	}
	lat, base, err := timeColdGets(ctx, client, pcs, upstream, plan)
	if err != nil {
		return nil, err
	}
	used, err := cpu.stop()
	if err != nil {
		return nil, err
	}
	after, err := scrapeUpstreamTimes(ctx, client, pc.admin)
	if err != nil {
		return nil, err
	}
	out := coldLatencyMetrics(lat, base)
	perGet := 1000 * used[0] / float64(len(plan))
	logf("cold: portcullis used %.2f CPU ms per first GET", perGet)
	out = append(out, Metric{Phase: "cold", Case: coldAllCase, Target: targetPortcullis, Name: "cpu_per_first_get", Unit: "CPU ms", Value: perGet})
	return append(out, upstreamTimeMetrics(before, after, len(plan))...), nil
}

// timeColdGets runs plan through each of pcs and returns the latencies
// (ms) by target and case, and those of the upstream GETs by reference
// kind.
func timeColdGets(ctx context.Context, client *http.Client, pcs []*target, upstream map[string]getter, plan []coldGet) (lat map[string]map[string][]float64, base map[string][]float64, err error) {
	lat, base = map[string]map[string][]float64{}, map[string][]float64{}
	for _, t := range pcs {
		lat[t.name] = map[string][]float64{}
	}
	first := coldFirsts(plan)
	for i, g := range plan {
		for range upstreamGets {
			d, err := upstream[g.by](ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("upstream manifest GET by %s: %w", g.by, err)
			}
			base[g.by] = append(base[g.by], ms(d))
		}
		for j := range pcs {
			t := pcs[(first[i]+j)%len(pcs)]
			d, err := manifestGetter(client, t.base, g.im.Repo, g.ref(), g.im.Digest)(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: cold GET of %s by %s (%s): %w", t.name, g.im.Repo, g.by, g.im.Format, err)
			}
			lat[t.name][g.caseName()] = append(lat[t.name][g.caseName()], ms(d))
		}
	}
	return lat, base, nil
}

// coldFirsts says, for each first GET of plan, which Portcullis goes
// first (0: the one built here, 1: the baseline): the two alternate within
// each case. Going first matters: when the order alternated over the whole
// plan, which alternates formats, the same Portcullis went first for every
// image of a format, and whichever went first read faster: by tag, with
// the same code in both builds, legacy now/before 0.84x and 0.90x and
// bundle 1.03x and 1.07x in two runs.
func coldFirsts(plan []coldGet) []int {
	nth := map[string]int{}
	out := make([]int, len(plan))
	for i, g := range plan {
		out[i] = nth[g.caseName()] % 2
		nth[g.caseName()]++
	}
	return out
}

// coldLatencyMetrics are, per case, a row for each Portcullis (the one
// built here, and the baseline) and the upstream row (the upstream GETs
// of the case's reference kind).
func coldLatencyMetrics(lat map[string]map[string][]float64, base map[string][]float64) []Metric {
	var out []Metric
	for by, format := range coldCases() {
		bs := base[by]
		for _, t := range []string{targetPortcullis, targetBaseline} {
			xs := lat[t][coldCase(by, format)]
			if len(xs) == 0 {
				continue
			}
			logf("cold by %s, %s: %s p50 %.2f ms, p99 %.2f ms over %d images; upstream manifest GET by %s p50 %.2f ms (%.2fx)",
				by, format, t, median(xs), percentileOf(xs, 99), len(xs), by, median(bs), median(xs)/median(bs))
			out = append(out, latencyMetrics("cold", coldCase(by, format), t, xs)...)
		}
		if len(bs) > 0 {
			out = append(out, latencyMetrics("cold", coldCase(by, format), targetUpstream, bs)...)
		}
	}
	return out
}

// manifestGetter returns a function that GETs repo's manifest ref from
// base with containerd's Accept header, checks it is 200 with digest
// wantDigest, and returns how long it took (until the body was read).
func manifestGetter(c *http.Client, base, repo, ref, wantDigest string) func(context.Context) (time.Duration, error) {
	url := base + "/v2/" + repo + "/manifests/" + ref
	return func(ctx context.Context) (time.Duration, error) {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Accept", containerdAccept)
		resp, err := c.Do(req)
		if err != nil {
			return 0, fmt.Errorf("GET %s: %w", url, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("GET %s: body: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET %s: %s: %s", url, resp.Status, truncate(body, 600))
		}
		if got := resp.Header.Get("Docker-Content-Digest"); got != wantDigest {
			return 0, fmt.Errorf("GET %s: Docker-Content-Digest %q, want %q", url, got, wantDigest)
		}
		return d, nil
	}
}

// runCosign times `cosign verify --key cosign.pub` of every first GET of
// plan (the same reference, tag or digest), offline: HOME and the TUF cache point into the run's directory, the
// transparency log is not required (the signatures have none), so cosign
// needs no network. A cosign that is missing or cannot verify is reported
// as not measured, not as a failure of Portcullis.
func runCosign(ctx context.Context, b *bench, plan []coldGet) ([]Metric, error) {
	notMeasured := func(why string) []Metric {
		var out []Metric
		for by, format := range coldCases() {
			out = append(out, Metric{Phase: "cold", Case: coldCase(by, format), Target: targetCosign,
				Name: "p50", Unit: "ms", Missing: "not measured: " + why})
		}
		return out
	}
	if b.bins.cosign == "" {
		return notMeasured(b.bins.cosignMissing), nil
	}
	home := b.path("cosign-home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	lat := map[string][]float64{}
	for _, g := range plan {
		d, err := cosignVerify(ctx, b, home, g)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			logf("cold: cosign verify failed, reporting it as not measured: %v", err)
			return notMeasured("cosign verify failed: " + firstLine(err.Error())), nil
		}
		lat[g.caseName()] = append(lat[g.caseName()], ms(d))
	}
	var out []Metric
	for by, format := range coldCases() {
		if xs := lat[coldCase(by, format)]; len(xs) > 0 {
			logf("cold by %s, %s: cosign verify p50 %.1f ms, p99 %.1f ms over %d images", by, format, median(xs), percentileOf(xs, 99), len(xs))
			out = append(out, latencyMetrics("cold", coldCase(by, format), targetCosign, xs)...)
		}
	}
	return out, nil
}

// cosignArgs is the cosign command line verifying g's image in the
// upstream, by g's reference.
func cosignArgs(b *bench, g coldGet) []string {
	sep := ":"
	if g.by == byDigest {
		sep = "@"
	}
	return []string{"verify",
		"--key", b.path("cosign.pub"),
		"--insecure-ignore-tlog=true",
		"--allow-http-registry",
		"--output", "json",
		b.upAddr + "/" + g.im.Repo + sep + g.ref(),
	}
}

// cosignVerify runs cosign once and returns its wall-clock time.
func cosignVerify(ctx context.Context, b *bench, home string, g coldGet) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, b.bins.cosign, cosignArgs(b, g)...)
	cmd.Env = cosignEnv(home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("cosign %s: %w: %s", strings.Join(cmd.Args[1:], " "), err, truncate(stderr.Bytes(), 1000))
	}
	if !bytes.Contains(stdout.Bytes(), []byte(g.im.Digest)) {
		return 0, fmt.Errorf("cosign verify of %s printed no payload naming it: %s", g.im.Digest, truncate(stdout.Bytes(), 600))
	}
	return d, nil
}

// cosignEnv keeps cosign off the user's configuration and off the network:
// its own HOME, TUF and Sigstore caches, no proxy variables, no Docker
// credentials.
func cosignEnv(home string) []string {
	env := []string{
		"HOME=" + home,
		"TUF_ROOT=" + filepath.Join(home, ".sigstore", "root"),
		"SIGSTORE_NO_CACHE=true",
		"DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"COSIGN_EXPERIMENTAL=0",
	}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	}
	return env
}

// latencyMetrics are the p50, p99 and number of latencies xs (ms).
func latencyMetrics(phase, caseName, target string, xs []float64) []Metric {
	return []Metric{
		{Phase: phase, Case: caseName, Target: target, Name: "p50", Unit: "ms", Value: median(xs), Samples: xs},
		{Phase: phase, Case: caseName, Target: target, Name: "p99", Unit: "ms", Value: percentileOf(xs, 99)},
		{Phase: phase, Case: caseName, Target: target, Name: "samples", Unit: "n", Value: float64(len(xs))},
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func truncate(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
