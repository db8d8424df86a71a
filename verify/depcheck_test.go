package verify

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies keeps verify off the HTTP side: it reads registries
// through a Reader (the upstream client), serves nothing, and knows
// neither the proxy, the upstream client, the gate nor cmd.
func TestDependencies(t *testing.T) {
	depcheck.NoDependency(t, "github.com/portcullis-dev/portcullis/proxy/...", "github.com/portcullis-dev/portcullis/upstream/...",
		"github.com/portcullis-dev/portcullis/gate/...", "github.com/portcullis-dev/portcullis/cmd/...")
	depcheck.NoImport(t, "net/http/httptest")
}
