// Package signing makes cosign-format image signatures with a key,
// in-process and offline: the legacy "sha256-<hex>.sig" tag layout and the
// cosign v3 Sigstore bundle stored as an OCI referrer. It exists for the
// demo, the end-to-end tests and the benchmarks, which need real signatures
// without the cosign CLI or a network. It is not a signing tool for
// production images: use cosign for those.
package signing

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"
)

// Media types and values of cosign's formats.
const (
	SimpleSigningType  = "application/vnd.dev.cosign.simplesigning.v1+json"
	BundleType         = "application/vnd.dev.sigstore.bundle.v0.3+json"
	SignPredicateType  = "https://sigstore.dev/cosign/sign/v1"
	signatureAnnotaton = "dev.cosignproject.cosign/signature"
)

// Signer signs with one ECDSA P-256 key, as `cosign sign --key` does.
type Signer struct {
	kp *sign.EphemeralKeypair
}

// NewSigner makes a Signer with a new key.
func NewSigner() (*Signer, error) {
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		return nil, err
	}
	return &Signer{kp: kp}, nil
}

// PublicKeyPEM is the key to put in a policy (cosign.pub).
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	p, err := s.kp.GetPublicKeyPem()
	return []byte(p), err
}

// LegacyTag is cosign's signature tag for digest d.
func LegacyTag(d v1.Hash) string { return d.Algorithm + "-" + d.Hex + ".sig" }

// Payload is cosign's simple-signing payload naming digest d.
func Payload(dockerReference string, d v1.Hash) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`,
		dockerReference, d.String())
}

// LegacyImage is the manifest cosign pushes to the .sig tag: one
// simple-signing layer signed with the key (no certificate, no Rekor entry).
func (s *Signer) LegacyImage(dockerReference string, d v1.Hash) (v1.Image, error) {
	payload := Payload(dockerReference, d)
	sig, _, err := s.kp.SignData(context.Background(), payload)
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	return mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(payload, SimpleSigningType),
		Annotations: map[string]string{signatureAnnotaton: base64.StdEncoding.EncodeToString(sig)},
	})
}

// Statement is the in-toto statement cosign v3 signs for digest d.
func Statement(d v1.Hash) []byte {
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{%q:%q}}],"predicateType":%q,"predicate":{}}`,
		d.Algorithm, d.Hex, SignPredicateType)
}

// BundleImage is the referrer cosign v3 pushes: a manifest whose only layer
// is a Sigstore bundle (DSSE envelope over the statement, key hint, no
// transparency log entry) and whose subject is the signed image.
func (s *Signer) BundleImage(subject v1.Descriptor) (v1.Image, error) {
	return s.statementImage(subject, Statement(subject.Digest), SignPredicateType)
}

// AttestationStatement is an in-toto statement about digest d with a
// predicate (JSON) of predicateType, as cosign attest writes it.
func AttestationStatement(d v1.Hash, predicateType, predicate string) []byte {
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{%q:%q}}],"predicateType":%q,"predicate":%s}`,
		d.Algorithm, d.Hex, predicateType, predicate)
}

// AttestationImage is the referrer cosign v3 attest pushes: a bundle of
// an in-toto statement with predicate (JSON) of predicateType about
// subject.
func (s *Signer) AttestationImage(subject v1.Descriptor, predicateType, predicate string) (v1.Image, error) {
	return s.statementImage(subject, AttestationStatement(subject.Digest, predicateType, predicate), predicateType)
}

// Attest pushes an attestation bundle about subject to repo by digest.
func (s *Signer) Attest(repo name.Repository, subject v1.Descriptor, predicateType, predicate string, opts ...remote.Option) error {
	img, err := s.AttestationImage(subject, predicateType, predicate)
	if err != nil {
		return err
	}
	return writeByDigest(repo, img, opts...)
}

// writeByDigest pushes a referrer to repo by its digest (ggcr maintains
// the referrers fallback tag when the registry has no API).
func writeByDigest(repo name.Repository, img v1.Image, opts ...remote.Option) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	return remote.Write(repo.Digest(d.String()), img, opts...)
}

// statementImage is a bundle referrer of a signed statement.
func (s *Signer) statementImage(subject v1.Descriptor, statement []byte, predicateType string) (v1.Image, error) {
	pb, err := sign.Bundle(&sign.DSSEData{Data: statement, PayloadType: "application/vnd.in-toto+json"}, s.kp, sign.BundleOptions{})
	if err != nil {
		return nil, fmt.Errorf("signing the bundle: %w", err)
	}
	layer, err := protojson.Marshal(pb)
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIEmptyJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: static.NewLayer(layer, BundleType)})
	if err != nil {
		return nil, err
	}
	img = mutate.Annotations(img, map[string]string{
		"dev.sigstore.bundle.content":       "dsse-envelope",
		"dev.sigstore.bundle.predicateType": predicateType,
	}).(v1.Image)
	return mutate.Subject(img, subject).(v1.Image), nil
}

// SignLegacy pushes a legacy signature of d to repo's .sig tag.
func (s *Signer) SignLegacy(repo name.Repository, d v1.Hash, opts ...remote.Option) error {
	return s.SignLegacyAs(repo, repo.Name(), d, opts...)
}

// SignLegacyAs is SignLegacy with the payload naming the image
// dockerReference, as `cosign sign --sign-container-identity` writes it:
// the name clients pull the image by when the signer reaches its registry
// at another address.
func (s *Signer) SignLegacyAs(repo name.Repository, dockerReference string, d v1.Hash, opts ...remote.Option) error {
	img, err := s.LegacyImage(dockerReference, d)
	if err != nil {
		return err
	}
	return remote.Write(repo.Tag(LegacyTag(d)), img, opts...)
}

// SignBundle pushes a bundle signature of subject to repo by digest (ggcr
// maintains the referrers fallback tag when the registry has no API).
func (s *Signer) SignBundle(repo name.Repository, subject v1.Descriptor, opts ...remote.Option) error {
	img, err := s.BundleImage(subject)
	if err != nil {
		return err
	}
	return writeByDigest(repo, img, opts...)
}

// Hint is the key hint cosign and sigstore-go use: base64 of the SHA-256 of
// the DER public key.
func (s *Signer) Hint() string { return string(s.kp.GetHint()) }
