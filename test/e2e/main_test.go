//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/test/proc"
)

// directEnv, when "1", points clients at the upstream registry instead of
// the proxy (see the package comment).
const directEnv = "PORTCULLIS_E2E_DIRECT"

// env is the shared test environment: upstream registries filled with the
// fixtures and the proxy in front of them, started once for all tests.
type env struct {
	dir       string // scratch directory, removed at the end
	binary    string // the built portcullis binary
	addr      string // host:port clients pull from (the proxy, or an upstream in direct mode)
	adminAddr string // the proxy's admin listener
	direct    bool
	proxy     *process            // nil in direct mode
	upstreams map[string]*process // by registry name ("registry.example", "docker.io")
	procs     []*process          // everything started, in start order
	fixtures  map[string]fixture  // by client reference
}

var shared struct {
	once sync.Once
	env  *env
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e := shared.env; e != nil {
		if err := e.close(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e teardown:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// setup returns the shared environment, starting it on first use. A failed
// start fails (or, for a missing tool outside CI, skips) every test.
func setup(t *testing.T) *env {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.env, shared.err = start(ctx)
	})
	if shared.err != nil {
		if _, ok := shared.err.(*missingToolError); ok {
			skipOrFail(t, shared.err)
		}
		t.Fatalf("e2e environment: %v", shared.err)
	}
	shared.env.logOnFailure(t)
	return shared.env
}

// needProxy skips tests of proxy behaviour in direct mode.
func (e *env) needProxy(t *testing.T) {
	t.Helper()
	if e.direct {
		t.Skipf("%s=1: no proxy", directEnv)
	}
}

// fixture returns the fixture pushed as ref.
func (e *env) fixture(t *testing.T, ref string) fixture {
	t.Helper()
	f, ok := e.fixtures[ref]
	if !ok {
		t.Fatalf("no fixture %q", ref)
	}
	return f
}

// logOnFailure makes a failing test log what the servers wrote during it.
func (e *env) logOnFailure(t *testing.T) {
	offsets := map[*process]int64{}
	for _, p := range e.procs {
		offsets[p] = p.LogSize()
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range e.procs {
			t.Logf("---- %s log during this test (%s) ----\n%s", p.Name(), p.LogPath(), p.Log(offsets[p], 16000))
		}
	})
}

// start creates the environment, or returns why it could not.
func start(ctx context.Context) (*env, error) {
	registryBin, err := lookTool("registry")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "portcullis-e2e-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, direct: os.Getenv(directEnv) == "1", upstreams: map[string]*process{}}
	if err := e.start(ctx, registryBin); err != nil {
		return nil, e.failStart(err)
	}
	return e, nil
}

// start builds the proxy, starts the upstreams, pushes the fixtures and
// starts the proxy (in direct mode: only the upstream and the fixtures).
func (e *env) start(ctx context.Context, registryBin string) (err error) {
	dir := e.dir
	if !e.direct {
		if e.binary, err = buildProxy(ctx, dir); err != nil {
			return err
		}
	}
	names := []string{"registry.example", "docker.io"}
	if e.direct {
		names = names[:1] // one registry stands in for both
	}
	for _, n := range names {
		p, err := startRegistry(registryBin, filepath.Join(dir, "upstream-"+n), n)
		if err != nil {
			return err
		}
		e.procs = append(e.procs, p)
		e.upstreams[n] = p
	}
	if e.direct {
		e.upstreams["docker.io"] = e.upstreams["registry.example"]
	}
	if err := e.push(ctx); err != nil {
		return err
	}
	if e.direct {
		e.addr = e.upstreams["registry.example"].addr
		return nil
	}
	return e.startProxy()
}

// failStart stops what start started and attaches its logs to err.
func (e *env) failStart(err error) error {
	var b strings.Builder
	fmt.Fprint(&b, err)
	for _, p := range e.procs {
		if !strings.Contains(err.Error(), p.LogPath()) {
			fmt.Fprintf(&b, "\n---- %s log ----\n%s", p.Name(), p.Log(0, 8000))
		}
	}
	if cerr := e.close(); cerr != nil {
		fmt.Fprintf(&b, "\nteardown: %v", cerr)
	}
	if _, ok := err.(*missingToolError); ok {
		return err
	}
	return fmt.Errorf("%s", b.String())
}

// close stops all processes (the proxy first) and removes the scratch
// directory. It reports a proxy that exited uncleanly or logged a data race.
func (e *env) close() error {
	var err error
	for i := len(e.procs) - 1; i >= 0; i-- {
		if p := e.procs[i]; p == e.proxy {
			err = checkProxyStop(p)
		} else {
			p.Stop()
		}
	}
	if os.Getenv("PORTCULLIS_E2E_KEEP") == "" {
		os.RemoveAll(e.dir)
	}
	return err
}

