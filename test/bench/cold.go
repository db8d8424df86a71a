package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// targetCosign is the cosign CLI, as a row of the cold phase.
const targetCosign = "cosign-verify"

// coldCase is the case name of one signature format in the cold phase.
func coldCase(format string) string {
	if format == formatLegacy {
		return "first GET, legacy .sig"
	}
	return "first GET, sigstore bundle"
}

// runColdPhase GETs, through a freshly started Portcullis, the manifest of
// every cold image by digest, one at a time: each is a first request, so
// Portcullis fetches the manifest, discovers the signatures (referrers and
// .sig tag), verifies them and evaluates the policy before answering.
// Then it runs `cosign verify` on the same images, straight against the
// upstream, and reports the latencies per signature format.
func runColdPhase(ctx context.Context, b *bench, f *fleet) ([]Metric, error) {
	pc := f.target(targetPortcullis)
	client := noProxyClient()
	defer client.CloseIdleConnections()
	// A running proxy has its connections open: warm them (client to
	// Portcullis, Portcullis to the upstream) with the manifest fixture.
	warm := manifestGetter(client, pc.base, b.fix.Repo, b.fix.ManifestDigest, b.fix.ManifestDigest)
	for range 3 {
		if _, err := warm(ctx); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	lat := map[string][]float64{}
	for _, im := range b.fix.Cold {
		d, err := manifestGetter(client, pc.base, im.Repo, im.Digest, im.Digest)(ctx)
		if err != nil {
			return nil, fmt.Errorf("cold GET of %s@%s (%s): %w", im.Repo, im.Digest, im.Format, err)
		}
		lat[im.Format] = append(lat[im.Format], ms(d))
	}
	var out []Metric
	for _, format := range []string{formatLegacy, formatBundle} {
		if xs := lat[format]; len(xs) > 0 {
			logf("cold %s: portcullis p50 %.2f ms, p99 %.2f ms over %d images", format, median(xs), percentileOf(xs, 99), len(xs))
			out = append(out, latencyMetrics("cold", coldCase(format), targetPortcullis, xs)...)
		}
	}
	cm, err := runCosign(ctx, b)
	if err != nil {
		return nil, err
	}
	return append(out, cm...), nil
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

// runCosign times `cosign verify --key cosign.pub` of every cold image,
// offline: HOME and the TUF cache point into the run's directory, the
// transparency log is not required (the signatures have none), so cosign
// needs no network. A cosign that is missing or cannot verify is reported
// as not measured, not as a failure of Portcullis.
func runCosign(ctx context.Context, b *bench) ([]Metric, error) {
	notMeasured := func(why string) []Metric {
		var out []Metric
		for _, format := range []string{formatLegacy, formatBundle} {
			out = append(out, Metric{Phase: "cold", Case: coldCase(format), Target: targetCosign,
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
	for _, im := range b.fix.Cold {
		d, err := cosignVerify(ctx, b, home, im)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			logf("cold: cosign verify failed, reporting it as not measured: %v", err)
			return notMeasured("cosign verify failed: " + firstLine(err.Error())), nil
		}
		lat[im.Format] = append(lat[im.Format], ms(d))
	}
	var out []Metric
	for _, format := range []string{formatLegacy, formatBundle} {
		if xs := lat[format]; len(xs) > 0 {
			logf("cold %s: cosign verify p50 %.1f ms, p99 %.1f ms over %d images", format, median(xs), percentileOf(xs, 99), len(xs))
			out = append(out, latencyMetrics("cold", coldCase(format), targetCosign, xs)...)
		}
	}
	return out, nil
}

// cosignArgs is the cosign command line verifying im in the upstream.
func cosignArgs(b *bench, im signedImage) []string {
	return []string{"verify",
		"--key", b.path("cosign.pub"),
		"--insecure-ignore-tlog=true",
		"--allow-http-registry",
		"--output", "json",
		b.upAddr + "/" + im.Repo + "@" + im.Digest,
	}
}

// cosignVerify runs cosign once and returns its wall-clock time.
func cosignVerify(ctx context.Context, b *bench, home string, im signedImage) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, b.bins.cosign, cosignArgs(b, im)...)
	cmd.Env = cosignEnv(home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("cosign %s: %w: %s", strings.Join(cmd.Args[1:], " "), err, truncate(stderr.Bytes(), 1000))
	}
	if !bytes.Contains(stdout.Bytes(), []byte(im.Digest)) {
		return 0, fmt.Errorf("cosign verify of %s printed no payload naming it: %s", im.Digest, truncate(stdout.Bytes(), 600))
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

// latencyMetrics are the p50, p99 and count of latencies xs (ms).
func latencyMetrics(phase, caseName, target string, xs []float64) []Metric {
	return []Metric{
		{Phase: phase, Case: caseName, Target: target, Name: "p50", Unit: "ms", Value: median(xs), Samples: xs},
		{Phase: phase, Case: caseName, Target: target, Name: "p99", Unit: "ms", Value: percentileOf(xs, 99)},
		{Phase: phase, Case: caseName, Target: target, Name: "images", Unit: "n", Value: float64(len(xs))},
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
