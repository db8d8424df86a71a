package proxy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps proxy the HTTP side only: it knows no sigstore,
// no verifier and no policy (it asks a Gate), and nothing of cmd.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, f := range []string{"github.com/sigstore/", "github.com/portcullis-dev/portcullis/verify", "github.com/portcullis-dev/portcullis/policy", "github.com/portcullis-dev/portcullis/gate", "github.com/portcullis-dev/portcullis/cmd"} {
			if strings.HasPrefix(p, f) {
				t.Errorf("package proxy depends on %s", p)
			}
		}
	}
}
