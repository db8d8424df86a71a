package oci

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps oci a pure leaf: nothing of this module and no
// net/http, even transitively; no I/O package imported directly (os comes
// in through go-containerregistry's v1 types, so only direct imports of
// os and net are checked).
func TestDependencies(t *testing.T) {
	list := func(format string) []string {
		out, err := exec.Command("go", "list", "-f", format, ".").Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		return strings.Fields(string(out))
	}
	for _, p := range list(`{{join .Deps "\n"}}`) {
		if strings.HasPrefix(p, "github.com/portcullis-dev/portcullis/") || p == "net/http" {
			t.Errorf("package oci depends on %s", p)
		}
	}
	for _, p := range list(`{{join .Imports "\n"}}`) {
		if p == "os" || p == "net" || p == "io/fs" {
			t.Errorf("package oci imports %s", p)
		}
	}
}
