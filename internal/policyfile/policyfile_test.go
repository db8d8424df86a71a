package policyfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const keyPEM = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PUBLIC KEY-----
`

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoad: relative names are beside the policy file, absolute ones on
// disk, and TUF cache directories come back as paths on disk.
func TestLoad(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	write(t, filepath.Join(dir, "keys/a.pub"), keyPEM)
	abs := write(t, filepath.Join(elsewhere, "b.pub"), keyPEM)
	path := write(t, filepath.Join(dir, "policy.yaml"), `trustRoots: [{name: t, tuf: {cacheDir: tuf-cache}}]
policies:
  - name: p
    images: [r.example/**]
    authorities:
      - {name: a, key: {path: keys/a.pub}}
      - {name: b, key: {path: `+abs+`}, requireTlog: true, trustRoot: t}
`)
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.TrustRoots["t"].TUF.CacheDir, filepath.Join(dir, "tuf-cache"); got != want {
		t.Errorf("CacheDir = %q, want %q", got, want)
	}
	if len(p.Policies[0].Authorities) != 2 || len(p.Warnings) != 1 { // the same key twice
		t.Errorf("policy %+v, warnings %v", p.Policies[0], p.Warnings)
	}
	t.Chdir(dir)
	if q, err := Load("policy.yaml"); err != nil || q.Revision != p.Revision {
		t.Errorf("Load(relative) = %v, revision %q, want %q", err, q.Revision, p.Revision)
	}
}

func TestLintAndErrors(t *testing.T) {
	dir := t.TempDir()
	path := write(t, filepath.Join(dir, "policy.yaml"), "policies: [{name: p, images: [r.example/x], authorities: [{name: k, key: {path: missing.pub}}]}]\n")
	problems := Lint(path)
	want := path + `:1: policies[0].authorities[0].key.path: cannot read "missing.pub": no such file or directory`
	if len(problems) != 1 || problems[0].String() != want {
		t.Errorf("Lint = %v, want %s", problems, want)
	}
	missing := filepath.Join(dir, "none.yaml")
	if _, err := Load(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v", err)
	}
	if problems := Lint(missing); len(problems) != 1 || problems[0].Line != 0 ||
		!strings.HasPrefix(problems[0].String(), missing+": read policy file: ") {
		t.Errorf("Lint(missing) = %v", problems)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(directory) = %v", err)
	}
}
