package yamlfile

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies: the YAML decoder shared by the config and the policy
// is as pure as the policy: no HTTP, logging or verifier, and it opens
// nothing itself.
func TestDependencies(t *testing.T) {
	depcheck.NoDependency(t, "net/http/...", "os/exec", "log/...", "go.uber.org/zap/...", "github.com/sigstore/")
	depcheck.NoImport(t, "context", "net", "net/http/...", "os/...", "path/filepath", "go.uber.org/zap/...", "github.com/sigstore/sigstore-go/...")
}
