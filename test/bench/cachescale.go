package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sync/errgroup"

	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
)

// cachePolicy lets every image through unsigned: the verdict-cache phase
// measures the cache, not verification.
const cachePolicy = `policies:
  - name: all
    images: ["` + benchRegistry + `/**"]
    allow: unsigned
`

// cacheManifest is the manifest every cached digest claims to be (the gate
// trusts the caller's digest; one manifest keeps the allowances it grants
// constant, so the heap grows by the verdict cache alone).
const cacheManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
	`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},` +
	`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef","size":32}]}`

// nopReader is a verify.Reader that is never called: an allow-unsigned
// policy discovers nothing, and a cache hit reads nothing.
type nopReader struct{}

var errNotCalled = errors.New("the verdict-cache phase reads nothing")

func (nopReader) Manifest(context.Context, verify.Repository, string) (*verify.Manifest, error) {
	return nil, errNotCalled
}

func (nopReader) Referrers(context.Context, verify.Repository, v1.Hash) (*v1.IndexManifest, error) {
	return nil, errNotCalled
}

func (nopReader) Blob(context.Context, verify.Repository, v1.Hash, int64) ([]byte, error) {
	return nil, errNotCalled
}

// cacheDigest is the i-th distinct digest of the phase, made on demand so
// that the harness holds none of them.
func cacheDigest(i int) v1.Hash {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	sum := sha256.Sum256(b[:])
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// runCachePhase fills a Gate (the production defaults: gate.New with
// no cache option) with N allow verdicts for each -cache-sizes N, and
// measures the heap the cache holds per entry (HeapAlloc after a GC,
// against before the fill), the latency of gate.Manifest on random filled
// digests, and how many of those lookups hit the cache (hit_ratio: the
// share of the filled verdicts the cache kept; bytes_per_kept_entry is the
// heap growth over the verdicts kept).
func runCachePhase(ctx context.Context, b *bench, _ *fleet) ([]Metric, error) {
	p, err := policy.Parse([]byte(cachePolicy), "cache-policy.yaml", nil)
	if err != nil {
		return nil, fmt.Errorf("cache policy: %w", err)
	}
	snap, err := gate.NewSnapshot(p, nil)
	if err != nil {
		return nil, fmt.Errorf("cache policy snapshot: %w", err)
	}
	var out []Metric
	for _, n := range b.cfg.cacheSizes {
		ms, err := measureCache(ctx, b, snap, n)
		if err != nil {
			return nil, fmt.Errorf("%d entries: %w", n, err)
		}
		out = append(out, ms...)
		runtime.GC()
	}
	return out, nil
}

func cacheTarget(n int) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%dM verdicts", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%dk verdicts", n/1e3)
	}
	return fmt.Sprintf("%d verdicts", n)
}

