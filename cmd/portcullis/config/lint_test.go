package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
)

// TestLogLevel: logLevel takes debug, info, warn or error; anything else
// is an error naming the field, its line and the values it takes.
func TestLogLevel(t *testing.T) {
	for _, level := range LogLevels {
		c, _, err := parseFixture(t, y("upstreams: [{registry: r.example}]", "logLevel: "+level))
		if err != nil {
			t.Fatal(err)
		}
		if c.LogLevel != level {
			t.Errorf("logLevel %s: got %q", level, c.LogLevel)
		}
	}
	_, dir, err := parseFixture(t, y("upstreams: [{registry: r.example}]", "logLevel: verbose", "logLevel2: x"))
	wantErrors(t, err, dir, []string{
		`config.yaml:2: logLevel: want one of debug, info, warn, error, got "verbose"`,
		`config.yaml:3: unknown field "logLevel2"`,
	})
	_, dir, err = parseFixture(t, y("upstreams: [{registry: r.example}]", "logLevel: [debug]"))
	wantErrors(t, err, dir, []string{`config.yaml:2: logLevel: want one of debug, info, warn, error, got a list`})
}

// TestLint: a file the config names that is missing is a warning for
// Lint, with its line, and an error with strict, as for Load; other
// problems are errors either way.
func TestLint(t *testing.T) {
	dir := fixture(t)
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, y(
		"upstreams: [{registry: r.example}]",
		"tls: {certFile: missing.crt, keyFile: tls.key}",
		"policyFile: policy.yaml",
		"listne: x",
	))
	c, problems := Lint(path, false)
	if c == nil || c.PolicyFile != filepath.Join(dir, "policy.yaml") || c.Path != path {
		t.Fatalf("Lint config = %+v, want one with policyFile and Path absolute", c)
	}
	want := []string{
		path + `:2: warning: tls.certFile: stat ` + filepath.Join(dir, "missing.crt") + `: no such file or directory (not checked here`,
		path + `:4: unknown field "listne"`,
	}
	checkProblems(t, problems, want)
	_, problems = Lint(path, true)
	want[0] = path + `:2: tls.certFile: stat ` + filepath.Join(dir, "missing.crt") + `: no such file or directory`
	checkProblems(t, problems, want)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), want[0]) {
		t.Errorf("Load: got %v, want an error containing %q", err, want[0])
	}

	_, problems = Lint(filepath.Join(dir, "absent.yaml"), false)
	if len(problems) != 1 || problems[0].Severity != yamlfile.Error || !strings.Contains(problems[0].Message, "no such file") {
		t.Errorf("Lint of a missing config: got %v, want one error", problems)
	}
	if err := os.WriteFile(path, []byte("- a list\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, problems := Lint(path, false); c != nil || len(problems) != 1 {
		t.Errorf("Lint of a list: got %+v, %v; want no config and one problem", c, problems)
	}
}

func checkProblems(t *testing.T, got []yamlfile.Problem, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].String(), w) {
			t.Errorf("problem %d:\ngot  %s\nwant %s...", i, got[i], w)
		}
	}
}

// TestKeys: Keys lists the top-level settings.
func TestKeys(t *testing.T) {
	keys := Keys()
	for _, k := range []string{"listen", "upstreams", "policyFile", "cache", "logLevel"} {
		if !slices.Contains(keys, k) {
			t.Errorf("Keys() = %v, missing %q", keys, k)
		}
	}
}
