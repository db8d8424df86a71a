package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/portcullis-dev/portcullis/oci"
)

const (
	// SignPredicateType is the in-toto predicate type of a cosign v3 image
	// signature; bundles with any other predicate type are attestations.
	SignPredicateType = "https://sigstore.dev/cosign/sign/v1"
	// annBundlePredicateType is the referrer manifest annotation cosign sets
	// (copied into referrers API descriptors, absent from fallback indexes).
	annBundlePredicateType = "dev.sigstore.bundle.predicateType"
	bundleMediaTypeBase    = "application/vnd.dev.sigstore.bundle"
)

// isBundleMediaType reports whether a layer media type is a Sigstore bundle,
// in either spelling sigstore-go accepts: "…bundle.v0.3+json" or
// "…bundle+json;version=0.3".
func isBundleMediaType(mt string) bool {
	mt = strings.ReplaceAll(mt, " ", "")
	if v, ok := strings.CutPrefix(mt, bundleMediaTypeBase+".v"); ok {
		return strings.HasSuffix(v, "+json") && len(v) > len("+json")
	}
	return strings.HasPrefix(mt, bundleMediaTypeBase+"+json;version=")
}

// maybeSigstoreArtifact reports whether a referrer descriptor's
// artifactType may be Sigstore material: missing, a bundle type, cosign's
// in-toto type, or the config types registries report when they use
// config.mediaType (empty for bundles, an image config for in-toto
// referrers and GitHub's first push-to-registry artifacts).
func maybeSigstoreArtifact(at string) bool {
	switch at {
	case "", oci.OCIEmptyJSON, oci.InToto, imageConfig:
		return true
	}
	return isBundleMediaType(at)
}

// imageConfig is the OCI image config media type.
const imageConfig = "application/vnd.oci.image.config.v1+json"

// referrerCandidate is one referrer manifest that may hold a bundle.
type referrerCandidate struct{ desc v1.Descriptor }

func (c referrerCandidate) examine(ctx context.Context, e *examiner) ([]*Signature, error) {
	source := "referrer " + c.desc.Digest.String()
	m, err := e.r.Manifest(ctx, e.repo, c.desc.Digest.String())
	if errors.Is(err, ErrNotFound) {
		return []*Signature{malformed(Bundle, source, "manifest listed by the registry but not found")}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	mf, err := v1.ParseManifest(bytes.NewReader(m.Bytes))
	if err != nil {
		return nil, nil // not an image manifest: not Sigstore material
	}
	if _, n := findBundleLayer(mf); n == 0 {
		return c.envelopes(ctx, e, source, mf)
	}
	layer, why := c.bundleLayer(e, mf)
	if why != "" {
		return []*Signature{malformed(Bundle, source, why)}, nil
	}
	b, why, err := e.layerBlob(ctx, source, "bundle", layer)
	if err != nil || why != "" {
		return []*Signature{malformed(Bundle, source, why)}, err
	}
	s, err := parseBundleLayer(b)
	if err != nil {
		return []*Signature{malformed(Bundle, source, err.Error())}, nil
	}
	s.Source = source
	s.Attestation = s.PredicateType != SignPredicateType
	return []*Signature{s}, nil
}

// envelopes reads a referrer of DSSE envelope layers (cosign's in-toto
// referrer, artifactType application/vnd.in-toto+json); nil when it has
// none.
func (c referrerCandidate) envelopes(ctx context.Context, e *examiner, source string, mf *v1.Manifest) ([]*Signature, error) {
	cands := envelopeLayers(mf, source, e.lim.MaxSignatures)
	if len(cands) == 0 {
		return nil, nil
	}
	// The referrer is one planned candidate: its other envelopes come out
	// of the shared budget (else 32 referrers of 32 envelopes each are
	// 1,024 reads of up to a MiB).
	if extra := int64(len(cands) - 1); extra > 0 {
		granted := min(extra, max(e.spare.Add(-extra)+extra, 0))
		if granted < extra {
			e.spare.Add(extra - granted) // give back what was not used
			e.overflow.Add(extra - granted)
		}
		cands = cands[:1+granted]
	}
	if mf.Subject != nil && mf.Subject.Digest != e.digest {
		return []*Signature{attMalformed(source, fmt.Sprintf("manifest subject is not %s", e.digest))}, nil
	}
	var out []*Signature
	for _, c := range cands {
		sigs, err := c.examine(ctx, e)
		if err != nil {
			return nil, err
		}
		out = append(out, sigs...)
	}
	return out, nil
}

// bundleLayer returns the bundle layer of a referrer manifest, or why it
// is unusable.
func (c referrerCandidate) bundleLayer(e *examiner, mf *v1.Manifest) (v1.Descriptor, string) {
	layer, n := findBundleLayer(mf)
	switch {
	case n > 1:
		return layer, fmt.Sprintf("%d bundle layers, want exactly one", n)
	case mf.Subject != nil && mf.Subject.Digest != e.digest:
		// No subject is fine: the first GitHub push-to-registry artifacts
		// have none (found through the fallback index); the signed
		// statement's subject binds a bundle either way.
		return layer, fmt.Sprintf("manifest subject is not %s", e.digest)
	}
	return layer, ""
}

// findBundleLayer returns the bundle layer of a manifest and how many it has.
func findBundleLayer(mf *v1.Manifest) (v1.Descriptor, int) {
	var found v1.Descriptor
	n := 0
	for _, l := range mf.Layers {
		if isBundleMediaType(string(l.MediaType)) {
			found = l
			n++
		}
	}
	return found, n
}

// inTotoStatement is the part of an in-toto statement discovery reads (the
// predicate is not materialized).
type inTotoStatement struct {
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
}

// parseBundleLayer parses a Sigstore bundle (protobuf JSON) holding a DSSE
// in-toto statement. Errors describe what is malformed.
func parseBundleLayer(data []byte) (_ *Signature, err error) {
	s, ent, err := parseBundle(data)
	if err != nil {
		return nil, err
	}
	env := ent.sig.EnvelopeContent()
	if env == nil {
		return nil, errors.New("bundle holds a message signature, not a DSSE in-toto statement")
	}
	st, err := readStatement(env.RawEnvelope())
	if err != nil {
		return nil, err
	}
	s.PredicateType, s.SubjectDigests = st.PredicateType, st.subjectDigests()
	return s, nil
}

// parseBundle parses a Sigstore bundle (protobuf JSON) of any content: a
// DSSE envelope or a message signature. Errors describe what is malformed.
func parseBundle(data []byte) (_ *Signature, _ *bundleEntity, err error) {
	defer recoverTo(&err)
	var b bundle.Bundle
	if err := b.UnmarshalJSON(data); err != nil {
		return nil, nil, fmt.Errorf("not a valid Sigstore bundle: %w", err)
	}
	ent, err := newBundleEntity(&b)
	if err != nil {
		return nil, nil, err
	}
	s := &Signature{Format: Bundle, Entity: ent, facts: ent.facts()}
	s.Signer = s.facts.signer()
	return s, ent, nil
}

// subjectDigests are the statement's subject digests, "alg:hex", for the
// algorithms an OCI digest or a sigstore-go artifact digest may use.
func (st *inTotoStatement) subjectDigests() []string {
	var out []string
	for _, sub := range st.Subject {
		for _, alg := range []string{"sha256", "sha384", "sha512"} {
			if h := sub.Digest[alg]; h != "" {
				out = append(out, alg+":"+h)
			}
		}
	}
	return out
}

// readStatement decodes the in-toto statement of a DSSE envelope.
func readStatement(raw *dsse.Envelope) (*inTotoStatement, error) {
	if raw == nil {
		return nil, errors.New("no DSSE envelope")
	}
	if raw.PayloadType != bundle.IntotoMediaType {
		return nil, fmt.Errorf("DSSE payload type is %q, not in-toto", raw.PayloadType)
	}
	payload, err := raw.DecodeB64Payload()
	if err != nil {
		return nil, errors.New("DSSE payload is not base64")
	}
	var st inTotoStatement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("DSSE payload is not an in-toto statement: %w", err)
	}
	return &st, nil
}

