package policy

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies keeps the package pure: parsing and evaluating a policy
// must not pull in HTTP, process execution, logging or the verifier, even
// transitively; and the package itself must not take a context or open
// connections or files: the caller hands it the bytes and an fs.FS.
// (context, net and os are in the deps through crypto/x509, so only direct
// imports of them are checked; net/url and io/fs are fine.)
func TestDependencies(t *testing.T) {
	depcheck.NoDependency(t, "net/http/...", "os/exec", "log/...", "go.uber.org/zap/...", "github.com/sigstore/sigstore-go/...")
	depcheck.NoImport(t, "context", "net", "net/http/...", "os/...", "path/filepath", "go.uber.org/zap/...", "github.com/sigstore/sigstore-go/...")
}
