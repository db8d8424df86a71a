package verify

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	rekorpb "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// certContent is the verification material of a certificate signature:
// the leaf and the intermediates that came with it.
type certContent struct {
	leaf          *x509.Certificate
	intermediates []*x509.Certificate
}

var _ sgverify.VerificationContent = (*certContent)(nil)

func (c *certContent) CompareKey(key any, _ root.TrustedMaterial) bool {
	cert, ok := key.(*x509.Certificate)
	return ok && c.leaf.Equal(cert)
}

func (c *certContent) ValidAtTime(t time.Time, _ root.TrustedMaterial) bool {
	return !t.Before(c.leaf.NotBefore) && !t.After(c.leaf.NotAfter)
}

func (c *certContent) Certificate() *x509.Certificate        { return c.leaf }
func (c *certContent) Intermediates() []*x509.Certificate    { return c.intermediates }
func (c *certContent) PublicKey() sgverify.PublicKeyProvider { return nil }

// keyContent is the verification material of a key signature. Legacy
// signatures carry no key id, so the hint is empty: the key authority's
// trusted material answers every hint with its one key (see keyMaterial).
type keyContent struct{}

var _ sgverify.VerificationContent = keyContent{}

func (keyContent) Hint() string { return "" }

// CompareKey reports whether key (from a Rekor entry: a key, or a
// certificate whose key is compared) is the trusted key.
func (keyContent) CompareKey(key any, tm root.TrustedMaterial) bool {
	v, err := tm.PublicKeyVerifier("")
	if err != nil {
		return false
	}
	pub, err := v.PublicKey()
	if err != nil {
		return false
	}
	if cert, ok := key.(*x509.Certificate); ok {
		key = cert.PublicKey
	}
	eq, ok := key.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(pub)
}

func (keyContent) ValidAtTime(t time.Time, tm root.TrustedMaterial) bool {
	v, err := tm.PublicKeyVerifier("")
	return err == nil && v.ValidAtTime(t)
}

func (keyContent) Certificate() *x509.Certificate        { return nil }
func (keyContent) Intermediates() []*x509.Certificate    { return nil }
func (keyContent) PublicKey() sgverify.PublicKeyProvider { return keyContent{} }

// parseCertificates parses one or more PEM CERTIFICATE blocks. The SAN
// critical-extension mark is cleared as sigstore-go's Verify would do, so
// that concurrent verifications never write to a shared certificate.
func parseCertificates(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := bytes.TrimSpace(b); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("not PEM")
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("not an X.509 certificate: %w", err)
		}
		clearSANCritical(c)
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("not PEM")
	}
	return certs, nil
}

// parseChain parses the chain annotation (intermediates then root) and
// keeps the intermediates: roots come only from the trust root.
func parseChain(b []byte) ([]*x509.Certificate, error) {
	certs, err := parseCertificates(b)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, c := range certs {
		if !bytes.Equal(c.RawSubject, c.RawIssuer) {
			out = append(out, c)
		}
	}
	return out, nil
}

func clearSANCritical(c *x509.Certificate) {
	var keep []asn1.ObjectIdentifier
	for _, oid := range c.UnhandledCriticalExtensions {
		if !oid.Equal(cryptoutils.SANOID) {
			keep = append(keep, oid)
		}
	}
	c.UnhandledCriticalExtensions = keep
}

// parseRekorBundle turns the legacy Rekor bundle annotation into a tlog
// entry carrying its SET as inclusion promise.
func parseRekorBundle(b []byte) (*tlog.Entry, error) {
	var rb rekorBundle
	if err := json.Unmarshal(b, &rb); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	tle, err := rb.entry()
	if err != nil {
		return nil, err
	}
	entry, err := tlog.ParseTransparencyLogEntry(tle)
	if err != nil {
		return nil, fmt.Errorf("Rekor entry: %w", err)
	}
	if err := tlog.ValidateEntry(entry); err != nil {
		return nil, fmt.Errorf("Rekor entry: %w", err)
	}
	return entry, nil
}

// entry is the bundle as a protobuf transparency log entry.
func (rb *rekorBundle) entry() (*rekorpb.TransparencyLogEntry, error) {
	if len(rb.SignedEntryTimestamp) == 0 {
		return nil, errors.New("no SignedEntryTimestamp")
	}
	body, err := decodeB64(rb.Payload.Body)
	if err != nil {
		return nil, errors.New("Payload.body is not base64")
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil || len(logID) == 0 {
		return nil, errors.New("Payload.logID is not hex")
	}
	var kv struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(body, &kv); err != nil {
		return nil, fmt.Errorf("Payload.body is not JSON: %w", err)
	}
	return &rekorpb.TransparencyLogEntry{
		LogIndex:          rb.Payload.LogIndex,
		LogId:             &protocommon.LogId{KeyId: logID},
		KindVersion:       &rekorpb.KindVersion{Kind: kv.Kind, Version: kv.APIVersion},
		IntegratedTime:    rb.Payload.IntegratedTime,
		InclusionPromise:  &rekorpb.InclusionPromise{SignedEntryTimestamp: rb.SignedEntryTimestamp},
		CanonicalizedBody: body,
	}, nil
}

// hintOf is a key's cosign/sigstore hint: base64(sha256(DER SPKI)); for a
// certificate, its key's. "" when it cannot be computed.
func hintOf(key any) string {
	if cert, ok := key.(*x509.Certificate); ok {
		key = cert.PublicKey
	}
	if key == nil {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// setCert records the unverified identity of a certificate.
func (f *sigFacts) setCert(leaf *x509.Certificate) {
	f.hasCert = true
	f.notAfter = leaf.NotAfter
	if sum, err := certificate.SummarizeCertificate(leaf); err == nil {
		f.summary = &sum
		f.issuer, f.san = sum.Extensions.Issuer, sum.SubjectAlternativeName
	}
}

// signer describes the unverified signer for messages.
func (f sigFacts) signer() string {
	switch {
	case f.hasCert:
		return fmt.Sprintf("certificate issuer %s subject %s", orNone(f.issuer), orNone(f.san))
	case f.keyHint != "":
		return "key " + f.keyHint
	}
	return "an unidentified key"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
