package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/portcullis-dev/portcullis/oci"
)

// Legacy cosign signature layers (cosign pkg/oci/static/signature.go).
const (
	annSignature   = "dev.cosignproject.cosign/signature"
	annCertificate = "dev.sigstore.cosign/certificate"
	annChain       = "dev.sigstore.cosign/chain"
	annRekorBundle = "dev.sigstore.cosign/bundle"
	annTimestamp   = "dev.sigstore.cosign/rfc3161timestamp"
	// CosignSignatureType is the critical.type of a cosign image signature
	// payload.
	CosignSignatureType = "cosign container image signature"
)

// simpleSigning is the signed payload of a legacy signature
// (sigstore/sigstore pkg/signature/payload).
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

// tagManifest fetches a cosign tag ("sha256-<hex>.sig", ".att"); nil when
// absent.
func (e *examiner) tagManifest(ctx context.Context, tag string) (*Manifest, error) {
	m, err := e.r.Manifest(ctx, e.repo, tag)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tag %s in %s: %w", tag, e.repo, err)
	}
	return m, nil
}

// legacyCandidates lists the simple-signing layers of a .sig manifest; a
// manifest that cannot be parsed is returned as one malformed signature.
func legacyCandidates(m *Manifest, d v1.Hash) ([]candidate, *Signature) {
	if m == nil {
		return nil, nil
	}
	source := "tag " + legacyTag(d)
	mf, err := v1.ParseManifest(bytes.NewReader(m.Bytes))
	if err != nil {
		return nil, malformed(Legacy, source, "not an image manifest: "+err.Error())
	}
	var cands []candidate
	for i, l := range mf.Layers {
		if string(l.MediaType) == oci.CosignSimpleSigning {
			cands = append(cands, legacyCandidate{source: fmt.Sprintf("%s layer %d", source, i), layer: l})
		}
	}
	return cands, nil
}

// legacyCandidate is one simple-signing layer of a .sig tag.
type legacyCandidate struct {
	source string
	layer  v1.Descriptor
}

func (c legacyCandidate) examine(ctx context.Context, e *examiner) ([]*Signature, error) {
	payload, known := e.rebuiltPayload(c.layer)
	if !known {
		var why string
		var err error
		payload, why, err = e.layerBlob(ctx, c.source, "payload", c.layer)
		if err != nil || why != "" {
			return []*Signature{malformed(Legacy, c.source, why)}, err
		}
	}
	s, err := parseLegacyLayer(payload, c.layer.Annotations)
	if err != nil {
		return []*Signature{malformed(Legacy, c.source, err.Error())}, nil
	}
	s.Source = c.source
	return []*Signature{s}, nil
}

// layerBlob reads the blob of a signature layer: why it cannot be used
// (too large, not found), or an error when the upstream cannot answer.
func (e *examiner) layerBlob(ctx context.Context, source, what string, layer v1.Descriptor) ([]byte, string, error) {
	if layer.Size > e.lim.MaxLayerBytes {
		return nil, fmt.Sprintf("%s is %d bytes, over the %d-byte limit", what, layer.Size, e.lim.MaxLayerBytes), nil
	}
	b, err := e.r.Blob(ctx, e.repo, layer.Digest, e.lim.MaxLayerBytes)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Sprintf("%s blob %s not found", what, layer.Digest), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", source, err)
	}
	return b, "", nil
}

// parseLegacyLayer turns a simple-signing payload and its layer annotations
// into a Signature. Errors describe what is malformed.
func parseLegacyLayer(payload []byte, ann map[string]string) (_ *Signature, err error) {
	defer recoverTo(&err)
	var claim simpleSigning
	if err := json.Unmarshal(payload, &claim); err != nil {
		return nil, fmt.Errorf("payload is not a simple-signing JSON document: %w", err)
	}
	sig, err := decodeB64(ann[annSignature])
	if err != nil || len(sig) == 0 {
		return nil, fmt.Errorf("signature annotation is missing or not base64")
	}
	ent := &legacyEntity{payload: payload}
	digest := sha256.Sum256(payload)
	ent.sig = bundle.NewMessageSignature(digest[:], "SHA2_256", sig)
	if err := ent.parseMaterial(ann); err != nil {
		return nil, err
	}
	s := &Signature{
		Format:               Legacy,
		Entity:               ent,
		DockerManifestDigest: claim.Critical.Image.DockerManifestDigest,
		DockerReference:      claim.Critical.Identity.DockerReference,
		claimType:            claim.Critical.Type,
		payload:              payload,
	}
	s.facts = ent.facts()
	s.Signer = s.facts.signer()
	return s, nil
}

