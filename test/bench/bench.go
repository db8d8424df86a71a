package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/test/proc"
)

// bench is the environment of one run: the temporary directory, the
// binaries, the upstream's address and content, and every process started.
type bench struct {
	cfg    config
	root   string // module root
	dir    string // temporary directory: bin/, logs/, data/, configs
	bins   binaries
	upAddr string // the upstream's host:port, kept across phases
	procs  procSet
	fix    fixtures
	tools  map[string]string // tool name -> version
	// signer holds the key of the policy (b.dir/policy.yaml), for phases
	// that push signed images of their own.
	signer *signer
	// baselineCommit is -baseline's commit, when one was given.
	baselineCommit string
}

type binaries struct {
	registry, portcullis, revproxy string
	// baseline is Portcullis built from -baseline; "" without one.
	baseline string
	// cosign is the cosign CLI the cold phase compares with; "" when it
	// is not measured, and cosignMissing then says why.
	cosign, cosignMissing string
}

// newBench makes the temporary directory, finds the registry and builds
// Portcullis and the reverse proxy.
func newBench(ctx context.Context, cfg config) (*bench, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "portcullis-bench-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	b := &bench{cfg: cfg, root: root, dir: dir}
	for _, sub := range []string{"bin", "logs", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			b.close(false)
			return nil, fmt.Errorf("temporary directory: %w", err)
		}
	}
	if err := b.setup(ctx); err != nil {
		b.close(false)
		return nil, err
	}
	return b, nil
}

func (b *bench) setup(ctx context.Context) error {
	var err error
	if b.bins.registry, err = findRegistry(b.cfg.registryBin, b.root); err != nil {
		return err
	}
	logf("registry: %s", b.bins.registry)
	if b.bins.portcullis, err = b.build(ctx, "portcullis", "./cmd/portcullis"); err != nil {
		return err
	}
	if b.bins.revproxy, err = b.build(ctx, "revproxy", "./test/bench/revproxy"); err != nil {
		return err
	}
	if b.cfg.baseline != "" {
		if b.bins.baseline, b.baselineCommit, err = buildBaseline(ctx, b.root, b.dir, b.cfg.baseline); err != nil {
			return err
		}
	}
	b.bins.cosign, b.bins.cosignMissing = findCosign(b.cfg.cosignBin, b.root)
	if b.bins.cosign != "" {
		logf("cosign: %s", b.bins.cosign)
	} else {
		logf("cosign: not measured: %s", b.bins.cosignMissing)
	}
	if b.upAddr, err = proc.FreeAddr(); err != nil {
		return err
	}
	b.tools = toolVersions(ctx, b.bins, b.root)
	if b.bins.baseline != "" {
		b.tools[targetBaseline] = commandOutput(ctx, b.bins.baseline, "version") + " (git " + b.baselineCommit + ", -baseline " + b.cfg.baseline + ")"
	}
	return nil
}

// close stops every process, deletes the blob storage, and deletes the
// rest of the temporary directory unless the run failed or -keep was given.
func (b *bench) close(ok bool) {
	b.procs.stopAll()
	_ = os.RemoveAll(filepath.Join(b.dir, "data"))
	if ok && !b.cfg.keep {
		_ = os.RemoveAll(b.dir)
		return
	}
	logf("logs and configs kept in %s", b.dir)
}

// fill starts the upstream, pushes the fixtures into it and signs them
// with a new key, written as cosign.pub beside policy.yaml (which
// Portcullis's config names).
func (b *bench) fill(ctx context.Context) error {
	up, err := b.startUpstream(ctx, "fill")
	if err != nil {
		return err
	}
	defer up.Stop()
	sg, err := newSigner(b.upAddr)
	if err != nil {
		return err
	}
	if err := sg.writeTrust(b.dir); err != nil {
		return err
	}
	fix, err := seed(ctx, "http://"+b.upAddr, b.cfg, sg)
	if err != nil {
		return err
	}
	b.fix, b.signer = fix, sg
	return nil
}

// build compiles pkg (relative to the module root) into the temporary bin/.
func (b *bench) build(ctx context.Context, name, pkg string) (string, error) {
	out := filepath.Join(b.dir, "bin", name)
	logf("building %s", pkg)
	start := time.Now()
	defer func() { logf("built %s in %.1f s", pkg, time.Since(start).Seconds()) }()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = b.root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
	}
	return out, nil
}

func (b *bench) path(parts ...string) string {
	return filepath.Join(append([]string{b.dir}, parts...)...)
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run from inside the portcullis module (go env GOMOD is %q)", mod)
	}
	return filepath.Dir(mod), nil
}

// findRegistry resolves -registry, else .tools/bin/registry, else $PATH.
func findRegistry(flagValue, root string) (string, error) {
	if flagValue != "" {
		p, err := exec.LookPath(flagValue)
		if err != nil {
			return "", fmt.Errorf("-registry %s: %w", flagValue, err)
		}
		return filepath.Abs(p)
	}
	local := filepath.Join(root, ".tools", "bin", "registry")
	if fi, err := os.Stat(local); err == nil && !fi.IsDir() {
		return local, nil
	}
	p, err := exec.LookPath("registry")
	if err != nil {
		return "", fmt.Errorf("distribution registry not found in .tools/bin or $PATH (run `make tools` or pass -registry): %w", err)
	}
	return p, nil
}

// findCosign resolves -cosign: "none" skips it, a given path must exist,
// the default is .tools/bin/cosign (installed by make tools) if present.
// It returns the binary, or "" and why it is not measured.
func findCosign(flagValue, root string) (bin, missing string) {
	switch flagValue {
	case "none":
		return "", "skipped (-cosign none, or -smoke)"
	case "":
		local := filepath.Join(root, ".tools", "bin", "cosign")
		if fi, err := os.Stat(local); err == nil && !fi.IsDir() {
			return local, ""
		}
		return "", "cosign missing (no .tools/bin/cosign; run make tools)"
	}
	p, err := exec.LookPath(flagValue)
	if err != nil {
		return "", fmt.Sprintf("cosign missing (-cosign %s: %v)", flagValue, err)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p, ""
}
