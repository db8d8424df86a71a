package verify

import (
	"context"
	"net/http"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/upstream"
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

func keylessTrust(kl *keyless) TrustProvider { return TrustMap{vsRoot: kl.VS} }

func keylessAuthority(id policy.Identity, requireTlog bool) *policy.Authority {
	return verifytest.KeylessAuthority(id, requireTlog)
}

func payloadFor(dockerRef string, d v1.Hash) []byte { return verifytest.Payload(dockerRef, d) }

func statementFor(d v1.Hash, predicateType string) []byte {
	return verifytest.Statement(d, predicateType)
}

func b64(b []byte) string { return verifytest.B64(b) }

func newRegistry(t testing.TB, referrers bool, wrap func(http.Handler) http.Handler) *testRegistry {
	return verifytest.NewRegistry(t, referrers, wrap)
}

func newTestReader(t testing.TB, host string) *upstream.Client { return verifytest.NewReader(t, host) }

// discover runs Discover through the registry's reader.
func discover(tr *testRegistry, repo Repository, d v1.Hash, lim Limits) *Discovery {
	tr.T.Helper()
	disc, err := Discover(context.Background(), tr.Reader, repo, d, lim)
	if err != nil {
		tr.T.Fatalf("Discover: %v", err)
	}
	return disc
}
