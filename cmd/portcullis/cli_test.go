package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// cli runs "portcullis args..." in-process and returns its exit status,
// standard output and standard error.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runCLI(context.Background(), append([]string{}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestExitCodes: every usage error exits 2, whichever command and whatever
// the mistake (cobra's own are plain errors); an unknown subcommand names
// the nearest ones; a command that only holds subcommands prints its help
// and exits 0 when given none.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // substring; "" for any
		stderr string
	}{
		{args: nil, code: 0, stdout: "Available Commands"},
		{args: []string{"policy"}, code: 0, stdout: "portcullis policy [command]"},
		{args: []string{"cache"}, code: 0, stdout: "Available Commands"}, // though --config is required below it
		{args: []string{"verify"}, code: 2, stderr: "requires at least 1 arg"},
		{args: []string{"verify", "--config", "config.yaml"}, code: 2, stderr: "requires at least 1 arg"},
		{args: []string{"version", "extra"}, code: 2, stderr: `unknown command "extra" for "portcullis version"`},
		{args: []string{"serv"}, code: 2, stderr: "unknown command \"serv\" for \"portcullis\"\n\nDid you mean this?\n\tserve\n"},
		{args: []string{"policy", "lnt"}, code: 2, stderr: "unknown command \"lnt\" for \"portcullis policy\"\n\nDid you mean this?\n\tlint\n"},
		{args: []string{"config", "lnit"}, code: 2, stderr: "Did you mean this?\n\tlint"},
		{args: []string{"cache", "lss", "--config", "c.yaml"}, code: 2, stderr: "Did you mean this?\n\tls"},
		{args: []string{"cache", "ls"}, code: 2, stderr: `required flag(s) "config" not set`},
		{args: []string{"policy", "lint"}, code: 2, stderr: "requires at least 1 arg"},
		{args: []string{"config", "lint"}, code: 2, stderr: "requires at least 1 arg"},
		{args: []string{"--no-such-flag"}, code: 2, stderr: "unknown flag"},
		{args: []string{"serve", "--config", "c.yaml", "--log-level", "verbose"}, code: 2, stderr: "want one of debug, info, warn, error"},
		{args: []string{"demo", "--log-level", "loud"}, code: 2, stderr: "want one of debug, info, warn, error"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Cleanup(func() { logLevelFlag = "" })
			code, stdout, stderr := cli(t, tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout with %q, stderr with %q",
					code, tc.code, stdout, stderr, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestVersion: --version prints what `version` prints: the version, the
// commit (unknown in a test binary) and the Go version.
func TestVersion(t *testing.T) {
	_, flag, _ := cli(t, "--version")
	_, cmd, _ := cli(t, "version")
	if flag != cmd || !strings.HasPrefix(cmd, "portcullis ") || !strings.Contains(cmd, "(commit ") || !strings.HasSuffix(cmd, "\n") {
		t.Errorf("--version printed %q, version %q; want the same line, naming the commit", flag, cmd)
	}
	if ua := userAgent(); !strings.HasPrefix(ua, "portcullis/") || strings.ContainsAny(ua, " ()") {
		t.Errorf("userAgent() = %q, want one product token portcullis/VERSION", ua)
	}
}

// TestCommit: the commit is described from the build's VCS settings.
func TestCommit(t *testing.T) {
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}
	at := debug.BuildSetting{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	clean := debug.BuildSetting{Key: "vcs.modified", Value: "false"}
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, "commit unknown"},
		{[]debug.BuildSetting{{Key: "GOOS", Value: "linux"}, at}, "commit unknown"},
		{[]debug.BuildSetting{rev, at, clean}, "commit 0123456789ab, 2026-01-02T03:04:05Z"},
		{[]debug.BuildSetting{rev, at, dirty}, "commit 0123456789ab, modified, 2026-01-02T03:04:05Z"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "commit abc"},
	} {
		if got := commit(tc.settings); got != tc.want {
			t.Errorf("commit(%v) = %q, want %q", tc.settings, got, tc.want)
		}
	}
}

// TestConfigLintExamples: every config example under deploy/ passes
// `config lint`, the files it names but that only exist where Portcullis
// runs being warnings; with --strict they are errors.
func TestConfigLintExamples(t *testing.T) {
	examples, err := filepath.Glob(filepath.Join("..", "..", "deploy", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var configs []string
	for _, f := range examples {
		if looksLikeConfig(f) {
			configs = append(configs, f)
		}
	}
	if len(configs) == 0 {
		t.Fatal("no config example found under deploy/")
	}
	for _, f := range configs {
		code, stdout, stderr := cli(t, "config", "lint", f)
		if code != 0 || !strings.Contains(stdout, "warning: tls.certFile") || strings.Contains(stdout, ": error") {
			t.Errorf("config lint %s: exit %d, want 0 with warnings\n%s%s", f, code, stdout, stderr)
		}
		if code, stdout, _ := cli(t, "config", "lint", "--strict", f); code != 1 || strings.Contains(stdout, "warning: tls.certFile") {
			t.Errorf("config lint --strict %s: exit %d, want 1 with errors\n%s", f, code, stdout)
		}
	}
}

// TestConfigLint: config lint checks the config and the policy it names,
// every problem with its line, and says "FILE: ok" of a clean one.
func TestConfigLint(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "policy.yaml", goodPolicy)
	good := writeFile(t, dir, "good.yaml", "upstreams: [{registry: registry.example}]\npolicyFile: policy.yaml\nlogLevel: debug\n")
	if code, stdout, stderr := cli(t, "config", "lint", "--strict", good); code != 0 || stdout != good+": ok\n" {
		t.Errorf("config lint (good): exit %d\n%s%s", code, stdout, stderr)
	}
	broken := writeFile(t, dir, "broken-policy.yaml", goodPolicy+"    mode: sometimes\n")
	bad := writeFile(t, dir, "bad.yaml", "upstreams: [{registry: registry.example}]\npolicyFile: broken-policy.yaml\nlogLevel: loud\n")
	code, stdout, stderr := cli(t, "config", "lint", bad)
	for _, want := range []string{
		bad + `:3: logLevel: want one of debug, info, warn, error, got "loud"`,
		broken + ":5: policies[0].mode:",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config lint (bad) does not say %q:\n%s", want, stdout)
		}
	}
	if code != 1 || !strings.Contains(stderr, bad+": 2 error(s)") {
		t.Errorf("config lint (bad): exit %d, want 1 and 2 errors\n%s", code, stderr)
	}
}

// TestConfigLintSources: a policy whose signaturesFrom names a registry
// the config has no upstream for is an error of config lint, on the
// authority's line (its signatures could never be read), even when a key
// the policy names is missing here (a warning, which must not hide it);
// one naming a configured registry, in any of Docker Hub's spellings, is
// not.
func TestConfigLintSources(t *testing.T) {
	dir := t.TempDir()
	writePublicKey(t, dir, "cosign.pub")
	const sourced = `policies:
  - name: app
    images: ["registry.example/**"]
    authorities:
      - name: ci
        signaturesFrom: %s
        key: {path: %s}
`
	for _, tc := range []struct {
		source, key string
		errs        bool
	}{
		{"mirror.example/signatures/app", "cosign.pub", true},
		{"mirror.example/signatures/app", "elsewhere.pub", true},
		{"registry.example/signatures/app", "cosign.pub", false},
		{"index.docker.io/acme/sigs", "cosign.pub", false},
	} {
		writeFile(t, dir, "policy.yaml", fmt.Sprintf(sourced, tc.source, tc.key))
		cfg := writeFile(t, dir, "config.yaml", "upstreams: [{registry: registry.example}, {registry: docker.io}]\npolicyFile: policy.yaml\n")
		code, stdout, stderr := cli(t, "config", "lint", cfg)
		want := filepath.Join(dir, "policy.yaml") + `:5: policies[0].authorities[0].signaturesFrom: authority "ci" (policy "app") reads signatures from mirror.example/signatures/app, but "mirror.example" is not an upstream registry of this proxy`
		if got := strings.Contains(stdout, "is not an upstream registry"); got != tc.errs || tc.errs && (code != 1 || !strings.Contains(stdout, want)) {
			t.Errorf("config lint with signaturesFrom %s and key %s: exit %d\n%s%s", tc.source, tc.key, code, stdout, stderr)
		}
	}
}

// goodPolicy is a policy file with no problem, naming no file.
const goodPolicy = `policies:
  - name: internal
    images: ["registry.example/**"]
    allow: unsigned
`

// TestPolicyLint: policy lint takes several files, reports each one's
// problems, and tells a config file given by mistake.
func TestPolicyLint(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", goodPolicy)
	b := writeFile(t, dir, "b.yaml", strings.Replace(goodPolicy, "allow: unsigned", "authorities: [{name: k, key: {path: missing.pub}}]", 1))
	if code, stdout, stderr := cli(t, "policy", "lint", a, a); code != 0 || stdout != a+": ok\n"+a+": ok\n" {
		t.Errorf("policy lint a a: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := cli(t, "policy", "lint", a, b)
	if code != 1 || !strings.Contains(stdout, a+": ok\n") || !strings.Contains(stdout, b+":4: ") ||
		!strings.Contains(stdout, "missing.pub") || !strings.Contains(stderr, b+": 1 error(s)") {
		t.Errorf("policy lint a b: exit %d, want 1 and b's problem\n%s%s", code, stdout, stderr)
	}
	cfg := filepath.Join("..", "..", "deploy", "config-example.yaml")
	code, stdout, _ = cli(t, "policy", "lint", cfg)
	want := cfg + ": looks like a Portcullis config file, not a policy file: use `portcullis config lint " + cfg + "`\n"
	if code != 1 || stdout != want {
		t.Errorf("policy lint CONFIG: exit %d, output\n%s\nwant exit 1 and\n%s", code, stdout, want)
	}
}

// TestLogLevel: --log-level wins over the config's logLevel, which wins
// over the default, info; the level applies to the logger already built.
func TestLogLevel(t *testing.T) {
	for _, tc := range []struct {
		flag, configured string
		want             zapcore.Level
	}{
		{"", "", zap.InfoLevel},
		{"", "warn", zap.WarnLevel},
		{"debug", "error", zap.DebugLevel},
		{"error", "", zap.ErrorLevel},
	} {
		if got := effectiveLevel(tc.flag, tc.configured); got != tc.want {
			t.Errorf("effectiveLevel(%q, %q) = %v, want %v", tc.flag, tc.configured, got, tc.want)
		}
	}
	t.Cleanup(func() { logLevelFlag = ""; setLogLevel("") })
	logLevelFlag = "debug"
	log, err := newLogger("json")
	if err != nil {
		t.Fatal(err)
	}
	setLogLevel("error") // the config's, overridden by the flag
	if !log.Core().Enabled(zap.DebugLevel) {
		t.Error("--log-level debug: debug is not logged")
	}
	logLevelFlag = ""
	setLogLevel("warn")
	if log.Core().Enabled(zap.InfoLevel) || !log.Core().Enabled(zap.WarnLevel) {
		t.Error(`logLevel "warn": want warn logged and info not`)
	}
}
