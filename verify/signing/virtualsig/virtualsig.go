// Package virtualsig builds cosign-format signatures with sigstore-go's
// VirtualSigstore — an in-memory Fulcio, Rekor and TSA — for tests and
// benchmarks; never for production.
//
// Keyless signatures get a Fulcio leaf certificate from the
// VirtualSigstore and a trusted signing time from its Rekor (a SET, and
// for bundles an inclusion proof) and/or its TSA (an RFC 3161 timestamp),
// in both of cosign's storage formats: the legacy ".sig" layer annotations
// and the cosign v3 Sigstore bundle.
package virtualsig

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

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

// cosign's legacy signature layer annotations.
const (
	annSignature   = "dev.cosignproject.cosign/signature"
	annCertificate = "dev.sigstore.cosign/certificate"
	annRekorBundle = "dev.sigstore.cosign/bundle"
	annTimestamp   = "dev.sigstore.cosign/rfc3161timestamp"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Keypair is a sign.Keypair over an existing key, signing with the key's
// default algorithm (ECDSA with the curve's hash, pure Ed25519, RSA
// PKCS#1 v1.5). Its hint is the base64 SHA-256 of the PKIX public key.
type Keypair struct {
	priv crypto.Signer
	alg  signature.AlgorithmDetails
}

var _ sign.Keypair = (*Keypair)(nil)

// NewKeypair wraps priv as a sign.Keypair.
func NewKeypair(priv crypto.Signer) (*Keypair, error) {
	alg, err := signature.GetDefaultAlgorithmDetails(priv.Public())
	if err != nil {
		return nil, err
	}
	return &Keypair{priv: priv, alg: alg}, nil
}

// GetHashAlgorithm implements sign.Keypair.
func (k *Keypair) GetHashAlgorithm() protocommon.HashAlgorithm { return k.alg.GetProtoHashType() }

// GetSigningAlgorithm implements sign.Keypair.
func (k *Keypair) GetSigningAlgorithm() protocommon.PublicKeyDetails {
	return k.alg.GetSignatureAlgorithm()
}

// GetHint implements sign.Keypair: the base64 SHA-256 of the PKIX public
// key, or nil if the key cannot be marshalled.
func (k *Keypair) GetHint() []byte {
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(der)
	return []byte(b64(sum[:]))
}

// GetKeyAlgorithm implements sign.Keypair.
func (k *Keypair) GetKeyAlgorithm() string { return "" }

// GetPublicKey implements sign.Keypair.
func (k *Keypair) GetPublicKey() crypto.PublicKey { return k.priv.Public() }

// GetPublicKeyPem implements sign.Keypair.
func (k *Keypair) GetPublicKeyPem() (string, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(k.priv.Public())
	return string(b), err
}

// SignData implements sign.Keypair: it hashes data with the algorithm's
// hash (if any) and signs the digest.
func (k *Keypair) SignData(_ context.Context, data []byte) ([]byte, []byte, error) {
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

// RekorBundle logs a hashedrekord entry for payload, signed as sig by the
// PEM key or certificate keyPEM, in the virtual Rekor of vs and returns
// cosign's bundle annotation (dev.sigstore.cosign/bundle) with its SET.
func RekorBundle(vs *ca.VirtualSigstore, payload, sig, keyPEM []byte) (string, error) {
	sum := sha256.Sum256(payload)
	body := fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":%q}},"signature":{"content":%q,"publicKey":{"content":%q}}}}`,
		hex.EncodeToString(sum[:]), b64(sig), b64(keyPEM))
	logID, err := vs.RekorLogID()
	if err != nil {
		return "", err
	}
	p := tlog.RekorPayload{Body: b64([]byte(body)), IntegratedTime: time.Now().Add(time.Minute).Unix(), LogIndex: 42, LogID: logID}
	set, err := vs.RekorSignPayload(p)
	if err != nil {
		return "", err
	}
	out, err := json.Marshal(map[string]any{"SignedEntryTimestamp": set, "Payload": p})
	return string(out), err
}

// LegacyKeyless signs payload (a cosign simple-signing payload) as cosign
// sign does keyless, with a leaf certificate for subject and issuer from
// vs, and returns the annotations of the legacy ".sig" layer: the
// signature and certificate, cosign's Rekor bundle (a SET) if withSET, and
// an RFC 3161 timestamp of the signature if withTSA.
func LegacyKeyless(vs *ca.VirtualSigstore, subject, issuer string, payload []byte, withSET, withTSA bool) (map[string]string, error) {
	leaf, priv, err := vs.GenerateLeafCert(subject, issuer)
	if err != nil {
		return nil, err
	}
	s, err := signature.LoadDefaultSigner(priv.(crypto.Signer))
	if err != nil {
		return nil, err
	}
	sig, err := s.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	certPEM, err := cryptoutils.MarshalCertificateToPEM(leaf)
	if err != nil {
		return nil, err
	}
	ann := map[string]string{annSignature: b64(sig), annCertificate: string(certPEM)}
	if withSET {
		if ann[annRekorBundle], err = RekorBundle(vs, payload, sig, certPEM); err != nil {
			return nil, err
		}
	}
	if withTSA {
		ts, err := vs.TimestampResponse(sig)
		if err != nil {
			return nil, err
		}
		ann[annTimestamp] = fmt.Sprintf(`{"SignedRFC3161Timestamp":%q}`, b64(ts))
	}
	return ann, nil
}

// KeylessBundle is a keyless cosign v3 Sigstore bundle, as JSON: a DSSE
// envelope over the in-toto statement stmt, signed with a leaf certificate
// for subject and issuer from vs, with a Rekor entry (SET and inclusion
// proof) if withTlog and an RFC 3161 timestamp if withTSA.
func KeylessBundle(vs *ca.VirtualSigstore, subject, issuer string, stmt []byte, withTlog, withTSA bool) ([]byte, error) {
	leaf, priv, err := vs.GenerateLeafCert(subject, issuer)
	if err != nil {
		return nil, err
	}
	return KeylessBundleWith(vs, leaf, priv.(crypto.Signer), stmt, withTlog, withTSA)
}

// KeylessBundleWith is KeylessBundle signed with a leaf certificate made
// elsewhere (one with a URI SAN and Fulcio extensions, say), logged in and
// timestamped by vs.
func KeylessBundleWith(vs *ca.VirtualSigstore, leaf *x509.Certificate, priv crypto.Signer, stmt []byte, withTlog, withTSA bool) ([]byte, error) {
	opts := sign.BundleOptions{CertificateProvider: certProvider{leaf.Raw}}
	if withTlog {
		opts.TransparencyLogs = []sign.Transparency{vsRekor{vs, leaf}}
	}
	kp, err := NewKeypair(priv)
	if err != nil {
		return nil, err
	}
	pb, err := sign.Bundle(&sign.DSSEData{Data: stmt, PayloadType: "application/vnd.in-toto+json"}, kp, opts)
	if err != nil {
		return nil, err
	}
	if withTSA {
		ts, err := vs.TimestampResponse(pb.GetDsseEnvelope().Signatures[0].Sig)
		if err != nil {
			return nil, err
		}
		pb.VerificationMaterial.TimestampVerificationData = &protobundle.TimestampVerificationData{
			Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: ts}},
		}
	}
	return protojson.Marshal(pb)
}
