package gate

import (
	"context"
	"net/http"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/upstream"
	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/verifytest"
)

// The shared fixtures (verifytest), under the names these tests use.
type (
	testKey      = verifytest.Key
	keyless      = verifytest.Keyless
	testRegistry = verifytest.Registry
	layer        = verifytest.Layer
)

const (
	testIssuer  = verifytest.Issuer
	testSubject = verifytest.Subject
	vsRoot      = verifytest.VSRoot
)

func testKeys(testing.TB) map[string]*testKey { return verifytest.Keys() }

func newKeyless(t testing.TB) *keyless { return verifytest.NewKeyless(t) }

func keylessTrust(kl *keyless) verify.TrustProvider { return verify.TrustMap{vsRoot: kl.VS} }

func keylessAuthority(id policy.Identity, requireTlog bool) *policy.Authority {
	return verifytest.KeylessAuthority(id, requireTlog)
}

func statementFor(d v1.Hash, predicateType string) []byte {
	return verifytest.Statement(d, predicateType)
}

func newRegistry(t testing.TB, referrers bool, wrap func(http.Handler) http.Handler) *testRegistry {
	return verifytest.NewRegistry(t, referrers, wrap)
}

func newTestReader(t testing.TB, host string) *upstream.Client { return verifytest.NewReader(t, host) }

func legacyTag(d v1.Hash) string { return verifytest.LegacyTag(d) }

// scenario is one image in a fresh registry.
type scenario struct {
	tr    *testRegistry
	repo  verify.Repository
	image v1.Descriptor
}

func newScenario(t testing.TB, referrers bool) *scenario {
	tr := newRegistry(t, referrers, nil)
	repo := tr.Repo("acme/app")
	return &scenario{tr: tr, repo: repo, image: tr.PushImage(repo, "v1")}
}

// discover runs Discover through the registry's reader.
func discover(tr *testRegistry, repo verify.Repository, d v1.Hash, lim verify.Limits) *verify.Discovery {
	tr.T.Helper()
	disc, err := verify.Discover(context.Background(), tr.Reader, repo, d, lim)
	if err != nil {
		tr.T.Fatalf("Discover: %v", err)
	}
	return disc
}
