package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// y joins lines into a YAML file, so that tests can count lines.
func y(lines ...string) string {
	return strings.Join(lines, "\n") + "\n"
}

// fixture returns a fresh directory holding the files test configs name:
// tls.crt, tls.key, clients.pem, ca.pem, policy.yaml and pw (password
// "s3cret" with a trailing newline), and a directory named subdir.
func fixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"tls.crt":     "cert",
		"tls.key":     "key",
		"clients.pem": "client CAs",
		"ca.pem":      "CA",
		"policy.yaml": "policy",
		"pw":          "s3cret\n",
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// parseFixture parses src as "config.yaml" in a fresh fixture directory,
// after [chosen].
func parseFixture(t *testing.T, src string) (*Config, string, error) {
	t.Helper()
	dir := fixture(t)
	c, err := Parse([]byte(chosen(src)), "config.yaml", dir)
	return c, dir, err
}

// chosen returns src with a last line "unverified: true" when src is a
// YAML mapping that sets neither policyFile nor unverified, so that tests
// about other settings need not each make the choice checkVerification
// demands (TestVerificationChoice tests that choice). The line goes last so
// that the lines of src keep their numbers; src that is not such a mapping
// (broken YAML, a list, ...) is returned as it is.
func chosen(src string) string {
	var m map[string]any
	if err := yaml.Unmarshal([]byte(src), &m); err != nil || m == nil {
		return src
	}
	if _, ok := m["policyFile"]; ok {
		return src
	}
	if _, ok := m["unverified"]; ok {
		return src
	}
	if !strings.HasSuffix(src, "\n") {
		src += "\n"
	}
	return src + "unverified: true\n"
}

// wantErrors checks that err lists exactly one problem per entry of want,
// in order, each line containing its entry with "DIR" replaced by dir.
func wantErrors(t *testing.T, err error, dir string, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want:\n%s", strings.Join(want, "\n"))
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\ngot:\n%s\nwant:\n%s", len(got), len(want), err, strings.Join(want, "\n"))
	}
	for i := range want {
		w := strings.ReplaceAll(want[i], "DIR", dir)
		if !strings.Contains(got[i], w) {
			t.Errorf("problem %d:\ngot  %s\nwant %s", i, got[i], w)
		}
	}
}
