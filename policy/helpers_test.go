package policy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// y joins lines into a YAML file, so that tests can count lines.
func y(lines ...string) string {
	return strings.Join(lines, "\n") + "\n"
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pemKey returns pub as a PEM "PUBLIC KEY".
func pemKey(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// newKey generates a public key of kind "p256", "p384", "ed25519" or
// "rsa2048", returned as PEM.
func newKey(t testing.TB, kind string) string {
	t.Helper()
	var pub any
	switch kind {
	case "p256", "p384":
		curve := elliptic.P256()
		if kind == "p384" {
			curve = elliptic.P384()
		}
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
	case "ed25519":
		k, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = k
	case "rsa2048":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	return pemKey(t, pub)
}

// mapFS makes files (name -> content) an fs.FS.
func mapFS(files map[string]string) fstest.MapFS {
	m := make(fstest.MapFS, len(files))
	for name, content := range files {
		m[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return m
}

// load parses src as "policy.yaml" at the root of files (name -> content).
func load(t *testing.T, src string, files map[string]string) (*Policy, error) {
	t.Helper()
	return Parse([]byte(src), "policy.yaml", mapFS(files))
}

// mustLoad is load that fails the test on error.
func mustLoad(t *testing.T, src string, files map[string]string) *Policy {
	t.Helper()
	p, err := load(t, src, files)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// lintFile lints the policy file at path (slash-separated, relative to the
// package directory), as on disk.
func lintFile(t *testing.T, path string) []Problem {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Lint(data, path, os.DirFS("."))
}
