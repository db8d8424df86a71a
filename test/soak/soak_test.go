//go:build soak

// Package soak runs the portcullis binary under bounded, mixed hostile
// traffic and checks that it holds its bounds: goroutines back within 10%
// of their baseline, RSS at most the baseline plus the configured cache
// bounds (manifest cache, verdict store) plus 32 MiB, and no new metric
// series after the first cycle.
//
//	make soak-short   # about 60 s, part of make test
//	make soak         # 10 minutes, RSS and goroutines printed over time
//
// PORTCULLIS_SOAK sets the duration.
package soak

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/test/proc"
	"github.com/portcullis-dev/portcullis/verify/signing"
)

const (
	manifestCacheBytes = 8 << 20
	// verdictCacheEntries bounds the verdict store: at about 360 bytes an
	// entry (measured in-process: 100,000 verdicts with 3 grants each take
	// 145 MB of heap), the bound counted in the RSS limit.
	verdictCacheEntries = 50_000
	verdictCacheBytes   = verdictCacheEntries * 360
	clientIdle          = time.Second
	bigLayer            = 16 << 20
)

type soak struct {
	t        *testing.T
	up       *httptest.Server
	host     string
	addr     string // the proxy
	admin    string
	pid      int
	signer   *signing.Signer
	bigImage v1.Image
	unsigned v1.Image
	client   *http.Client
}

func TestSoak(t *testing.T) {
	dur := 60 * time.Second
	if v := os.Getenv("PORTCULLIS_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PORTCULLIS_SOAK: %v", err)
		}
		dur = d
	}
	s := start(t)
	deadline := time.Now().Add(dur)
	t.Logf("soak for %v: %-8s %10s %10s %8s", dur, "t", "RSS MiB", "goroutines", "series")
	begin := time.Now()
	report := func(quiet bool) (int64, int, map[string]bool) {
		g := 0
		if quiet {
			g = s.quietGoroutines()
		} else {
			g = s.goroutines()
		}
		rss, series := s.rss(), s.series()
		t.Logf("soak: %-8s %10.1f %10d %8d", time.Since(begin).Round(time.Second), float64(rss)/(1<<20), g, len(series))
		return rss, g, series
	}
	s.cycle(0)
	s.settle()
	rss0, g0, series0 := report(true)
	lastReport := time.Now()
	cycles := 1
	for ; time.Now().Before(deadline); cycles++ {
		s.cycle(cycles)
		if time.Since(lastReport) >= 10*time.Second {
			report(false)
			lastReport = time.Now()
		}
	}
	s.settle()
	rss, g, series := report(true)
	t.Logf("soak: %d cycles", cycles)
	if limit := g0 + g0/10; g > limit {
		t.Errorf("goroutines %d after the soak, baseline %d (limit %d)", g, g0, limit)
	}
	if limit := rss0 + manifestCacheBytes + verdictCacheBytes + 32<<20; rss > limit {
		t.Errorf("RSS %d MiB after the soak, baseline %d MiB (limit %d MiB)", rss>>20, rss0>>20, limit>>20)
	}
	var added []string
	for k := range series {
		if !series0[k] {
			added = append(added, k)
		}
	}
	sort.Strings(added)
	if len(added) > 0 {
		t.Errorf("%d metric series appeared after the first cycle, e.g. %s", len(added), strings.Join(added[:min(5, len(added))], ", "))
	}
}

