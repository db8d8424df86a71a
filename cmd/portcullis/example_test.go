package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-dev/portcullis/policy"
)

// TestPolicyExample: the shipped example policy compiles once the files it
// names exist (a key, a trusted root); it is documentation that cannot rot.
func TestPolicyExample(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "deploy", "policy-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	writeFile(t, dir, "cosign.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	writeFile(t, dir, "trusted_root.json", string(realdata(t, "trusted-root", "trusted_root.json")))
	path := writeFile(t, dir, "policy.yaml", string(example))
	p, err := policy.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Policies) != 2 || p.DefaultAllow {
		t.Fatalf("unexpected policy: %d policies, default allow %v", len(p.Policies), p.DefaultAllow)
	}
	if _, err := (&snapshotBuilder{}).build(p); err != nil {
		t.Fatal(err)
	}
}
