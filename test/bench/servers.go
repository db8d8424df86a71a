package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/test/proc"
)

// Names of the targets, as they appear in the report.
const (
	targetUpstream   = "upstream"
	targetDistProxy  = "distribution-proxy"
	targetRevProxy   = "reverse-proxy"
	targetPortcullis = "portcullis"
	// targetPortcullisCounted is a second Portcullis behind the counting
	// proxy, beside one straight on the upstream (fleetSpec.countedTwin).
	targetPortcullisCounted = "portcullis-counted"
	// targetPortcullisStore is Portcullis with a content store (cache.dir)
	// of its own, fresh for each phase.
	targetPortcullisStore = "portcullis-store"
)

const startTimeout = 30 * time.Second

// procSet remembers every process started, so all are stopped on exit.
type procSet struct {
	mu    sync.Mutex
	procs []*proc.Process
}

// start starts a server with proc.Start and remembers it.
func (s *procSet) start(name, logPath string, env []string, bin string, args ...string) (*proc.Process, error) {
	p, err := proc.Start(name, logPath, env, bin, args...)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// stopAll stops every process ever started, in parallel.
func (s *procSet) stopAll() {
	s.mu.Lock()
	procs := s.procs
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { _ = p.Stop() })
	}
	wg.Wait()
}

// waitReady polls url until it answers 200, the process exits, ctx ends
// or startTimeout passes.
func waitReady(ctx context.Context, p *proc.Process, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("%s exited while starting (%v); log:\n%s", p.Name(), p.Err(), p.Log(0, 4000))
		}
		if last = getOK(ctx, client, url); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %v: %w; log:\n%s", p.Name(), startTimeout, last, p.Log(0, 4000))
}

func getOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// target is one server the load is sent to.
type target struct {
	name  string
	base  string        // http://127.0.0.1:port
	proc  *proc.Process // the process answering
	admin string        // Portcullis's admin listener (/metrics), http://127.0.0.1:port; "" for others
}

// fleet is the servers of one phase: the upstream and every target.
type fleet struct {
	upstream *proc.Process
	targets  []*target
	// counter, when the phase asked for it, sits between Portcullis (or
	// its counted twin) and the upstream and counts what Portcullis asks.
	counter *countingProxy
}

