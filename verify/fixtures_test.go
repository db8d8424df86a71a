package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/portcullis-dev/portcullis/policy"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
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
	leaf, priv, err := kl.vs.GenerateLeafCert(subject, testIssuer)
	if err != nil {
		t.Fatal(err)
	}
	p := payloadFor("registry.example/app", d)
	sig := (&testKey{priv: priv.(crypto.Signer)}).signLegacy(t, p)
	certPEM, _ := cryptoutils.MarshalCertificateToPEM(leaf)
	ann := map[string]string{annSignature: b64(sig), annCertificate: string(certPEM)}
	if withSET {
		ann[annRekorBundle] = kl.rekorBundle(t, p, sig, certPEM)
	}
	if withTSA {
		ts, err := kl.vs.TimestampResponse(sig)
		if err != nil {
			t.Fatal(err)
		}
		ann[annTimestamp] = fmt.Sprintf(`{"SignedRFC3161Timestamp":%q}`, b64(ts))
	}
	return layer{payload: p, ann: ann}
}

// rekorBundle logs a hashedrekord entry for payload in the virtual Rekor
// and returns cosign's bundle annotation (with its SET).
func (kl *keyless) rekorBundle(t testing.TB, payload, sig, keyPEM []byte) string {
	t.Helper()
	sum := sha256.Sum256(payload)
	body := fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":%q}},"signature":{"content":%q,"publicKey":{"content":%q}}}}`,
		hex.EncodeToString(sum[:]), b64(sig), b64(keyPEM))
	logID, err := kl.vs.RekorLogID()
	if err != nil {
		t.Fatal(err)
	}
	p := tlog.RekorPayload{Body: b64([]byte(body)), IntegratedTime: time.Now().Add(time.Minute).Unix(), LogIndex: 42, LogID: logID}
	set, err := kl.vs.RekorSignPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": p})
	return string(out)
}

// keypair is a sign.Keypair over an existing key.
type keypair struct {
	priv crypto.Signer
	alg  signature.AlgorithmDetails
}

func newKeypair(t testing.TB, priv crypto.Signer) *keypair {
	alg, err := signature.GetDefaultAlgorithmDetails(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &keypair{priv: priv, alg: alg}
}

func (k *keypair) GetHashAlgorithm() protocommon.HashAlgorithm { return k.alg.GetProtoHashType() }
func (k *keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails {
	return k.alg.GetSignatureAlgorithm()
}
func (k *keypair) GetHint() []byte                { return []byte(hintOf(k.priv.Public())) }
func (k *keypair) GetKeyAlgorithm() string        { return "" }
func (k *keypair) GetPublicKey() crypto.PublicKey { return k.priv.Public() }
func (k *keypair) GetPublicKeyPem() (string, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(k.priv.Public())
	return string(b), err
}
func (k *keypair) SignData(_ context.Context, data []byte) ([]byte, []byte, error) {
	hf := k.alg.GetHashType()
	toSign := data
	if hf != crypto.Hash(0) {
		h := hf.New()
		h.Write(data)
		toSign = h.Sum(nil)
	}
	sig, err := k.priv.Sign(rand.Reader, toSign, hf)
	return sig, toSign, err
}

// certProvider hands sign.Bundle a pre-made certificate.
type certProvider struct{ der []byte }

func (c certProvider) GetCertificate(context.Context, sign.Keypair, *sign.CertificateProviderOptions) ([]byte, error) {
	return c.der, nil
}

// keyBundle is a cosign v3 bundle signed with key k.
func (k *testKey) keyBundle(t testing.TB, stmt []byte) []byte {
	t.Helper()
	pb, err := sign.Bundle(&sign.DSSEData{Data: stmt, PayloadType: "application/vnd.in-toto+json"}, newKeypair(t, k.priv), sign.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return marshalBundle(t, pb)
}

// bundle is a keyless cosign v3 bundle with a Rekor entry (SET and
// inclusion proof) and/or an RFC 3161 timestamp.
func (kl *keyless) bundle(t testing.TB, subject string, stmt []byte, withTlog, withTSA bool) []byte {
	t.Helper()
	leaf, priv, err := kl.vs.GenerateLeafCert(subject, testIssuer)
	if err != nil {
		t.Fatal(err)
	}
	opts := sign.BundleOptions{CertificateProvider: certProvider{leaf.Raw}}
	if withTlog {
		opts.TransparencyLogs = []sign.Transparency{vsRekor{kl.vs, leaf}}
	}
	pb, err := sign.Bundle(&sign.DSSEData{Data: stmt, PayloadType: "application/vnd.in-toto+json"}, newKeypair(t, priv.(crypto.Signer)), opts)
	if err != nil {
		t.Fatal(err)
	}
	if withTSA {
		ts, err := kl.vs.TimestampResponse(pb.GetDsseEnvelope().Signatures[0].Sig)
		if err != nil {
			t.Fatal(err)
		}
		pb.VerificationMaterial.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts}},
		}
	}
	return marshalBundle(t, pb)
}

// vsRekor is a sign.Transparency logging DSSE entries in a VirtualSigstore.
type vsRekor struct {
	vs   *ca.VirtualSigstore
	leaf *x509.Certificate
}

func (r vsRekor) GetTransparencyLogEntry(_ context.Context, _ []byte, b *protobundle.Bundle) error {
	pe := b.GetDsseEnvelope()
	env := &dsse.Envelope{PayloadType: pe.PayloadType, Payload: b64(pe.Payload),
		Signatures: []dsse.Signature{{Sig: b64(pe.Signatures[0].Sig)}}}
	integrated := time.Now().Add(time.Minute).Unix()
	entry, err := r.vs.GenerateTlogEntry(r.leaf, env, pe.Signatures[0].Sig, integrated, true)
	if err != nil {
		return err
	}
	tle := entry.TransparencyLogEntry()
	tle.KindVersion = &rekorpb.KindVersion{Kind: "dsse", Version: "0.0.1"}
	set, err := r.vs.RekorSignPayload(tlog.RekorPayload{Body: b64(tle.CanonicalizedBody), IntegratedTime: integrated,
		LogIndex: tle.LogIndex, LogID: hex.EncodeToString(tle.LogId.KeyId)})
	if err != nil {
		return err
	}
	tle.InclusionPromise = &rekorpb.InclusionPromise{SignedEntryTimestamp: set}
	b.VerificationMaterial.TlogEntries = append(b.VerificationMaterial.TlogEntries, tle)
	return nil
}

func marshalBundle(t testing.TB, pb *protobundle.Bundle) []byte {
	t.Helper()
	b, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
