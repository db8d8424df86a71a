package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/policy"
)

// TestConfigExample: the shipped example config loads, as it is but for
// its absolute password path, next to the files it names, and enforces the
// example policy: it is not a mirror that serves images unverified.
func TestConfigExample(t *testing.T) {
	deploy := filepath.Join("..", "..", "deploy")
	example, err := os.ReadFile(filepath.Join(deploy, "config-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	policyExample, err := os.ReadFile(filepath.Join(deploy, "policy-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const pwPath = "/run/secrets/portcullis/registry-example-password"
	if !strings.Contains(string(example), pwPath) {
		t.Fatalf("config-example.yaml no longer names %s; update this test", pwPath)
	}
	writeFile(t, dir, "password", "not-a-real-password\n")
	for _, name := range []string{"tls.crt", "tls.key", "clients.pem", "ca.pem"} {
		writeFile(t, dir, name, "checked for readability only")
	}
	writeExamplePolicyFiles(t, dir)
	writeFile(t, dir, "policy-example.yaml", string(policyExample))
	path := writeFile(t, dir, "config.yaml", strings.ReplaceAll(string(example), pwPath, filepath.Join(dir, "password")))

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Unverified || cfg.PolicyFile != filepath.Join(dir, "policy-example.yaml") {
		t.Fatalf("example config: unverified %v, policyFile %q; want it to enforce policy-example.yaml", cfg.Unverified, cfg.PolicyFile)
	}
	if _, err := (&gate.Loader{}).Load(cfg.PolicyFile); err != nil {
		t.Fatal(err)
	}
}

// writeExamplePolicyFiles writes into dir the files policy-example.yaml
// names: a public key and a trusted root.
func writeExamplePolicyFiles(t *testing.T, dir string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	writeFile(t, dir, "example-cosign.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	writeFile(t, dir, "example-trusted_root.json", string(realdata(t, "trusted-root", "trusted_root.json")))
}

// TestPolicyExample: the shipped example policy compiles once the files it
// names exist (a key, a trusted root); it is documentation that cannot rot.
func TestPolicyExample(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "deploy", "policy-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeExamplePolicyFiles(t, dir)
	path := writeFile(t, dir, "policy.yaml", string(example))
	p, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Policies) != 3 || p.DefaultAllow {
		t.Fatalf("unexpected policy: %d policies, default allow %v", len(p.Policies), p.DefaultAllow)
	}
	if _, err := (&gate.Loader{}).Build(p); err != nil {
		t.Fatal(err)
	}
}

// realdata reads ../shared/realdata (beside the repository); outside CI
// the test is skipped when it is not there.
func realdata(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"..", "..", "..", "shared", "realdata"}, parts...)...))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return b
}

// TestExamplePolicyLoadsInPlace: deploy/policy-example.yaml loads as it
// ships, with the example key and trusted root beside it (which sigstore-go
// parses), and lints with no error.
func TestExamplePolicyLoadsInPlace(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "policy-example.yaml")
	if _, err := (&gate.Loader{}).Load(path); err != nil {
		t.Fatalf("the example policy does not load in place: %v", err)
	}
	for _, p := range policyfile.Lint(path) {
		if p.Severity == policy.Error {
			t.Errorf("lint: %s", p)
		}
	}
}
