package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	gib        = 1 << 30
	mib        = 1 << 20
	copyBuffer = 1 << 20
)

// newBlobReader is size bytes of ChaCha8 output seeded by seed: the same
// content on every run, never held in memory.
func newBlobReader(seed uint64, size int64) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// noProxyClient talks to loopback servers directly, without
// transparent gzip, keeping its connections alive.
func noProxyClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}}
}

// uploadBlob streams r to repo with the OCI upload API (POST, one chunked
// PATCH, PUT with the digest computed on the way) and returns the digest.
func uploadBlob(ctx context.Context, base, repo string, r io.Reader) (string, error) {
	client := noProxyClient()
	defer client.CloseIdleConnections()
	loc, err := uploadStep(ctx, client, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	loc, err = uploadStep(ctx, client, http.MethodPatch, loc, io.TeeReader(r, h), http.StatusAccepted)
	if err != nil {
		return "", err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("upload location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	if _, err := uploadStep(ctx, client, http.MethodPut, u.String(), nil, http.StatusCreated); err != nil {
		return "", err
	}
	return digest, nil
}

// uploadBytes uploads a small blob.
func uploadBytes(ctx context.Context, base, repo string, b []byte) (string, error) {
	return uploadBlob(ctx, base, repo, bytes.NewReader(b))
}

// uploadStep sends one request of an upload and returns the absolute
// Location of the next step.
func uploadStep(ctx context.Context, c *http.Client, method, target string, body io.Reader, want int) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", method, target, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		return "", fmt.Errorf("%s %s: %s: %s", method, target, resp.Status, msg)
	}
	loc, err := resp.Location()
	if errors.Is(err, http.ErrNoLocation) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: location: %w", method, target, err)
	}
	return loc.String(), nil
}

// putManifest tags a manifest.
func putManifest(ctx context.Context, base, repo, tag, mediaType string, body []byte) error {
	target := base + "/v2/" + repo + "/manifests/" + tag
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("PUT %s: %w", target, err)
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := noProxyClient().Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", target, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT %s: %s: %s", target, resp.Status, msg)
	}
	return nil
}

// getBlob GETs a whole blob, discarding it, and returns how long it took.
// It fails unless exactly size bytes arrive, and, when verify is set,
// unless they hash to digest (which costs the client CPU: verified GETs are
// not the timed ones).
func getBlob(ctx context.Context, c *http.Client, target, digest string, size int64, verify bool) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", target, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("GET %s: %s: %s", target, resp.Status, msg)
	}
	var h hash.Hash
	if verify {
		h = sha256.New()
	}
	n, err := drain(resp.Body, h)
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("GET %s: body after %d bytes: %w", target, n, err)
	}
	if n != size {
		return 0, fmt.Errorf("GET %s: got %d bytes, want %d", target, n, size)
	}
	if h != nil {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
			return 0, fmt.Errorf("GET %s: body hashes to %s, want %s", target, got, digest)
		}
	}
	return elapsed, nil
}

