package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/verify"
)

// materialKind is the kind of signature material a manifest is judged as,
// which fixes the shape it must have. The zero kind is "an image".
type materialKind string

const (
	kindImage     materialKind = ""
	kindSig       materialKind = "sig"       // cosign's sha256-<hex>.sig tag
	kindAtt       materialKind = "att"       // cosign's sha256-<hex>.att tag
	kindSBOM      materialKind = "sbom"      // cosign's sha256-<hex>.sbom tag
	kindFallback  materialKind = "fallback"  // the referrers fallback tag sha256-<hex>
	kindReferrer  materialKind = "referrer"  // a manifest by digest with a subject, or listed as a referrer
	kindReferrers materialKind = "referrers" // a referrers API answer
)

// judgeAs is how a manifest request is judged: as an image, or as
// material of one kind about a subject.
type judgeAs struct {
	kind    materialKind
	subject v1.Hash
}

func (a judgeAs) material() bool { return a.kind != kindImage }

// key is the verdict cache key: every input of the decision (revision,
// repository, digest, and what the manifest is judged as).
func (a judgeAs) key(rev string, repo verify.Repository, d v1.Hash) string {
	var b strings.Builder
	b.Grow(len(rev) + len(repo.Registry) + len(repo.Name) + len(d.Hex) + 100)
	b.WriteString(rev)
	b.WriteByte('|')
	b.WriteString(repo.Registry)
	b.WriteByte('/')
	b.WriteString(repo.Name)
	b.WriteByte('@')
	b.WriteString(d.Algorithm)
	b.WriteByte(':')
	b.WriteString(d.Hex)
	if a.material() {
		b.WriteByte('|')
		b.WriteString(string(a.kind))
		b.WriteByte(':')
		b.WriteString(a.subject.Hex)
	}
	return b.String()
}

// signatureTagAs reads a tag where cosign or the referrers fallback schema
// keep signature material: what it is and whose.
func signatureTagAs(ref string) (judgeAs, bool) {
	if !strings.HasPrefix(ref, "sha256-") && !strings.HasPrefix(ref, "sha512-") {
		return judgeAs{}, false // the hot path: an ordinary tag or a digest
	}
	m := signatureTagRE.FindStringSubmatch(ref)
	if m == nil {
		return judgeAs{}, false
	}
	alg, rest, _ := strings.Cut(ref, "-")
	hexPart := rest
	kind := kindFallback
	if m[2] != "" {
		hexPart = strings.TrimSuffix(rest, m[2])
		kind = materialKind(m[2][1:])
	}
	if (alg == "sha256" && len(hexPart) != 64) || (alg == "sha512" && len(hexPart) != 128) {
		return judgeAs{}, false
	}
	return judgeAs{kind: kind, subject: v1.Hash{Algorithm: alg, Hex: hexPart}}, true
}

// Artifact bounds.
const (
	// maxMaterialConfig is the largest image config signature material may
	// have (cosign's .sig config is 233 bytes).
	maxMaterialConfig = 4 << 10
)

// The empty descriptor's content, "{}".
const emptyJSONDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

var (
	ociManifestType    = "application/vnd.oci.image.manifest.v1+json"
	dockerManifestType = "application/vnd.docker.distribution.manifest.v2+json"
	ociIndexType       = "application/vnd.oci.image.index.v1+json"
	imageConfigTypes   = map[string]bool{
		"application/vnd.oci.image.config.v1+json":       true,
		"application/vnd.docker.container.image.v1+json": true,
	}
	sbomTypePrefixes = []string{"text/spdx", "application/spdx", "application/vnd.cyclonedx", "application/vnd.syft"}
)

// shapeProblem says why a manifest does not have the shape of material of
// kind ("" when it has). Every layer or entry is bounded in number and
// size; configs are the empty descriptor or a small image config with no
// os and architecture (read through r, so errors other than not found
// mean no decision).
func shapeProblem(ctx context.Context, r verify.Reader, repo verify.Repository, kind materialKind, m *manifestShape, lim verify.Limits) (string, error) {
	if kind == kindFallback || kind == kindReferrers {
		return indexShapeProblem(m, lim), nil
	}
	if m.MediaType != ociManifestType && (kind == kindReferrer || m.MediaType != dockerManifestType) {
		return fmt.Sprintf("it is a %s, not an image manifest", orNone(m.MediaType)), nil
	}
	if m.Config == nil || len(m.Manifests) > 0 {
		return "it has no config, or lists manifests", nil
	}
	if n := len(m.Layers); n == 0 || n > lim.MaxArtifactEntries {
		return fmt.Sprintf("it has %d layers (signature material has 1 to %d)", n, lim.MaxArtifactEntries), nil
	}
	for i, l := range m.Layers {
		if l.Size > lim.MaxLayerBytes || l.Size < 0 {
			return fmt.Sprintf("layer %d is %d bytes, over the %d-byte limit", i, l.Size, lim.MaxLayerBytes), nil
		}
		if why := layerProblem(kind, i, string(l.MediaType), len(m.Layers)); why != "" {
			return why, nil
		}
	}
	return configProblem(ctx, r, repo, m.Config)
}