// start runs an upstream (ggcr's registry with slow routes) and the
// portcullis binary in front of it, enforcing a key policy.
func start(t *testing.T) *soak {
	s := &soak{t: t, client: &http.Client{Timeout: 30 * time.Second}}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	s.up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/slow/") && !strings.Contains(r.URL.Path, "/blobs/") {
			trickle(w, r)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(s.up.Close)
	s.host = strings.TrimPrefix(s.up.URL, "http://")
	var err error
	if s.signer, err = signing.NewSigner(); err != nil {
		t.Fatal(err)
	}
	if s.bigImage, err = random.Image(bigLayer, 1); err != nil {
		t.Fatal(err)
	}
	s.push("acme/app", "big", s.bigImage, true)
	if s.unsigned, err = random.Image(1024, 1); err != nil {
		t.Fatal(err)
	}
	s.push("acme/app", "unsigned", s.unsigned, false)

	dir := t.TempDir()
	pem, _ := s.signer.PublicKeyPEM()
	write(t, dir, "cosign.pub", string(pem))
	write(t, dir, "policy.yaml", "policies:\n  - name: acme\n    images: [\"registry.soak/acme/**\"]\n    authorities: [{name: k, key: {path: cosign.pub}}]\n")
	addrs, err := proc.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	s.addr, s.admin = addrs[0], addrs[1]
	write(t, dir, "config.yaml", fmt.Sprintf(`listen: %s
adminListen: %s
shutdownDelay: 0s
policyFile: policy.yaml
defaultRegistry: registry.soak
upstreams:
  - registry: registry.soak
    endpoint: http://%s
    insecure: true
upstreamTimeout: 2s
clientIdleTimeout: %s
manifestCacheBytes: %d
verdictCacheEntries: %d
tagTTL: 1s
verdictTTL: 10s
denyTTL: 5s
cache: {dir: store, maxSize: 256MiB, maxStale: 1m}
`, s.addr, s.admin, s.host, clientIdle, manifestCacheBytes, verdictCacheEntries))
	bin := filepath.Join(dir, "portcullis")
	build := exec.Command("go", "build", "-o", bin, "./cmd/portcullis")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p, err := proc.Start("portcullis", filepath.Join(dir, "portcullis.log"), nil, bin, "serve", "--config", filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Logf("portcullis stop: %v\n%s", err, p.Log(0, 4096))
		}
	})
	s.pid = p.Pid()
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + s.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i == 100 || p.Exited() {
			t.Fatalf("portcullis did not become ready:\n%s", p.Log(0, 4096))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// trickle answers one byte every 200 ms, for at most 10 s, until the
// client goes: a slow upstream body.
func trickle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for range 50 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := w.Write([]byte(" ")); err != nil {
			return
		}
		_ = rc.Flush()
	}
}

func (s *soak) push(repo, tag string, img v1.Image, sign bool) v1.Hash {
	ref, err := name.NewTag(s.host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		s.t.Fatal(err)
	}
	d, _ := img.Digest()
	if sign {
		if err := s.signer.SignLegacy(ref.Context(), d); err != nil {
			s.t.Fatal(err)
		}
	}
	return d
}

// cycle is one round of mixed traffic, bounded in count and time.
func (s *soak) cycle(i int) {
	var wg sync.WaitGroup
	goDo := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	// Stalled readers: ask for the big layer and never read.
	layers, _ := s.bigImage.Layers()
	big, _ := layers[0].Digest()
	s.get("GET", "/v2/acme/app/manifests/big", nil) // the grant the layer needs
	var stalled []net.Conn
	for range 4 {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			s.t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /v2/acme/app/blobs/%s HTTP/1.1\r\nHost: %s\r\n\r\n", big, s.addr)
		stalled = append(stalled, c)
	}
	// Made-up methods, new every cycle.
	for range 10 {
		goDo(func() { s.get(randomMethod(), "/v2/acme/app/manifests/big", nil) })
	}
	// Slow upstream bodies (tags/list, referrers): cut at upstreamTimeout.
	for _, path := range []string{"/v2/slow/app/tags/list", "/v2/slow/app/referrers/sha256:" + strings.Repeat("0", 64)} {
		goDo(func() { s.get("GET", path, nil) })
	}
	// Huge artifacts: referrers listing 5,000 layers, refused by shape.
	for j := range 2 {
		goDo(func() { s.hugeArtifact(i, j) })
	}
	// Warm pulls, refusals and ranges.
	goDo(func() {
		d, _ := s.bigImage.Digest()
		s.get("GET", "/v2/acme/app/manifests/"+d.String(), nil)
		s.get("HEAD", "/v2/acme/app/manifests/big", nil)
		s.get("GET", "/v2/acme/app/manifests/unsigned", nil)
		s.get("HEAD", "/v2/acme/app/blobs/"+big.String(), nil)
		s.get("GET", "/v2/acme/app/blobs/"+big.String(), http.Header{"Range": {"bytes=0-1023"}})
		s.get("GET", "/v2/acme/app/blobs/"+big.String(), http.Header{"Range": {"bytes=1024-"}})
		s.get("GET", "/v2/quay.io/x/y/manifests/v1", nil)
		s.get("PUT", "/v2/acme/app/manifests/big", nil)
	})
	// A cold pull of a new signed image.
	goDo(func() {
		img, err := random.Image(2048, 2)
		if err != nil {
			s.t.Error(err)
			return
		}
		tag := fmt.Sprintf("cold%d", i)
		s.push("acme/app", tag, img, true)
		s.get("GET", "/v2/acme/app/manifests/"+tag, nil)
		cfg, _ := img.ConfigName()
		s.get("GET", "/v2/acme/app/blobs/"+cfg.String(), nil)
		ls, _ := img.Layers()
		for _, l := range ls {
			d, _ := l.Digest()
			s.get("GET", "/v2/acme/app/blobs/"+d.String(), nil)
		}
	})
	wg.Wait()
	for _, c := range stalled {
		c.Close()
	}
}