// parseMaterial reads the certificate, chain, Rekor bundle and timestamp
// annotations.
func (ent *legacyEntity) parseMaterial(ann map[string]string) error {
	if pemCert := ann[annCertificate]; pemCert != "" {
		certs, err := parseCertificates([]byte(pemCert))
		if err != nil {
			return fmt.Errorf("certificate annotation: %w", err)
		}
		ent.cert = &certContent{leaf: certs[0]}
		if chain := ann[annChain]; chain != "" {
			if ent.cert.intermediates, err = parseChain([]byte(chain)); err != nil {
				return fmt.Errorf("chain annotation: %w", err)
			}
		}
	}
	if rb := ann[annRekorBundle]; rb != "" {
		entry, err := parseRekorBundle([]byte(rb))
		if err != nil {
			return fmt.Errorf("bundle annotation: %w", err)
		}
		ent.entries = []*tlog.Entry{entry}
	}
	if ts := ann[annTimestamp]; ts != "" {
		der, err := parseTimestampAnnotation([]byte(ts))
		if err != nil {
			return fmt.Errorf("rfc3161timestamp annotation: %w", err)
		}
		ent.timestamps = [][]byte{der}
	}
	return nil
}

// legacyEntity is a legacy signature as a sigstore-go SignedEntity: a
// message signature over sha256(payload), verified with a certificate (and
// intermediates) or a key, with an optional Rekor SET and RFC 3161
// timestamp. It is immutable, so safe to verify concurrently.
type legacyEntity struct {
	payload    []byte
	sig        sgverify.SignatureContent // a message signature (.sig) or a DSSE envelope (.att)
	cert       *certContent              // nil for key signatures
	entries    []*tlog.Entry
	timestamps [][]byte
	// layer is the raw DSSE envelope of an .att layer: what cosign v2's
	// attest --timestamp-server-url timestamps (see envelopeTimestamp).
	layer []byte
}

var _ sgverify.SignedEntity = (*legacyEntity)(nil)

func (ent *legacyEntity) HasInclusionPromise() bool { return len(ent.entries) > 0 }
func (ent *legacyEntity) HasInclusionProof() bool   { return false }
func (ent *legacyEntity) Version() (string, error)  { return "v0.1", nil }
func (ent *legacyEntity) Timestamps() ([][]byte, error) {
	return ent.timestamps, nil
}
func (ent *legacyEntity) TlogEntries() ([]*tlog.Entry, error) { return ent.entries, nil }
func (ent *legacyEntity) SignatureContent() (sgverify.SignatureContent, error) {
	return ent.sig, nil
}

func (ent *legacyEntity) VerificationContent() (sgverify.VerificationContent, error) {
	if ent.cert == nil {
		return keyContent{}, nil
	}
	return ent.cert, nil
}

// asKey returns the entity verified as a key signature, ignoring any
// certificate (cosign --key does the same for legacy layers).
func (ent *legacyEntity) asKey() *legacyEntity {
	if ent.cert == nil {
		return ent
	}
	k := *ent
	k.cert = nil
	return &k
}

func (ent *legacyEntity) facts() sigFacts {
	f := sigFacts{hasTlog: len(ent.entries) > 0, hasSET: len(ent.entries) > 0, hasTimestamp: len(ent.timestamps) > 0}
	if ent.cert != nil {
		f.setCert(ent.cert.leaf)
	} else if len(ent.entries) > 0 {
		f.keyHint = hintOf(ent.entries[0].PublicKey())
	}
	return f
}

// rekorBundle is the dev.sigstore.cosign/bundle annotation
// (cosign pkg/cosign/bundle/rekor.go).
type rekorBundle struct {
	SignedEntryTimestamp []byte `json:"SignedEntryTimestamp"`
	Payload              struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogIndex       int64  `json:"logIndex"`
		LogID          string `json:"logID"`
	} `json:"Payload"`
}

// timestampAnnotation is the dev.sigstore.cosign/rfc3161timestamp annotation.
type timestampAnnotation struct {
	SignedRFC3161Timestamp []byte `json:"SignedRFC3161Timestamp"`
}

func parseTimestampAnnotation(b []byte) ([]byte, error) {
	var ts timestampAnnotation
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if len(ts.SignedRFC3161Timestamp) == 0 {
		return nil, errors.New("no SignedRFC3161Timestamp")
	}
	return ts.SignedRFC3161Timestamp, nil
}

func decodeB64(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(s)
}
