//go:build e2e

package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/portcullis-dev/portcullis/fleet/redistest"
	"github.com/portcullis-dev/portcullis/test/proc"
	"github.com/portcullis-dev/portcullis/verify/signing"
)

// fleetPolicy enforces the test's key on acme/; the reload test narrows
// it (fleetPolicyNarrow) so that fleet-bad is no longer matched.
const (
	fleetPolicy = `policies:
  - name: acme-release
    images: ["registry.example/acme/**"]
    authorities: [{name: release-key, key: {path: cosign.pub}}]
default: deny
`
	fleetPolicyNarrow = `policies:
  - name: acme-release
    images: ["registry.example/acme/fleet-app*"]
    authorities: [{name: release-key, key: {path: cosign.pub}}]
default: allow
`
)

// fleet is three Portcullis replicas sharing one redis-server, behind a
// round-robin haproxy, in front of the shared distribution upstream. The
// policy file is one file all three read.
type fleet struct {
	t        *testing.T
	redis    *redistest.Server
	policy   string
	replicas []*proxyProc
	lb       string // haproxy's address
	d2       *day2  // pushes and signs with the policy's key
}

func startFleet(t *testing.T, e *env) *fleet {
	t.Helper()
	needTool(t, "haproxy")
	e.needProxy(t)
	signer, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signer.PublicKeyPEM()
	shared := t.TempDir()
	writeFile(t, filepath.Join(shared, "cosign.pub"), string(pub))
	f := &fleet{t: t, redis: redistest.Start(t), policy: filepath.Join(shared, "policy.yaml"),
		d2: &day2{t: t, up: e.upstreams["registry.example"].addr, signer: signer}}
	writeFile(t, f.policy, fleetPolicy)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	writeFile(t, filepath.Join(shared, "hmac"), hex.EncodeToString(key)+"\n")
	// redis.timeout 500ms, not the default 50 ms: three replicas under
	// -race beside the rest of the suite on two cores may take longer than
	// 50 ms for one Redis round trip, and a refused image whose parent
	// (an allowed index) the replica could not ask Redis about is no
	// decision (503), not a refusal.
	extra := fmt.Sprintf("policyFile: %s\nlogLevel: debug\nredis:\n  address: %s\n  timeout: 500ms\n  hmacKeyFile: %s\n",
		f.policy, f.redis.Addr, filepath.Join(shared, "hmac"))
	for i := range 3 {
		p, err := e.launchProxy(fmt.Sprintf("portcullis replica %d (%s)", i, t.Name()), t.TempDir(), extra, "json")
		if err != nil {
			t.Fatal(err)
		}
		f.replicas = append(f.replicas, p)
		t.Cleanup(func() {
			p.Stop() // a replica the test killed has exited already
			if log := p.Log(0, 1<<20); strings.Contains(log, "WARNING: DATA RACE") {
				t.Errorf("%s reported a data race:\n%s", p.Name(), log)
			}
			if t.Failed() {
				t.Logf("---- %s log ----\n%s", p.Name(), p.Log(0, 24000))
			}
		})
	}
	f.lb = f.startHAProxy()
	return f
}

