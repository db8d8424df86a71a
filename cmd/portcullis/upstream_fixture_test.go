package main

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/verify/signing"
)

// testUpstream is a registry (ggcr's) for the command tests, stopped when
// the test ends.
type testUpstream struct {
	*httptest.Server
	host string
}

func newTestUpstream(t *testing.T) *testUpstream {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &testUpstream{Server: srv, host: strings.TrimPrefix(srv.URL, "http://")}
}

// push puts a random one-layer image at repoTag ("acme/app:v1") and
// returns its reference and digest.
func (u *testUpstream) push(t *testing.T, repoTag string) (name.Tag, v1.Hash) {
	t.Helper()
	img, _ := random.Image(512, 1)
	ref, err := name.NewTag(u.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return ref, d
}

// pushSignedPair pushes acme/app:signed, signed (a legacy .sig) by a new
// key whose public half it writes to dir/cosign.pub, and acme/app:unsigned.
func (u *testUpstream) pushSignedPair(t *testing.T, dir string) {
	t.Helper()
	signer, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	ref, d := u.push(t, "acme/app:signed")
	if err := signer.SignLegacy(ref.Context(), d); err != nil {
		t.Fatal(err)
	}
	u.push(t, "acme/app:unsigned")
	pem, _ := signer.PublicKeyPEM()
	writeFile(t, dir, "cosign.pub", string(pem))
}
