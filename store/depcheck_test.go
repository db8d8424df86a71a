package store

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies keeps the store a decorator of the upstream client: it
// decides nothing (no gate, no verifier, no policy), serves no HTTP itself
// (no proxy), and knows nothing of cmd.
func TestDependencies(t *testing.T) {
	depcheck.NoDependency(t, "github.com/sigstore/",
		"github.com/portcullis-dev/portcullis/verify/...", "github.com/portcullis-dev/portcullis/policy/...",
		"github.com/portcullis-dev/portcullis/proxy/...", "github.com/portcullis-dev/portcullis/gate/...",
		"github.com/portcullis-dev/portcullis/cmd/...")
	depcheck.NoImport(t, "net/http/httptest")
}