// startHAProxy starts haproxy in front of the replicas: round robin,
// health checks on /readyz every 200 ms (two failed checks in a row mark a
// replica down, a check failing when it takes over a second: a replica
// busy under -race is not down), a connection that fails retried on another replica. It cannot
// retry a response already mid-stream. Its log is printed when the test
// fails.
func (f *fleet) startHAProxy() string {
	t := f.t
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var servers strings.Builder
	for i, p := range f.replicas {
		_, adminPort, _ := strings.Cut(p.adminAddr, ":")
		fmt.Fprintf(&servers, "  server r%d %s check port %s\n", i, p.addr, adminPort)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	writeFile(t, cfg, fmt.Sprintf(`global
  maxconn 1024
defaults
  mode http
  timeout connect 1s
  timeout check 1s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response response-timeout
frontend registry
  bind %s
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 200ms fall 2 rise 1
%s`, addr, servers.String()))
	p, err := startProcess("haproxy", filepath.Join(dir, "haproxy.log"), nil, needTool(t, "haproxy"), "-db", "-f", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("---- haproxy log ----\n%s", p.Log(0, 8000))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy on %s did not serve /v2/: %v; log:\n%s", addr, err, p.Log(0, 8000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getManifest asks addr for repo's manifest by reference and returns the
// status.
func getManifest(addr, repo, ref string) (int, error) {
	code, _, err := getManifestBody(addr, repo, ref)
	return code, err
}

// getManifestBody is getManifest with the start of the body (an error's
// JSON from a replica, or the balancer's own page).
func getManifestBody(addr, repo, ref string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/registry.example/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return resp.StatusCode, string(b), nil
}

// decisions counts the decisions made on digest d by all replicas (one
// "decision" log line each: one signature discovery upstream each).
func (f *fleet) decisions(d string) int {
	n := 0
	for _, p := range f.replicas {
		for _, a := range p.auditLines(f.t) {
			if a.Msg == "decision" && a.Digest == d {
				n++
			}
		}
	}
	return n
}

// metric sums the samples of a metric family on every live replica.
func (f *fleet) metric(family string) float64 {
	sum := 0.0
	for _, p := range f.replicas {
		if !p.Exited() {
			sum += metricSum(p.adminAddr, family)
		}
	}
	return sum
}

// metricSum sums the samples of a metric family on the admin listener at
// addr whose labels include every one of labels (`route="blob"`); 0 when
// it cannot be read.
func metricSum(addr, family string, labels ...string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, family+" ") && !strings.HasPrefix(line, family+"{") {
			continue
		}
		set, _, _ := strings.Cut(line, "} ")
		if !allIn(set, labels) {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

func allIn(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestFleetPulls: 64 concurrent first requests for one digest, spread
// over the three replicas by the balancer, make one decision (one
// signature discovery upstream), for an allowed image and a refused one;
// podman and containerd pulls through the balancer (manifest from one
// replica, layers from the others) succeed for the signed image and fail
// for the unsigned one.
func TestFleetPulls(t *testing.T) {
	e := setup(t)
	f := startFleet(t, e)
	good := f.d2.push("acme/fleet-app:v1")
	f.d2.sign(good)
	bad := f.d2.push("acme/fleet-bad:v1")
	for _, tc := range []struct {
		ref  name.Digest
		want int
	}{{good, http.StatusOK}, {bad, http.StatusForbidden}} {
		repo := tc.ref.Context().RepositoryStr()
		var wg sync.WaitGroup
		var mu sync.Mutex
		statuses := map[int]int{}
		odd := map[int]string{} // a body of each unexpected status
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body, err := getManifestBody(f.lb, repo, tc.ref.DigestStr())
				if err != nil {
					code, body = -1, err.Error()
				}
				mu.Lock()
				statuses[code]++
				if code != tc.want {
					odd[code] = body
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if statuses[tc.want] != 64 {
			t.Errorf("%s: statuses %v, want 64 x %d; bodies: %v", repo, statuses, tc.want, odd)
		}
		var n int
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if n = f.decisions(tc.ref.DigestStr()); n >= 1 {
				break
			}
		}
		if n != 1 {
			t.Errorf("%s: %d decisions (signature discoveries) for 64 requests on 3 replicas, want 1", repo, n)
		}
	}

	// podman: a fresh signed image, pulled through the balancer.
	podman := needTool(t, "podman")
	env, global, pull := podmanSetup(t, f.lb)
	fresh := f.d2.push("acme/fleet-app-podman:v1")
	f.d2.sign(fresh)
	hitsBefore := f.metric("portcullis_redis_verdict_hits_total")
	run(t, env, podman, append(append(append(slices.Clone(global), "pull", "--quiet"), pull...), "registry.example/acme/fleet-app-podman:v1")...)
	if f.metric("portcullis_redis_verdict_hits_total") <= hitsBefore {
		t.Error("no replica learned a verdict or grant from another during the podman pull: was it served by one replica only?")
	}
	r := runCmd(t.Context(), env, podman, append(append(append(slices.Clone(global), "pull", "--quiet"), pull...), "registry.example/acme/fleet-bad:v1")...)
	if r.err == nil || !strings.Contains(r.stderr, "403") && !strings.Contains(strings.ToLower(r.stderr), "denied") {
		t.Errorf("podman pull of the unsigned image through the balancer: %v\n%s", r.err, r.stderr)
	}

	// containerd.
	ctr := needTool(t, "ctr")
	socket := startContainerd(t)
	hostsDir := renderHostsDir(t, f.lb, "registry.example")
	ctrFresh := f.d2.push("acme/fleet-app-ctr:v1")
	f.d2.sign(ctrFresh)
	run(t, nil, ctr, "--address", socket, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", "registry.example/acme/fleet-app-ctr:v1")
	if r := runCmd(t.Context(), nil, ctr, "--address", socket, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native",
		"registry.example/acme/fleet-bad:v1"); r.err == nil {
		t.Error("ctr pulled the unsigned image through the balancer")
	}
}

// TestFleetFaults: a reload of the shared policy file changes every
// replica's verdicts within 3 s; 20 pulls go on while one replica is
// stopped (SIGTERM) during a pull and another killed (SIGKILL) between
// pulls; with redis-server killed, nothing refused is served and pulls
// through the remaining replica keep working.
func TestFleetFaults(t *testing.T) {
	e := setup(t)
	f := startFleet(t, e)
	crane := needTool(t, "crane")
	good := f.d2.push("acme/fleet-app-faults:v1")
	f.d2.sign(good)
	bad := f.d2.push("acme/fleet-bad-faults:v1")
	badRepo := bad.Context().RepositoryStr()

	// Reload: every replica refuses fleet-bad-faults, then, after the
	// file changes, serves it within 3 s.
	for _, p := range f.replicas {
		if code, err := getManifest(p.addr, badRepo, "v1"); err != nil || code != http.StatusForbidden {
			t.Fatalf("%s: unsigned image before the reload: %d %v", p.Name(), code, err)
		}
	}
	writeFile(t, f.policy, fleetPolicyNarrow)
	changed := time.Now()
	for _, p := range f.replicas {
		for {
			code, err := getManifest(p.addr, badRepo, "v1")
			if err == nil && code == http.StatusOK {
				break
			}
			if time.Since(changed) > 3*time.Second {
				t.Fatalf("%s still answers %d %v 3 s after the shared policy changed", p.Name(), code, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("every replica's verdict changed %v after the policy file did", time.Since(changed).Round(time.Millisecond))
	writeFile(t, f.policy, fleetPolicy)
	time.Sleep(3 * time.Second) // back to refusing fleet-bad-*

	// 20 pulls; replica 0 stopped during pull 5, replica 1 killed before
	// pull 12.
	pullGood := func(i int) cmdResult {
		return runCmd(t.Context(), nil, crane, "pull", "--insecure", f.lb+"/registry.example/acme/fleet-app-faults:v1",
			filepath.Join(t.TempDir(), fmt.Sprintf("pull-%d.tar", i)))
	}
	for i := range 20 {
		var stopped chan error
		switch i {
		case 5:
			stopped = make(chan error, 1)
			go func() {
				time.Sleep(20 * time.Millisecond) // within the pull
				stopped <- f.replicas[0].Stop()
			}()
		case 12:
			if err := syscall.Kill(f.replicas[1].Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-f.replicas[1].Done()
			time.Sleep(500 * time.Millisecond) // haproxy's checks see it down (inter 200ms, fall 2); a connection refused before is retried elsewhere
		}
		if r := pullGood(i); r.err != nil {
			t.Errorf("pull %d through the balancer failed: %v\n%s", i, r.err, r.stderr)
		}
		if stopped != nil {
			if err := <-stopped; err != nil {
				t.Errorf("replica 0 did not exit cleanly on SIGTERM: %v", err)
			}
		}
	}

	// redis-server killed during pulls: the last replica is alone; the
	// signed image still pulls, the unsigned one is never served, through
	// the balancer and directly, and /readyz says why while answering 200.
	last := f.replicas[2]
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(30 * time.Millisecond)
		f.redis.Stop()
	}()
	for i := range 5 {
		if r := pullGood(100 + i); r.err != nil {
			// Through the balancer a layer asked of a replica that cannot
			// reach the grant may get 503 (no decision), never a refusal
			// of what is allowed being served as allowed.
			if !strings.Contains(r.stderr, "503") && !strings.Contains(r.stderr, "UNAVAILABLE") {
				t.Errorf("pull %d with Redis going down failed other than 503: %v\n%s", i, r.err, r.stderr)
			}
		}
		for _, addr := range []string{f.lb, last.addr} {
			if code, err := getManifest(addr, badRepo, "v1"); err == nil && code == http.StatusOK {
				t.Fatalf("the unsigned image was served through %s with Redis going down", addr)
			}
		}
	}
	wg.Wait()
	for i := range 3 {
		r := runCmd(t.Context(), nil, crane, "pull", "--insecure", last.addr+"/registry.example/acme/fleet-app-faults:v1",
			filepath.Join(t.TempDir(), fmt.Sprintf("alone-%d.tar", i)))
		if r.err != nil {
			t.Errorf("pull %d through the replica left, Redis down: %v\n%s", i, r.err, r.stderr)
		}
	}
	other := f.d2.push("acme/fleet-app-alone:v1")
	f.d2.sign(other)
	if code, err := getManifest(last.addr, other.Context().RepositoryStr(), "v1"); err != nil || code != http.StatusOK {
		t.Errorf("a new signed image with Redis down, directly: %d %v", code, err)
	}
	resp, err := http.Get("http://" + last.adminAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 512)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body[:n]), "degraded: redis unavailable") {
		t.Errorf("/readyz with Redis down: %d %q, want 200 and degraded: redis unavailable", resp.StatusCode, body[:n])
	}
}
