package main

import (
	"net/http"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/verify/signing"
	"github.com/portcullis-dev/portcullis/verify/verifytest"
)

// testUpstream is the shared test registry (verifytest's: ggcr's
// registry on loopback) for the command tests, with a switch that makes it
// answer 503 to everything (the upstream is down).
type testUpstream struct {
	*verifytest.Registry
	URL  string
	down atomic.Bool
}

func newTestUpstream(t *testing.T) *testUpstream {
	t.Helper()
	u := &testUpstream{}
	u.Registry = verifytest.NewRegistry(t, false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u.down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	u.URL = "http://" + u.Host
	return u
}

// push puts a random image at repo:tag and returns its digest.
func (u *testUpstream) push(repo, tag string) v1.Hash { return u.PushImage(u.Repo(repo), tag).Digest }

// pushSignedPair pushes acme/app:signed, signed (a legacy .sig) by a new
// key whose public half it writes to dir/cosign.pub, and acme/app:unsigned.
func (u *testUpstream) pushSignedPair(t *testing.T, dir string) {
	t.Helper()
	signer, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	d := u.push("acme/app", "signed")
	if err := signer.SignLegacy(u.Ref(u.Repo("acme/app"), "signed").Context(), d); err != nil {
		t.Fatal(err)
	}
	u.push("acme/app", "unsigned")
	pem, _ := signer.PublicKeyPEM()
	writeFile(t, dir, "cosign.pub", string(pem))
}
