package fleet

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies: fleet shares what the gate decided; it decides
// nothing, serves nothing, and fetches nothing from registries.
func TestDependencies(t *testing.T) {
	for _, p := range []string{
		"github.com/portcullis-dev/portcullis/cmd/...",
		"github.com/portcullis-dev/portcullis/proxy",
		"github.com/portcullis-dev/portcullis/store",
		"github.com/portcullis-dev/portcullis/upstream",
	} {
		depcheck.NoDependency(t, p)
	}
	depcheck.NoImport(t, "net/http")
}
