package policy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the package pure: parsing and evaluating a policy
// must not pull in HTTP, process execution, logging or the verifier, and
// the package itself must not take a context or open connections. (context
// and net are in the deps through crypto/x509, so only direct imports of
// them are checked.)
func TestDependencies(t *testing.T) {
	deps := goList(t, "{{join .Deps \"\\n\"}}")
	imports := goList(t, "{{join .Imports \"\\n\"}}")
	check := func(what string, pkgs, forbidden []string, subtree bool) {
		for _, p := range pkgs {
			for _, f := range forbidden {
				if p == f || (subtree && strings.HasPrefix(p, f+"/")) {
					t.Errorf("package policy %s %s", what, p)
				}
			}
		}
	}
	check("depends on", deps, []string{"net/http", "os/exec", "go.uber.org/zap", "github.com/sigstore/sigstore-go", "log"}, true)
	check("imports", imports, []string{"context", "net"}, false) // net/url is fine
}

// goList runs go list -f format on this package, returning its lines.
func goList(t *testing.T, format string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", format, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}
