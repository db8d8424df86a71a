package verifytest

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify/signing/virtualsig"
)

// The keyless fixtures' identity and trust root name.
const (
	Issuer  = "https://issuer.example"
	Subject = "alice@example.com"
	VSRoot  = "virtual"
)

// Keyless is a VirtualSigstore (a Fulcio CA, a Rekor and a TSA in memory)
// with helpers for keyless signatures.
type Keyless struct {
	VS *ca.VirtualSigstore
}

// NewKeyless starts a VirtualSigstore.
func NewKeyless(t testing.TB) *Keyless {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return &Keyless{VS: vs}
}

// KeylessAuthority is a keyless authority for one identity, trusting the
// root named VSRoot.
func KeylessAuthority(id policy.Identity, requireTlog bool) *policy.Authority {
	return &policy.Authority{
		Name:        "keyless",
		Keyless:     &policy.Keyless{Identities: []policy.Identity{id}},
		RequireTlog: requireTlog,
		TrustRoot:   VSRoot,
	}
}

// LegacyLayer is a legacy keyless signature of d with a Rekor SET and/or
// an RFC 3161 timestamp.
func (kl *Keyless) LegacyLayer(t testing.TB, subject string, d v1.Hash, withSET, withTSA bool) Layer {
	t.Helper()
	p := Payload("registry.example/app", d)
	ann, err := virtualsig.LegacyKeyless(kl.VS, subject, Issuer, p, withSET, withTSA)
	if err != nil {
		t.Fatal(err)
	}
	return Layer{Payload: p, Annotations: ann}
}

// RekorBundle logs a hashedrekord entry for payload in the virtual Rekor
// and returns cosign's bundle annotation (with its SET).
func (kl *Keyless) RekorBundle(t testing.TB, payload, sig, keyPEM []byte) string {
	t.Helper()
	out, err := virtualsig.RekorBundle(kl.VS, payload, sig, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Bundle is a keyless cosign v3 bundle with a Rekor entry (SET and
// inclusion proof) and/or an RFC 3161 timestamp.
func (kl *Keyless) Bundle(t testing.TB, subject string, stmt []byte, withTlog, withTSA bool) []byte {
	t.Helper()
	b, err := virtualsig.KeylessBundle(kl.VS, subject, Issuer, stmt, withTlog, withTSA)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