func layerProblem(kind materialKind, i int, mt string, n int) string {
	switch kind {
	case kindSig:
		if mt != oci.CosignSimpleSigning {
			return fmt.Sprintf("layer %d is %s; a .sig holds only %s layers", i, orNone(mt), oci.CosignSimpleSigning)
		}
	case kindAtt:
		if mt != oci.DSSEEnvelope {
			return fmt.Sprintf("layer %d is %s; an .att holds only %s layers", i, orNone(mt), oci.DSSEEnvelope)
		}
	case kindSBOM:
		if n != 1 || !hasAnyPrefix(mt, sbomTypePrefixes) {
			return fmt.Sprintf("an .sbom holds one layer of an SBOM media type (spdx, cyclonedx, syft), not %s", orNone(mt))
		}
	case kindReferrer:
		bundle := strings.HasPrefix(mt, "application/vnd.dev.sigstore.bundle")
		if (bundle && n != 1) || (!bundle && mt != oci.DSSEEnvelope && mt != oci.InToto) {
			return fmt.Sprintf("layer %d is %s; a referrer holds one Sigstore bundle or DSSE/in-toto layers", i, orNone(mt))
		}
	}
	return ""
}

func configProblem(ctx context.Context, r verify.Reader, repo verify.Repository, cfg *v1.Descriptor) (string, error) {
	mt := string(cfg.MediaType)
	if mt == oci.OCIEmptyJSON && cfg.Digest.String() == emptyJSONDigest {
		return "", nil
	}
	if mt != oci.OCIEmptyJSON && !imageConfigTypes[mt] {
		return fmt.Sprintf("its config is %s, not the empty descriptor or an image config", orNone(mt)), nil
	}
	if cfg.Size > maxMaterialConfig || cfg.Size < 0 {
		return fmt.Sprintf("its config is %d bytes (signature material has at most %d)", cfg.Size, maxMaterialConfig), nil
	}
	b, err := r.Blob(ctx, repo, cfg.Digest, maxMaterialConfig)
	if errors.Is(err, verify.ErrNotFound) {
		return "its config blob does not exist", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading config %s: %w", cfg.Digest, err)
	}
	var c struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "its config is not JSON", nil
	}
	if c.OS != "" || c.Architecture != "" {
		return fmt.Sprintf("its config is that of a runnable image (os %q, architecture %q)", c.OS, c.Architecture), nil
	}
	return "", nil
}

// indexShapeProblem: a fallback index or referrers answer is an OCI index
// whose every entry is an OCI manifest (any artifactType: entries of other
// tools, such as Notation's, are kept).
func indexShapeProblem(m *manifestShape, lim verify.Limits) string {
	if m.MediaType != ociIndexType || m.Config != nil || len(m.Layers) > 0 {
		return fmt.Sprintf("it is a %s, not an OCI index", orNone(m.MediaType))
	}
	if len(m.Manifests) > lim.MaxArtifactEntries {
		return fmt.Sprintf("it lists %d manifests (at most %d)", len(m.Manifests), lim.MaxArtifactEntries)
	}
	for i, d := range m.Manifests {
		if string(d.MediaType) != ociManifestType {
			return fmt.Sprintf("entry %d is a %s, not an OCI manifest", i, orNone(string(d.MediaType)))
		}
		if d.Size > lim.MaxLayerBytes || d.Size < 0 {
			return fmt.Sprintf("entry %d is %d bytes, over the %d-byte limit", i, d.Size, lim.MaxLayerBytes)
		}
	}
	return ""
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// subjectOf is a manifest's subject field, if any (cheap: only parses when
// the bytes mention one).
func subjectOf(b []byte) (v1.Hash, bool) {
	if !bytes.Contains(b, []byte(`"subject"`)) {
		return v1.Hash{}, false
	}
	s, err := parseShape(b)
	if err != nil || s.Subject == nil {
		return v1.Hash{}, false
	}
	return s.Subject.Digest, true
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
