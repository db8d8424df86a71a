package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify/signing/virtualsig"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"
)

const (
	testIssuer  = "https://issuer.example"
	testSubject = "alice@example.com"
	vsRoot      = "virtual"
)

// payloadFor is a cosign simple-signing payload for digest d.
func payloadFor(dockerRef string, d v1.Hash) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, dockerRef, d.String())
}

// statementFor is a cosign v3 in-toto statement for digest d.
func statementFor(d v1.Hash, predicateType string) []byte {
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":%q},"annotations":{}}],"predicateType":%q,"predicate":{}}`, d.Hex, predicateType)
}

// testKey is a signing key and the policy authority trusting it.
type testKey struct {
	name string
	priv crypto.Signer
}

var (
	keysOnce sync.Once
	keys     map[string]*testKey
)

// testKeys returns one key per supported type, generated once.
func testKeys(t testing.TB) map[string]*testKey {
	keysOnce.Do(func() {
		p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		_, ed, _ := ed25519.GenerateKey(rand.Reader)
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		p256b, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		keys = map[string]*testKey{
			"ecdsa-p256": {"ecdsa-p256", p256}, "ecdsa-p384": {"ecdsa-p384", p384},
			"ed25519": {"ed25519", ed}, "rsa-2048": {"rsa-2048", rk}, "other-p256": {"other-p256", p256b},
		}
	})
	return keys
}

// authority is a key authority for k.
func (k *testKey) authority(requireTlog bool, trustRoot string) *policy.Authority {
	pemKey, _ := cryptoutils.MarshalPublicKeyToPEM(k.priv.Public())
	return &policy.Authority{
		Name:        k.name,
		Key:         &policy.Key{PEM: pemKey, Public: k.priv.Public(), Hint: hintOf(k.priv.Public())},
		RequireTlog: requireTlog,
		TrustRoot:   trustRoot,
	}
}

// signLegacy signs a payload as cosign sign --key does (key's default
// algorithm: ECDSA with the curve's hash, pure Ed25519, RSA PKCS#1 v1.5).
func (k *testKey) signLegacy(t testing.TB, payload []byte) []byte {
	t.Helper()
	s, err := signature.LoadDefaultSigner(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// legacyKeyLayer is a legacy key signature of d, without a Rekor entry.
func (k *testKey) legacyKeyLayer(t testing.TB, dockerRef string, d v1.Hash) layer {
	p := payloadFor(dockerRef, d)
	return layer{payload: p, ann: map[string]string{annSignature: b64(k.signLegacy(t, p))}}
}

// keyless is a VirtualSigstore with helpers for keyless signatures.
type keyless struct {
	vs *ca.VirtualSigstore
}

func newKeyless(t testing.TB) *keyless {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return &keyless{vs: vs}
}

func (kl *keyless) trust() TrustProvider { return TrustMap{vsRoot: kl.vs} }

// authority is a keyless authority for one identity.
func keylessAuthority(id policy.Identity, requireTlog bool) *policy.Authority {
	return &policy.Authority{
		Name:        "keyless",
		Keyless:     &policy.Keyless{Identities: []policy.Identity{id}},
		RequireTlog: requireTlog,
		TrustRoot:   vsRoot,
	}
}

// legacyLayer is a legacy keyless signature of d with a Rekor SET and/or
// an RFC 3161 timestamp.
func (kl *keyless) legacyLayer(t testing.TB, subject string, d v1.Hash, withSET, withTSA bool) layer {
	t.Helper()
	p := payloadFor("registry.example/app", d)
	ann, err := virtualsig.LegacyKeyless(kl.vs, subject, testIssuer, p, withSET, withTSA)
	if err != nil {
		t.Fatal(err)
	}
	return layer{payload: p, ann: ann}
}

// rekorBundle logs a hashedrekord entry for payload in the virtual Rekor
// and returns cosign's bundle annotation (with its SET).
func (kl *keyless) rekorBundle(t testing.TB, payload, sig, keyPEM []byte) string {
	t.Helper()
	out, err := virtualsig.RekorBundle(kl.vs, payload, sig, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// keyBundle is a cosign v3 bundle signed with key k.
func (k *testKey) keyBundle(t testing.TB, stmt []byte) []byte {
	t.Helper()
	kp, err := virtualsig.NewKeypair(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := sign.Bundle(&sign.DSSEData{Data: stmt, PayloadType: "application/vnd.in-toto+json"}, kp, sign.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bundle is a keyless cosign v3 bundle with a Rekor entry (SET and
// inclusion proof) and/or an RFC 3161 timestamp.
func (kl *keyless) bundle(t testing.TB, subject string, stmt []byte, withTlog, withTSA bool) []byte {
	t.Helper()
	b, err := virtualsig.KeylessBundle(kl.vs, subject, testIssuer, stmt, withTlog, withTSA)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
