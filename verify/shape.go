package verify

import (
	"encoding/json"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Media types that only signature material uses.
var signatureLayerTypes = map[string]bool{
	"application/vnd.dev.cosign.simplesigning.v1+json": true,
	"application/vnd.dsse.envelope.v1+json":            true,
	"application/vnd.in-toto+json":                     true,
}

// signatureConfigTypes are the configs of cosign's artifacts: the empty
// descriptor, and the small image config cosign writes for .sig/.att tags.
var signatureConfigTypes = map[string]bool{
	"application/vnd.oci.empty.v1+json":                    true,
	"application/vnd.oci.image.config.v1+json":             true,
	"application/vnd.docker.container.image.v1+json":       true,
	"application/vnd.dev.cosign.artifact.sig.v1+json":      true,
	"application/vnd.dev.cosign.artifact.sbom.v1+json":     true,
	"application/vnd.dev.sigstore.bundle.v0.3+json":        true,
	"application/vnd.dev.cosign.artifact.attestation+json": true,
}

// signatureTagRE matches cosign's tags (sha256-<hex>.sig, .att, .sbom) and
// the referrers fallback tag (sha256-<hex>).
var signatureTagRE = regexp.MustCompile(`^sha(256|512)-[0-9a-f]{64,128}(\.sig|\.att|\.sbom)?$`)

// IsSignatureTag reports whether ref is a tag where cosign and the
// referrers fallback schema keep signature material.
func IsSignatureTag(ref string) bool { return signatureTagRE.MatchString(ref) }

// signatureSuffix reports whether a signature tag is cosign's (.sig, .att,
// .sbom) rather than the bare referrers fallback tag.
func signatureSuffix(ref string) bool {
	return strings.HasSuffix(ref, ".sig") || strings.HasSuffix(ref, ".att") || strings.HasSuffix(ref, ".sbom")
}

// isSignatureLayerType is true for cosign and Sigstore signature payloads.
func isSignatureLayerType(mt string) bool {
	if signatureLayerTypes[mt] {
		return true
	}
	return strings.HasPrefix(mt, "application/vnd.dev.sigstore.bundle")
}

// manifestShape is what the gate needs of a manifest's JSON.
type manifestShape struct {
	MediaType string          `json:"mediaType"`
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
	Subject   *v1.Descriptor  `json:"subject"`
}

func parseShape(b []byte) (*manifestShape, error) {
	var m manifestShape
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// isIndex reports whether the manifest lists other manifests.
func (m *manifestShape) isIndex() bool { return m.Config == nil && len(m.Manifests) > 0 }

// signatureShaped reports whether a manifest can only carry signature
// material: at least one layer, every layer of a cosign or Sigstore media
// type, and a config that is cosign's or the empty descriptor. Such a
// manifest is not a runnable image, so serving it unverified is no bypass.
func (m *manifestShape) signatureShaped() bool {
	if m.Config == nil || len(m.Layers) == 0 || len(m.Manifests) > 0 {
		return false
	}
	if !signatureConfigTypes[string(m.Config.MediaType)] {
		return false
	}
	for _, l := range m.Layers {
		if !isSignatureLayerType(string(l.MediaType)) {
			return false
		}
	}
	return true
}

// referencedBlobs is the config and layers of an image manifest.
func (m *manifestShape) referencedBlobs() []v1.Hash {
	var out []v1.Hash
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// children is the manifests an index lists.
func (m *manifestShape) children() []v1.Hash {
	out := make([]v1.Hash, 0, len(m.Manifests))
	for _, d := range m.Manifests {
		out = append(out, d.Digest)
	}
	return out
}