func (s *soak) hugeArtifact(i, j int) {
	var b bytes.Buffer
	subject, _ := s.bigImage.Digest()
	b.WriteString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[`)
	for k := range 5000 {
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"sha256:%064x","size":%d}`, i*10_000_000+j*10_000+k, 100)
	}
	fmt.Fprintf(&b, `],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":1}}`, subject)
	d := v1.Hash{Algorithm: "sha256", Hex: sha256Hex(b.Bytes())}
	req, _ := http.NewRequest(http.MethodPut, s.up.URL+"/v2/acme/app/manifests/"+d.String(), bytes.NewReader(b.Bytes()))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp, err := s.client.Do(req); err == nil {
		resp.Body.Close()
	}
	s.get("GET", "/v2/acme/app/manifests/"+d.String(), nil)
}

func (s *soak) get(method, path string, hdr http.Header) {
	req, err := http.NewRequestWithContext(context.Background(), method, "http://"+s.addr+path, nil)
	if err != nil {
		return // a method net/http will not send
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// settle waits for stalled transfers to be cut off, then closes the idle
// keep-alive connections on both sides of the proxy (the test's clients and
// the upstream's end of the proxy's pool): a pooled connection holds two
// goroutines for up to 90 s, which is reuse, not a leak, and would make the
// count depend on when it is sampled.
func (s *soak) settle() {
	time.Sleep(clientIdle + 1500*time.Millisecond)
	s.client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	s.up.CloseClientConnections()
}

// quietGoroutines is the proxy's lowest goroutine count over two seconds
// after settle: connections closed by the other side take a moment to be
// noticed, and a leak stays in the minimum.
func (s *soak) quietGoroutines() int {
	low := s.goroutines()
	for range 10 {
		time.Sleep(200 * time.Millisecond)
		low = min(low, s.goroutines())
	}
	return low
}

func (s *soak) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	s.t.Fatal("no VmRSS")
	return 0
}

func (s *soak) metrics() []string {
	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

func (s *soak) goroutines() int {
	for _, l := range s.metrics() {
		if v, ok := strings.CutPrefix(l, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	s.t.Fatal("no go_goroutines")
	return 0
}

// series is the set of metric series (name and labels) the proxy exports.
func (s *soak) series() map[string]bool {
	out := map[string]bool{}
	for _, l := range s.metrics() {
		if i := strings.LastIndexByte(l, ' '); i > 0 {
			out[l[:i]] = true
		}
	}
	return out
}

func randomMethod() string {
	b := make([]byte, 2048)
	_, _ = rand.Read(b)
	return "X" + strings.ToUpper(hex.EncodeToString(b))
}

func write(t *testing.T, dir, name, content string) {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
