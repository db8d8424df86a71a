// Package depcheck tests a package's imports, as go-containerregistry's
// internal/depcheck does: each package of the house states in a test what
// it must not know (docs/ARCHITECTURE.md), and go list checks it.
//
// A rule names packages as go list does: "net" is that package only,
// "net/http/..." is net/http and every package under it, and a rule ending
// in "/" ("github.com/sigstore/") is every path with that prefix.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// NoDependency fails t if the package in the test's directory depends on
// any of the packages, directly or not.
func NoDependency(t testing.TB, packages ...string) {
	t.Helper()
	check(t, "depends on", `{{join .Deps "\n"}}`, packages)
}

// NoImport fails t if the package in the test's directory imports any of
// the packages itself (for packages a dependency pulls in anyway).
func NoImport(t testing.TB, packages ...string) {
	t.Helper()
	check(t, "imports", `{{join .Imports "\n"}}`, packages)
}

func check(t testing.TB, verb, format string, rules []string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", format, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, r := range rules {
			if matches(r, p) {
				t.Errorf("this package %s %s (rule %q)", verb, p, r)
			}
		}
	}
}

func matches(rule, p string) bool {
	if tree, ok := strings.CutSuffix(rule, "/..."); ok {
		return p == tree || strings.HasPrefix(p, tree+"/")
	}
	if strings.HasSuffix(rule, "/") {
		return strings.HasPrefix(p, rule)
	}
	return p == rule
}