// bundleEntity wraps a parsed bundle with its derived parts computed once:
// bundle.Bundle.TlogEntries writes to the bundle on every call and
// VerificationContent re-parses the certificate, so the wrapper makes the
// entity immutable (safe to verify concurrently) and cheaper.
type bundleEntity struct {
	*bundle.Bundle
	entries []*tlog.Entry
	content sgverify.VerificationContent
	sig     sgverify.SignatureContent
}

var _ sgverify.SignedEntity = (*bundleEntity)(nil)

func newBundleEntity(b *bundle.Bundle) (*bundleEntity, error) {
	ent := &bundleEntity{Bundle: b}
	var err error
	if ent.entries, err = b.TlogEntries(); err != nil {
		return nil, fmt.Errorf("transparency log entries: %w", err)
	}
	if ent.content, err = b.VerificationContent(); err != nil {
		return nil, fmt.Errorf("verification material: %w", err)
	}
	if c := ent.content.Certificate(); c != nil {
		clearSANCritical(c)
	}
	if ent.sig, err = b.SignatureContent(); err != nil {
		return nil, fmt.Errorf("signature content: %w", err)
	}
	return ent, nil
}

func (ent *bundleEntity) TlogEntries() ([]*tlog.Entry, error) { return ent.entries, nil }
func (ent *bundleEntity) VerificationContent() (sgverify.VerificationContent, error) {
	return ent.content, nil
}
func (ent *bundleEntity) SignatureContent() (sgverify.SignatureContent, error) {
	return ent.sig, nil
}

func (ent *bundleEntity) facts() sigFacts {
	f := sigFacts{hasTlog: len(ent.entries) > 0}
	for _, e := range ent.entries {
		f.hasSET = f.hasSET || e.HasInclusionPromise()
	}
	if ts, err := ent.Timestamps(); err == nil {
		f.hasTimestamp = len(ts) > 0
	}
	if c := ent.content.Certificate(); c != nil {
		f.setCert(c)
	} else if pk := ent.content.PublicKey(); pk != nil {
		f.keyHint = pk.Hint()
	}
	return f
}