func measureCache(ctx context.Context, b *bench, snap *gate.Snapshot, n int) ([]Metric, error) {
	reg := prometheus.NewRegistry()
	gt, err := gate.New(nopReader{}, snap, gate.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	repo := verify.Repository{Registry: benchRegistry, Name: "acme/app"}
	manifest := []byte(cacheManifest)
	req := func(i int) *gate.ManifestRequest {
		d := cacheDigest(i)
		return &gate.ManifestRequest{Repo: repo, Reference: d.String(), Digest: d,
			MediaType: mediaOCIManifest, Bytes: manifest}
	}
	profile := n == slices.Max(b.cfg.cacheSizes)
	var baseProfile string
	if profile {
		baseProfile = b.path(fmt.Sprintf("verdict-cache-%d.base.pprof", n))
		if err := writeHeapProfile(baseProfile); err != nil {
			return nil, err
		}
	}
	before := heapAlloc()
	start := time.Now()
	// Fill with one worker per CPU; each waits for the cache's write
	// buffer every 4096 verdicts, so no write is dropped for contention.
	workers := runtime.GOMAXPROCS(0)
	g, gctx := errgroup.WithContext(ctx)
	for w := range workers {
		g.Go(func() error {
			for k, i := 0, w; i < n; k, i = k+1, i+workers {
				v, err := gt.Manifest(gctx, req(i))
				if err != nil {
					return err
				}
				if !v.Allowed() {
					return fmt.Errorf("digest %d denied (cause %s)", i, v.Cause)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	fill := time.Since(start)
	after := heapAlloc()
	perEntry := float64(int64(after)-int64(before)) / float64(n)

	var heapTop string
	if profile {
		heapTop = heapProfileTop(b, n, baseProfile)
		logf("verdict cache %s: heap profile (filled over empty):\n%s", cacheTarget(n), heapTop)
	}

	hits0, misses0, err := cacheLookups(reg)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(n), 2))
	probes := make([]*gate.ManifestRequest, 1024)
	lat := make([]float64, 0, b.cfg.cacheProbes)
	for len(lat) < b.cfg.cacheProbes {
		for i := range probes { // made outside the timed calls
			probes[i] = req(rng.IntN(n))
		}
		for _, r := range probes[:min(len(probes), b.cfg.cacheProbes-len(lat))] {
			t0 := time.Now()
			if _, err := gt.Manifest(ctx, r); err != nil {
				return nil, err
			}
			lat = append(lat, float64(time.Since(t0))/float64(time.Microsecond))
		}
	}
	hits1, misses1, err := cacheLookups(reg)
	if err != nil {
		return nil, err
	}
	hitRatio := (hits1 - hits0) / max(1, (hits1-hits0)+(misses1-misses0))
	runtime.KeepAlive(gt)

	t := cacheTarget(n)
	logf("verdict cache %s: %.0f B/entry, p50 %.2f us, p99 %.2f us, hit ratio %.3f, fill %.1f s",
		t, perEntry, median(lat), percentileOf(lat, 99), hitRatio, fill.Seconds())
	m := func(name, unit string, v float64) Metric {
		return Metric{Phase: "verdict-cache", Case: "gate.Manifest on a cached digest (in process)", Target: t, Name: name, Unit: unit, Value: v}
	}
	perKept := perEntry / max(hitRatio, 1e-9)
	out := []Metric{
		m("p50", "us", median(lat)),
		m("p99", "us", percentileOf(lat, 99)),
		m("bytes_per_entry", "B", perEntry),
		m("hit_ratio", "fraction", hitRatio),
		m("bytes_per_kept_entry", "B", perKept),
		m("heap_delta", "MiB", float64(int64(after)-int64(before))/mib),
		m("fill", "s", fill.Seconds()),
	}
	if heapTop != "" {
		out[4].Note = fmt.Sprintf("%.0f B per verdict kept, %.1f%% of the %d filled verdicts kept; "+
			"what the fill added to the heap, by allocating function (go tool pprof -sample_index=inuse_space -top -base):\n%s", perKept, 100*hitRatio, n, heapTop)
	}
	return out, nil
}

// heapAlloc is the live heap after two full collections.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// cacheLookups reads the gate's verdict cache hit and miss counters.
func cacheLookups(reg *prometheus.Registry) (hits, misses float64, err error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != "portcullis_verdict_cache_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "result" {
					continue
				}
				switch l.GetValue() {
				case "hit":
					hits = counterValue(m)
				case "miss":
					misses = counterValue(m)
				}
			}
		}
	}
	return hits, misses, nil
}

func counterValue(m *dto.Metric) float64 { return m.GetCounter().GetValue() }

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	runtime.GC()
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// heapProfileTop writes a heap profile of the filled cache to the run's
// directory (kept with -keep) and returns the top of
// `go tool pprof -sample_index=inuse_space -top -base base`: what the fill
// added to the heap, by allocating function.
func heapProfileTop(b *bench, n int, base string) string {
	path := b.path(fmt.Sprintf("verdict-cache-%d.heap.pprof", n))
	if err := writeHeapProfile(path); err != nil {
		return err.Error()
	}
	out, err := exec.Command("go", "tool", "pprof", "-sample_index=inuse_space", "-top", "-nodecount=12", "-base", base, path).CombinedOutput()
	if err != nil {
		return "go tool pprof: " + err.Error() + ": " + truncate(out, 400)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "flat ") {
			lines = lines[max(0, i-1):]
			break
		}
	}
	return strings.Join(lines, "\n")
}
