package proxy

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/depcheck"
)

// TestDependencies keeps proxy the HTTP side only: it knows no sigstore,
// no verifier and no policy (it asks a Gate), and nothing of cmd. It reads
// upstreams only through package upstream.
func TestDependencies(t *testing.T) {
	depcheck.NoDependency(t, "github.com/sigstore/",
		"github.com/portcullis-dev/portcullis/verify/...", "github.com/portcullis-dev/portcullis/policy/...",
		"github.com/portcullis-dev/portcullis/gate/...", "github.com/portcullis-dev/portcullis/cmd/...")
	depcheck.NoImport(t, "github.com/google/go-containerregistry/pkg/v1/remote")
}
