package oci

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies keeps oci a pure leaf: nothing of this module and no
// net/http, even transitively; no I/O package imported directly (os comes
// in through go-containerregistry's v1 types, so only direct imports of
// os and net are checked).
func TestDependencies(t *testing.T) {
	depcheck.NoDependency(t, "github.com/portcullis-dev/portcullis/", "net/http/...")
	depcheck.NoImport(t, "os", "net", "io/fs")
}
