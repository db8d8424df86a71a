package verifytest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify/signing/virtualsig"
)

// Legacy cosign annotation of a layer's signature.
const annSignature = "dev.cosignproject.cosign/signature"

// Payload is a cosign simple-signing payload for digest d.
func Payload(dockerRef string, d v1.Hash) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, dockerRef, d.String())
}

// Statement is a cosign v3 in-toto statement for digest d.
func Statement(d v1.Hash, predicateType string) []byte {
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":%q},"annotations":{}}],"predicateType":%q,"predicate":{}}`, d.Hex, predicateType)
}

// Layer is one legacy signature layer to push: the payload blob and the
// layer's annotations (signature, certificate, Rekor bundle, timestamp).
type Layer struct {
	Payload     []byte
	Annotations map[string]string
}

// Key is a signing key and the policy authority trusting it.
type Key struct {
	Name string
	Priv crypto.Signer
}

var (
	keysOnce sync.Once
	keys     map[string]*Key
)

// Keys returns one key per supported type, generated once per process:
// "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048", and "other-p256" (a
// second P-256 key).
func Keys() map[string]*Key {
	keysOnce.Do(func() {
		p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		_, ed, _ := ed25519.GenerateKey(rand.Reader)
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		p256b, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		keys = map[string]*Key{
			"ecdsa-p256": {"ecdsa-p256", p256}, "ecdsa-p384": {"ecdsa-p384", p384},
			"ed25519": {"ed25519", ed}, "rsa-2048": {"rsa-2048", rk}, "other-p256": {"other-p256", p256b},
		}
	})
	return keys
}

// Authority is a key authority for k, as the policy compiler makes it.
func (k *Key) Authority(requireTlog bool, trustRoot string) *policy.Authority {
	pemKey, _ := cryptoutils.MarshalPublicKeyToPEM(k.Priv.Public())
	return &policy.Authority{
		Name:        k.Name,
		Key:         &policy.Key{PEM: pemKey, Public: k.Priv.Public(), Hint: hint(k.Priv.Public())},
		RequireTlog: requireTlog,
		TrustRoot:   trustRoot,
	}
}

// hint is sigstore's key hint: base64 SHA-256 of the PKIX public key.
func hint(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// SignLegacy signs a payload as cosign sign --key does (the key's default
// algorithm: ECDSA with the curve's hash, pure Ed25519, RSA PKCS#1 v1.5).
func (k *Key) SignLegacy(t testing.TB, payload []byte) []byte {
	t.Helper()
	s, err := signature.LoadDefaultSigner(k.Priv)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// LegacyKeyLayer is a legacy key signature of d, without a Rekor entry.
func (k *Key) LegacyKeyLayer(t testing.TB, dockerRef string, d v1.Hash) Layer {
	p := Payload(dockerRef, d)
	return Layer{Payload: p, Annotations: map[string]string{annSignature: B64(k.SignLegacy(t, p))}}
}

// KeyBundle is a cosign v3 bundle of stmt signed with key k.
func (k *Key) KeyBundle(t testing.TB, stmt []byte) []byte {
	t.Helper()
	kp, err := virtualsig.NewKeypair(k.Priv)
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

// B64 is standard base64.
func B64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// StatementWith is an in-toto statement for digest d with a predicate
// (JSON) of the given type, in the statement version cosign attest writes.
func StatementWith(d v1.Hash, predicateType, predicate string) []byte {
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"registry.example/app","digest":{"sha256":%q}}],"predicateType":%q,"predicate":%s}`, d.Hex, predicateType, predicate)
}

// EnvelopeLayer is a legacy cosign .att layer: a DSSE envelope over stmt
// signed with k (no Rekor entry), annotated as cosign annotates it.
func (k *Key) EnvelopeLayer(t testing.TB, stmt []byte, predicateType string) Layer {
	t.Helper()
	const payloadType = "application/vnd.in-toto+json"
	pae := fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(stmt), stmt)
	env := fmt.Appendf(nil, `{"payloadType":%q,"payload":%q,"signatures":[{"keyid":"","sig":%q}]}`, payloadType, B64(stmt), B64(k.SignLegacy(t, pae)))
	return Layer{Payload: env, Annotations: map[string]string{annSignature: "", "predicateType": predicateType}}
}
