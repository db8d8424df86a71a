package policy

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies keeps the package pure: parsing and evaluating a policy
// must not pull in HTTP, process execution, logging or the verifier, even
// transitively; and the package itself must not take a context or open
// connections or files: the caller hands it the bytes and an fs.FS.
// (net and os are in the deps through crypto/x509, so only direct imports
// of them are checked; net/url and io/fs are fine. context is imported only
// to give a CEL condition its time limit: no function takes a context.)
func TestDependencies(t *testing.T) {
	depcheck.NoDependency(t, "net/http/...", "os/exec", "log/...", "go.uber.org/zap/...", "github.com/sigstore/sigstore-go/...")
	depcheck.NoImport(t, "net", "net/http/...", "os/...", "path/filepath", "go.uber.org/zap/...", "github.com/sigstore/sigstore-go/...")
}
