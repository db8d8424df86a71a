package verify

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps verify off the HTTP side: it reads registries
// through a Reader, serves nothing, and knows neither the proxy nor cmd.
// (net/http itself is imported by RemoteReader, a registry client.)
func TestDependencies(t *testing.T) {
	list := func(format string) []string {
		out, err := exec.Command("go", "list", "-f", format, ".").Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		return strings.Fields(string(out))
	}
	for _, p := range list(`{{join .Deps "\n"}}`) {
		for _, f := range []string{"github.com/portcullis-dev/portcullis/proxy", "github.com/portcullis-dev/portcullis/gate", "github.com/portcullis-dev/portcullis/cmd"} {
			if strings.HasPrefix(p, f) {
				t.Errorf("package verify depends on %s", p)
			}
		}
	}
	for _, p := range list(`{{join .Imports "\n"}}`) {
		if p == "net/http/httptest" {
			t.Errorf("package verify imports %s", p)
		}
	}
}