// repoRoot is the module root (the directory of go.mod).
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the portcullis module")
	}
	return filepath.Dir(mod), nil
}

// buildProxy builds ./cmd/portcullis with the race detector into dir.
func buildProxy(ctx context.Context, dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "portcullis")
	cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "./cmd/portcullis")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -race ./cmd/portcullis: %v\n%s", err, out)
	}
	return bin, nil
}

// startRegistry starts a CNCF distribution registry on a free loopback port
// with its storage under dir.
func startRegistry(bin, dir, registry string) (*process, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	// No tracing exporter: the registry would otherwise try to reach an
	// OpenTelemetry collector.
	p, err := startProcess("upstream "+registry+" (distribution at "+addr+")", filepath.Join(dir, "registry.log"),
		[]string{"OTEL_TRACES_EXPORTER=none"}, bin, "serve", cfgPath)
	if err != nil {
		return nil, err
	}
	p.addr = addr
	if err := waitHTTP(p, "http://"+addr+"/v2/"); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// push builds the fixtures and writes them to their upstreams. In direct
// mode each is also written under "<registry>/<repo>", the path-prefixed name
// clients configured for the proxy ask for.
func (e *env) push(ctx context.Context) error {
	fixtures, objs, err := buildFixtures()
	if err != nil {
		return fmt.Errorf("build fixtures: %w", err)
	}
	for ref, obj := range objs {
		registry, rest := registryOf(ref)
		addr := e.upstreams[registry].addr
		if err := pushTo(ctx, addr, rest, obj); err != nil {
			return fmt.Errorf("push %s to %s: %w", ref, addr, err)
		}
		if e.direct {
			if err := pushTo(ctx, addr, ref, obj); err != nil {
				return fmt.Errorf("push %s to %s: %w", ref, addr, err)
			}
		}
	}
	e.fixtures = fixtures
	return nil
}

// startProxy starts the shared proxy: no policy file but "unverified: true"
// (a plain mirror, for the protocol and client tests), its config and log in
// the scratch directory.
func (e *env) startProxy() error {
	p, err := e.launchProxy("portcullis", e.dir, "unverified: true\n", "console")
	if err != nil {
		return err
	}
	e.procs = append(e.procs, p.process)
	e.proxy, e.addr, e.adminAddr = p.process, p.addr, p.adminAddr
	return nil
}

// proxyProc is a running `portcullis serve`.
type proxyProc struct {
	*process          // addr is the registry listener
	adminAddr  string // the admin listener (/readyz, /metrics)
	dir        string // holds its config and the files the config names
	configPath string
}

// writeProxyConfig writes dir/portcullis.yaml: a proxy on fresh loopback
// ports in front of e's upstreams, followed by the YAML lines in extra (for
// example "policyFile: policy.yaml\n", relative to dir).
func (e *env) writeProxyConfig(dir, extra string) (cfgPath, addr, admin string, err error) {
	addrs, err := proc.FreeAddrs(2)
	if err != nil {
		return "", "", "", err
	}
	addr, admin = addrs[0], addrs[1]
	cfg := fmt.Sprintf(`listen: %s
adminListen: %s
shutdownDelay: 0s
upstreams:
  - registry: registry.example
    endpoint: http://%s
    insecure: true
  - registry: docker.io
    endpoint: http://%s
    insecure: true
defaultRegistry: docker.io
tagTTL: 30s
upstreamTimeout: 20s
shutdownTimeout: 5s
`, addr, admin, e.upstreams["registry.example"].addr, e.upstreams["docker.io"].addr) + extra
	cfgPath = filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return "", "", "", err
	}
	return cfgPath, addr, admin, nil
}

// launchProxy writes the config (see writeProxyConfig) into dir, starts
// `portcullis serve` with its log in dir/portcullis.log, and waits until it
// is ready. The caller stops it (checkProxyStop).
func (e *env) launchProxy(name, dir, extra, logFormat string) (*proxyProc, error) {
	cfgPath, addr, admin, err := e.writeProxyConfig(dir, extra)
	if err != nil {
		return nil, err
	}
	p, err := startProcess(name, filepath.Join(dir, "portcullis.log"), nil,
		e.binary, "serve", "--config", cfgPath, "--log-format", logFormat)
	if err != nil {
		return nil, err
	}
	p.addr = addr
	if err := waitHTTP(p, "http://"+admin+"/readyz"); err != nil {
		p.Stop()
		return nil, err
	}
	return &proxyProc{process: p, adminAddr: admin, dir: dir, configPath: cfgPath}, nil
}
