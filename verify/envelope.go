package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"

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
	for i, l := range mf.Layers {
		if len(cands) == max {
			break
		}
		if string(l.MediaType) == oci.DSSEEnvelope {
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
	if err := ent.parseMaterial(ann); err != nil {
		return nil, err
	}
	s := &Signature{Format: Envelope, Entity: ent, PredicateType: st.PredicateType, SubjectDigests: st.subjectDigests(), facts: ent.facts()}
	s.Signer = s.facts.signer()
	return s, nil
}
