package policy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the package pure: parsing and evaluating a policy
// must not pull in HTTP, process execution, logging or the verifier, even
// transitively; and the package itself (and the YAML decoder it shares
// with the config) must not take a context or open connections or files:
// the caller hands it the bytes and an fs.FS. (context, net and os are in the deps through crypto/x509,
// so only direct imports of them are checked.) "x/..." is x and the
// packages below it, as for go list.
func TestDependencies(t *testing.T) {
	check := func(pkg, what string, pkgs, forbidden []string) {
		for _, p := range pkgs {
			for _, f := range forbidden {
				if tree, ok := strings.CutSuffix(f, "/..."); p == f || ok && (p == tree || strings.HasPrefix(p, tree+"/")) {
					t.Errorf("package %s %s %s", pkg, what, p)
				}
			}
		}
	}
	check("policy", "depends on", goList(t, "{{join .Deps \"\\n\"}}", "."),
		[]string{"net/http/...", "os/exec", "log/...", "go.uber.org/zap/...", "github.com/sigstore/sigstore-go/..."})
	direct := []string{"context", "net", "net/http/...", "os/...", "path/filepath", "go.uber.org/zap/...",
		"github.com/sigstore/sigstore-go/..."} // net/url and io/fs are fine
	check("policy", "imports", goList(t, "{{join .Imports \"\\n\"}}", "."), direct)
	check("internal/yamlfile", "imports", goList(t, "{{join .Imports \"\\n\"}}", "../internal/yamlfile"), direct)
}

// goList runs go list -f format on pkg, returning its lines.
func goList(t *testing.T, format, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", format, pkg).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}
