package gate

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies: the gate decides, it serves nothing: no HTTP server
// or test server, nothing of cmd.
func TestDependencies(t *testing.T) {
	depcheck.NoDependency(t, "github.com/portcullis-dev/portcullis/cmd/...")
	depcheck.NoImport(t, "net/http/httptest")
}
