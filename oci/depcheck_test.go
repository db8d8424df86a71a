package oci

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps oci a pure leaf: nothing of this module, no
// net/http, no I/O.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/portcullis-dev/portcullis/") || p == "net/http" || p == "os" || p == "net" {
			t.Errorf("package oci depends on %s", p)
		}
	}
}