// target returns the fleet's target called name, or nil.
func (f *fleet) target(name string) *target {
	for _, t := range f.targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

// fleetSpec says which servers a phase needs besides the upstream.
type fleetSpec struct {
	proxies []string // targetDistProxy, targetRevProxy, targetPortcullis, in order
	// counting puts an in-process counting reverse proxy between
	// Portcullis and the upstream.
	counting bool
	// countedTwin adds a second Portcullis (targetPortcullisCounted)
	// behind the counting proxy, so that the first, straight on the
	// upstream, is timed without the extra hop.
	countedTwin bool
	// baseline adds, after targetPortcullis, the Portcullis of -baseline
	// (targetBaseline) straight on the upstream, when one was given.
	baseline bool
}

var allTargets = fleetSpec{proxies: []string{targetDistProxy, targetRevProxy, targetPortcullis}, baseline: true}

// blobFleet adds Portcullis with a content store to allTargets.
var blobFleet = fleetSpec{proxies: []string{targetDistProxy, targetRevProxy, targetPortcullis, targetPortcullisStore}, baseline: true}

// startFleet starts the upstream and the proxies of spec in front of it.
func (b *bench) startFleet(ctx context.Context, phase string, spec fleetSpec) (_ *fleet, err error) {
	f := &fleet{}
	defer func() {
		if err != nil {
			f.stop()
		}
	}()
	if f.upstream, err = b.startUpstream(ctx, phase); err != nil {
		return nil, err
	}
	f.targets = append(f.targets, &target{name: targetUpstream, base: "http://" + b.upAddr, proc: f.upstream})
	portcullisUpstream := "http://" + b.upAddr
	if spec.counting || spec.countedTwin {
		if f.counter, err = startCountingProxy("http://"+b.upAddr, b.cfg.trace); err != nil {
			return nil, err
		}
	}
	if spec.counting {
		portcullisUpstream = f.counter.url
	}
	for _, name := range spec.proxies {
		var t *target
		switch name {
		case targetDistProxy:
			t, err = b.startDistProxy(ctx, phase)
		case targetRevProxy:
			t, err = b.startRevProxy(ctx, phase)
		case targetPortcullis:
			t, err = b.startPortcullis(ctx, phase, portcullisUpstream, false)
			if err == nil && spec.baseline && b.bins.baseline != "" {
				f.targets = append(f.targets, t)
				t, err = b.startBaseline(ctx, phase)
			}
		case targetPortcullisStore:
			t, err = b.startPortcullis(ctx, phase+"-store", portcullisUpstream, true)
		default:
			err = fmt.Errorf("unknown target %q", name)
		}
		if err != nil {
			return nil, err
		}
		f.targets = append(f.targets, t)
	}
	if spec.countedTwin {
		t, err := b.startPortcullis(ctx, phase+"-counted", f.counter.url, false)
		if err != nil {
			return nil, err
		}
		t.name = targetPortcullisCounted
		f.targets = append(f.targets, t)
	}
	return f, nil
}

// stop stops the fleet's processes, proxies first.
func (f *fleet) stop() {
	for i := len(f.targets) - 1; i >= 0; i-- {
		f.targets[i].proc.Stop()
	}
	if f.counter != nil {
		f.counter.close()
	}
	if f.upstream != nil {
		_ = f.upstream.Stop()
	}
}

// startUpstream starts the upstream distribution registry on b.upAddr with
// its storage in data/upstream (kept across phases).
func (b *bench) startUpstream(ctx context.Context, phase string) (*proc.Process, error) {
	cfgPath := b.path("upstream-" + phase + ".yml")
	if err := writeRegistryConfig(cfgPath, b.upAddr, b.path("data", "upstream"), ""); err != nil {
		return nil, err
	}
	return b.startRegistry(ctx, targetUpstream+"-"+phase, b.upAddr, cfgPath)
}

// startDistProxy starts a distribution registry in proxy mode, with fresh
// storage for the phase.
func (b *bench) startDistProxy(ctx context.Context, phase string) (*target, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	cfgPath := b.path("distproxy-" + phase + ".yml")
	if err := writeRegistryConfig(cfgPath, addr, b.path("data", "distproxy-"+phase), "http://"+b.upAddr); err != nil {
		return nil, err
	}
	p, err := b.startRegistry(ctx, targetDistProxy+"-"+phase, addr, cfgPath)
	if err != nil {
		return nil, err
	}
	return &target{name: targetDistProxy, base: "http://" + addr, proc: p}, nil
}

func (b *bench) startRegistry(ctx context.Context, name, addr, cfgPath string) (*proc.Process, error) {
	// No tracing exporter: the registry would try to reach a collector.
	env := []string{"OTEL_TRACES_EXPORTER=none"}
	p, err := b.procs.start(name, b.path("logs", name+".log"), env, b.bins.registry, "serve", cfgPath)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, p, "http://"+addr+"/v2/"); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// writeRegistryConfig writes a distribution config: quiet logs, filesystem
// storage, and pull-through to remote when it is not empty.
func writeRegistryConfig(path, addr, storage, remote string) error {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  cache:
    blobdescriptor: inmemory
http:
  addr: %s
`, storage, addr)
	if remote != "" {
		cfg += fmt.Sprintf("proxy:\n  remoteurl: %s\n", remote)
	}
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("write registry config: %w", err)
	}
	return nil
}

// startRevProxy starts the plain httputil.ReverseProxy of ./revproxy.
func (b *bench) startRevProxy(ctx context.Context, phase string) (*target, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	name := targetRevProxy + "-" + phase
	p, err := b.procs.start(name, b.path("logs", name+".log"), nil, b.bins.revproxy,
		"-listen", addr, "-upstream", "http://"+b.upAddr)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, p, "http://"+addr+"/v2/"); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return &target{name: targetRevProxy, base: "http://" + addr, proc: p}, nil
}

// startPortcullis writes its config and starts `portcullis serve` in
// front of endpoint (the upstream, or the counting proxy in front of it),
// enforcing policy.yaml (written by fill, beside the config); with store,
// with a content store in a directory of its own.
func (b *bench) startPortcullis(ctx context.Context, phase, endpoint string, store bool) (*target, error) {
	run := portcullisRun{name: targetPortcullis, phase: phase, bin: b.bins.portcullis, endpoint: endpoint, policyFile: "policy.yaml"}
	if store {
		run.name, run.store = targetPortcullisStore, b.path("store-"+phase)
	}
	return b.startPortcullisBin(ctx, run)
}

// portcullisRun is one Portcullis process of a phase.
type portcullisRun struct {
	name, phase string // target name; phase (names its config and log)
	bin         string
	endpoint    string // the upstream it fronts
	policyFile  string // relative to the run's directory
	store       string // content store directory; "" for none
	// noDrainDelay leaves shutdownDelay out, for a baseline that
	// predates it.
	noDrainDelay bool
}

func (b *bench) startPortcullisBin(ctx context.Context, run portcullisRun) (*target, error) {
	addrs, err := proc.FreeAddrs(2)
	if err != nil {
		return nil, err
	}
	addr, admin := addrs[0], addrs[1]
	cfgPath := b.path("portcullis-" + run.phase + ".yml")
	cfg := fmt.Sprintf("listen: %s\nadminListen: %s\n", addr, admin)
	if !run.noDrainDelay {
		cfg += "shutdownDelay: 0s\n"
	}
	cfg += fmt.Sprintf(`upstreams:
  - registry: %s
    endpoint: %s
    insecure: true
defaultRegistry: %s
policyFile: %s
`, benchRegistry, run.endpoint, benchRegistry, run.policyFile)
	if run.store != "" {
		cfg += fmt.Sprintf("tagTTL: %s\ncache: {dir: %s, maxSize: 64GiB}\n", storeTagTTL, run.store)
	} else {
		cfg += "tagTTL: 30s\n"
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("write portcullis config: %w", err)
	}
	name := targetPortcullis + "-" + run.phase
	p, err := b.procs.start(name, b.path("logs", name+".log"), nil, run.bin, "serve", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	err = waitReady(ctx, p, "http://"+admin+"/readyz")
	if err == nil {
		err = waitReady(ctx, p, "http://"+addr+"/v2/")
	}
	if err != nil {
		_ = p.Stop()
		return nil, err
	}
	return &target{name: run.name, base: "http://" + addr, proc: p, admin: "http://" + admin}, nil
}
