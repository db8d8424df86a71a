//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// placeholderHost is the proxy address the shipped client configs in deploy/
// use; tests replace it with the loopback address clients must reach.
const placeholderHost = "portcullis.example.internal:5050"

// deployPath is a file under deploy/ in the repository.
func deployPath(t *testing.T, rel string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy", rel)
}

// render reads deploy/<rel>, applies each old -> new replacement (pairs is
// old1, new1, old2, new2, ...; every old must occur, so a change to the
// shipped file cannot silently leave TLS or the placeholder in place), checks
// that no placeholder host is left when one was replaced, and writes the
// result to dst.
func render(t *testing.T, rel, dst string, pairs ...string) string {
	t.Helper()
	b, err := os.ReadFile(deployPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if len(pairs)%2 != 0 {
		t.Fatalf("render %s: odd number of replacement strings", rel)
	}
	placeholder := false
	for i := 0; i < len(pairs); i += 2 {
		old, repl := pairs[i], pairs[i+1]
		if !strings.Contains(s, old) {
			t.Fatalf("render deploy/%s: %q not found; the test's substitutions are out of date with the shipped file", rel, old)
		}
		s = strings.ReplaceAll(s, old, repl)
		placeholder = placeholder || strings.Contains(old, placeholderHost)
	}
	if placeholder && strings.Contains(s, placeholderHost) {
		t.Fatalf("render deploy/%s: placeholder %s left after substitution:\n%s", rel, placeholderHost, s)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// settings drops comments and blank lines from a rendered config, for logs.
func settings(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "//") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// writeFile writes content to path, creating directories.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
