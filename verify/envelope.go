package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/portcullis-dev/portcullis/oci"
)

// This file finds cosign's attestations stored as DSSE envelope layers:
// the layers of a legacy "sha256-<hex>.att" tag, and those of an in-toto
// referrer (artifactType application/vnd.in-toto+json, cosign's
// WriteAttestationsReferrer). Each layer is one DSSE envelope around an
// in-toto statement, with the certificate, chain, Rekor bundle and
// timestamp in annotations as on a .sig layer.

// envelopeCandidates lists the DSSE layers of an .att manifest, at most
// max; a manifest that cannot be parsed is returned as one malformed
// attestation.
func envelopeCandidates(m *Manifest, source string, max int) ([]candidate, *Signature) {
	if m == nil {
		return nil, nil
	}
	mf, err := v1.ParseManifest(bytes.NewReader(m.Bytes))
	if err != nil {
		return nil, attMalformed(source, "not an image manifest: "+err.Error())
	}
	return envelopeLayers(mf, source, max), nil
}

// envelopeLayers lists the DSSE layers of a manifest, at most max.
func envelopeLayers(mf *v1.Manifest, source string, max int) []candidate {
	var cands []candidate
	seen := map[v1.Hash]bool{}
	for i, l := range mf.Layers {
		if len(cands) == max {
			break
		}
		if string(l.MediaType) == oci.DSSEEnvelope && !seen[l.Digest] {
			seen[l.Digest] = true // the same envelope twice is one
			cands = append(cands, envelopeCandidate{source: fmt.Sprintf("%s layer %d", source, i), layer: l})
		}
	}
	return cands
}

// envelopeCandidate is one DSSE envelope layer.
type envelopeCandidate struct {
	source string
	layer  v1.Descriptor
}

func (c envelopeCandidate) examine(ctx context.Context, e *examiner) ([]*Signature, error) {
	b, why, err := e.layerBlob(ctx, c.source, "envelope", c.layer)
	if err != nil {
		return nil, err
	}
	s := malformed(Envelope, c.source, why)
	if why == "" {
		if s, err = parseEnvelopeLayer(b, c.layer.Annotations); err != nil {
			s = malformed(Envelope, c.source, err.Error())
		}
	}
	s.Source, s.Attestation = c.source, true
	return []*Signature{s}, nil
}

func attMalformed(source, why string) *Signature {
	s := malformed(Envelope, source, why)
	s.Attestation = true
	return s
}

// parseEnvelopeLayer turns a DSSE envelope layer and its annotations into
// a Signature. Errors describe what is malformed.
func parseEnvelopeLayer(b []byte, ann map[string]string) (_ *Signature, err error) {
	defer recoverTo(&err)
	var env dsse.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	if len(env.Signatures) == 0 {
		return nil, errors.New("DSSE envelope has no signatures")
	}
	st, err := readStatement(&env)
	if err != nil {
		return nil, err
	}
	ent := &legacyEntity{sig: &bundle.Envelope{Envelope: &env}}
	if ann[annTimestamp] != "" {
		ent.layer = b // kept only for its timestamp (envelopeTimestamp)
	}
	if err := ent.parseMaterial(ann); err != nil {
		return nil, err
	}
	s := &Signature{Format: Envelope, Entity: ent, PredicateType: st.PredicateType, SubjectDigests: st.subjectDigests(), facts: ent.facts()}
	s.Signer = s.facts.signer()
	return s, nil
}

// envelopeTimestamp is the earliest time an RFC 3161 timestamp of an .att
// layer, verified against tm, vouches for over the layer's bytes: cosign
// v2's attest --timestamp-server-url timestamps the whole DSSE envelope,
// where sigstore-go (and cosign v3) timestamp the signature, so sigstore-go
// verifies only the latter. The envelope holds the signature, so a time
// for it is a time for the signature. ok is false when none verifies.
func envelopeTimestamp(s *Signature, tm root.TrustedMaterial) (time.Time, bool) {
	le, isLegacy := s.Entity.(*legacyEntity)
	if !isLegacy || len(le.layer) == 0 || len(le.timestamps) == 0 || tm == nil {
		return time.Time{}, false
	}
	ts, _, err := sgverify.VerifySignedTimestamp(layerTimestamped{le}, tm)
	if err != nil || len(ts) == 0 {
		return time.Time{}, false
	}
	first := ts[0].Time
	for _, t := range ts[1:] {
		if t.Time.Before(first) {
			first = t.Time
		}
	}
	return first, true
}

// layerTimestamped is an .att entity whose timestamped bytes are its layer.
type layerTimestamped struct{ *legacyEntity }

func (l layerTimestamped) SignatureContent() (sgverify.SignatureContent, error) {
	return layerBytes(l.layer), nil
}

// layerBytes is the "signature" VerifySignedTimestamp checks a timestamp's
// imprint against: the layer.
type layerBytes []byte

func (b layerBytes) Signature() []byte                                       { return b }
func (layerBytes) EnvelopeContent() sgverify.EnvelopeContent                 { return nil }
func (layerBytes) MessageSignatureContent() sgverify.MessageSignatureContent { return nil }
