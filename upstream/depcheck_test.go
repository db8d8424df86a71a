package upstream

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies keeps upstream a registry client: no sigstore, no
// policy, no verifier, no proxy, no gate, nothing of cmd, and no HTTP
// server.
func TestDependencies(t *testing.T) {
	depcheck.NoDependency(t, "github.com/sigstore/",
		"github.com/portcullis-dev/portcullis/verify/...", "github.com/portcullis-dev/portcullis/policy/...",
		"github.com/portcullis-dev/portcullis/proxy/...", "github.com/portcullis-dev/portcullis/gate/...",
		"github.com/portcullis-dev/portcullis/cmd/...")
	depcheck.NoImport(t, "net/http/httptest")
}