// drain reads r to the end in large reads, feeding h when not nil.
func drain(r io.Reader, h hash.Hash) (int64, error) {
	buf := make([]byte, copyBuffer)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if h != nil {
			h.Write(buf[:k])
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// runBlobPhase GETs the large blob through every target: first the
// image's manifest by tag (as a client pulling it would; Portcullis serves
// a blob only once an allowed manifest references it), then one verified,
// untimed-for-comparison first GET (for the distribution proxy, the one
// that fills its storage), then -blob-runs timed GETs, interleaved across
// targets, with the CPU time of the target and the upstream around each.
func runBlobPhase(ctx context.Context, b *bench, f *fleet) ([]Metric, error) {
	fix := b.fix
	clients := map[string]*http.Client{}
	var ms []Metric
	if f.target(targetPortcullisStore) != nil {
		// Recycle page-cache memory before anything is timed: on a freshly
		// booted VM the first write into memory the guest never touched
		// costs ~10x a steady-state write (the hypervisor backs each page
		// on first touch), and would land on whichever target writes the
		// blob first. A host that has run for a while recycles its page
		// cache; so does this. Its cost is reported as its own row.
		m, err := fileWriteCost(b.path("recycle"), "file write, first pass", recycleBlobs*fix.BlobSize)
		if err != nil {
			return nil, err
		}
		logf("blob: writing %d MiB to recycle page-cache memory cost %.2f CPU s/GiB", recycleBlobs*fix.BlobSize/mib, m.Value)
		// The floor of keeping a blob, on recycled memory (as the
		// targets' writes below are).
		w, err := fileWriteCost(b.path("write-cost"), "file write", 256*mib)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m, w)
	}
	for _, t := range f.targets {
		clients[t.name] = noProxyClient()
		defer clients[t.name].CloseIdleConnections()
		if _, err := manifestGetter(clients[t.name], t.base, fix.BlobRepo, fix.BlobTag, fix.BlobManifest)(ctx); err != nil {
			return nil, fmt.Errorf("%s: manifest of the blob image: %w", t.name, err)
		}
		reported, reporting := int64(0), false
		if t.name == targetPortcullisStore {
			reported, reporting = reportedKiB()
		}
		m, err := startCPU(t.proc.Pid())
		if err != nil {
			return nil, err
		}
		d, err := getBlob(ctx, clients[t.name], blobURL(t, fix), fix.BlobDigest, fix.BlobSize, true)
		if err != nil {
			return nil, fmt.Errorf("%s: first GET: %w", t.name, err)
		}
		cpu, err := m.stop()
		if err != nil {
			return nil, err
		}
		logf("blob: %s first GET (verified) %.0f MiB/s, %.2f CPU s", t.name, mibPerSec(fix.BlobSize, d), cpu[0])
		ms = append(ms, blobMetric(t.name, "first_get_verified", "MiB/s", mibPerSec(fix.BlobSize, d), nil),
			blobMetric(t.name, "first_get_cpu_per_gib", "CPU s/GiB", cpu[0]/(float64(fix.BlobSize)/gib), nil))
		if after, ok := reportedKiB(); reporting && ok {
			ms = append(ms, blobMetric(t.name, "first_get_reported_mib", "MiB", float64(after-reported)/1024, nil))
		}
		if t.name == targetPortcullisStore {
			// The first GET filled the store; the timed GETs read it.
			if err := waitStored(ctx, t, 1); err != nil {
				return nil, err
			}
		}
	}
	runs := map[string]*blobRuns{}
	for i := 0; i < b.cfg.blobRuns; i++ {
		for _, t := range f.targets {
			if runs[t.name] == nil {
				runs[t.name] = &blobRuns{}
			}
			if err := runs[t.name].measure(ctx, clients[t.name], t, f, fix); err != nil {
				return nil, fmt.Errorf("%s: timed GET %d: %w", t.name, i+1, err)
			}
		}
	}
	for _, t := range f.targets {
		ms = append(ms, runs[t.name].metrics(t.name, fix.BlobSize)...)
	}
	if t := f.target(targetPortcullisStore); t != nil {
		m, err := concurrentGets(ctx, t, fix, 4)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	ms = append(ms, sha256Cost())
	return ms, nil
}

// recycleBlobs is how many blobs' worth of page cache the blob phase
// writes and removes before it times anything (more than its targets then
// write: the distribution proxy's copy, the store's, the write-cost file).
const recycleBlobs = 4

// reportedKiB is how much freed memory this VM has handed back to its
// host so far (free page reporting: virtio-balloon's, as Firecracker and
// QEMU offer it), where the kernel counts it
// (/sys/module/page_reporting/parameters/reported_kib; not every kernel
// does). Memory handed back is backed again on its next use, at the cost
// of a first touch: a page-cache write into it costs several times a
// steady-state one, which the blob phase's recycling cannot prevent.
func reportedKiB() (int64, bool) {
	b, err := os.ReadFile("/sys/module/page_reporting/parameters/reported_kib")
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

// fileWriteCost is the CPU time (this process's, user and system) of
// writing n bytes (a multiple of 256 KiB) to a new file at path, in
// 256 KiB writes as a store's fill does, per GiB, as the blob phase's row
// name: the floor of keeping a blob on this machine's disk.
func fileWriteCost(path, name string, n int64) (Metric, error) {
	f, err := os.Create(path)
	if err != nil {
		return Metric{}, err
	}
	defer os.Remove(path)
	defer f.Close()
	m, err := startCPU(os.Getpid())
	if err != nil {
		return Metric{}, err
	}
	buf := make([]byte, 256<<10)
	for i := int64(0); i < n/int64(len(buf)); i++ {
		if _, err := f.Write(buf); err != nil {
			return Metric{}, err
		}
	}
	cpu, err := m.stop()
	if err != nil {
		return Metric{}, err
	}
	return Metric{Phase: "blob", Case: name, Target: "in-process", Name: "cpu_per_gib", Unit: "CPU s/GiB",
		Value: cpu[0] * gib / float64(n)}, nil
}

// concurrentGets sends n concurrent GETs of the blob to t (each on its own
// connection) and reports their total throughput; the phase's peak RSS
// covers them.
func concurrentGets(ctx context.Context, t *target, fix fixtures, n int) (Metric, error) {
	start := time.Now()
	errs := make(chan error, n)
	for range n {
		go func() {
			c := noProxyClient()
			defer c.CloseIdleConnections()
			_, err := getBlob(ctx, c, blobURL(t, fix), fix.BlobDigest, fix.BlobSize, false)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			return Metric{}, fmt.Errorf("%s: %d concurrent GETs: %w", t.name, n, err)
		}
	}
	rate := mibPerSec(int64(n)*fix.BlobSize, time.Since(start))
	logf("blob: %s %d concurrent GETs, %.0f MiB/s in all", t.name, n, rate)
	return blobMetric(t.name, fmt.Sprintf("concurrent_%d_throughput", n), "MiB/s", rate, nil), nil
}

// sha256Cost is the CPU time of SHA-256 over a GiB in this process (one
// core), the floor of verifying a blob's digest as it streams.
func sha256Cost() Metric {
	buf := make([]byte, copyBuffer)
	h := sha256.New()
	const n = 256 * mib
	start := time.Now()
	for i := 0; i < n/copyBuffer; i++ {
		h.Write(buf)
	}
	h.Sum(nil)
	return Metric{Phase: "blob", Case: "sha256", Target: "in-process", Name: "cpu_per_gib", Unit: "CPU s/GiB",
		Value: time.Since(start).Seconds() * gib / n}
}

// waitStored waits until t's content store has committed at least n blobs
// (portcullis_store_commits_total{kind="blob"}).
func waitStored(ctx context.Context, t *target, n float64) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if v, err := scrapeMetric(ctx, t.admin, `portcullis_store_commits_total{kind="blob"}`); err == nil && v >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: the store did not commit %v blobs in 2 minutes", t.name, n)
}

// blobRuns accumulates the timed GETs of one target.
type blobRuns struct {
	rates                 []float64 // MiB/s
	cpu, upCPU, clientCPU float64   // seconds, summed over runs
	n                     int
}

func (r *blobRuns) measure(ctx context.Context, c *http.Client, t *target, f *fleet, fix fixtures) error {
	m, err := startCPU(t.proc.Pid(), f.upstream.Pid(), os.Getpid())
	if err != nil {
		return err
	}
	d, err := getBlob(ctx, c, blobURL(t, fix), fix.BlobDigest, fix.BlobSize, false)
	if err != nil {
		return err
	}
	cpu, err := m.stop()
	if err != nil {
		return err
	}
	rate := mibPerSec(fix.BlobSize, d)
	logf("blob: %s GET %.0f MiB/s, %.2f CPU s", t.name, rate, cpu[0])
	r.rates = append(r.rates, rate)
	r.cpu += cpu[0]
	r.upCPU += cpu[1]
	r.clientCPU += cpu[2]
	r.n++
	return nil
}

func (r *blobRuns) metrics(name string, size int64) []Metric {
	gibs := float64(size) * float64(r.n) / gib
	ms := []Metric{
		blobMetric(name, "throughput", "MiB/s", median(r.rates), r.rates),
		blobMetric(name, "cpu_per_gib", "CPU s/GiB", r.cpu/gibs, nil),
	}
	if name != targetUpstream {
		ms = append(ms, blobMetric(name, "upstream_cpu_per_gib", "CPU s/GiB", r.upCPU/gibs, nil))
	}
	return append(ms, blobMetric(name, "client_cpu_per_gib", "CPU s/GiB", r.clientCPU/gibs, nil))
}

func blobMetric(target, name, unit string, v float64, samples []float64) Metric {
	return Metric{Phase: "blob", Case: "full GET", Target: target, Name: name, Unit: unit, Value: v, Samples: samples}
}

func blobURL(t *target, fix fixtures) string {
	return t.base + "/v2/" + fix.BlobRepo + "/blobs/" + fix.BlobDigest
}

func mibPerSec(size int64, d time.Duration) float64 {
	return float64(size) / mib / d.Seconds()
}
