package gate

import (
	"encoding/json"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// signatureTagRE matches cosign's tags (sha256-<hex>.sig, .att, .sbom) and
// the referrers fallback tag (sha256-<hex>).
var signatureTagRE = regexp.MustCompile(`^sha(256|512)-[0-9a-f]{64,128}(\.sig|\.att|\.sbom)?$`)

// manifestShape is what the gate needs of a manifest's JSON.
type manifestShape struct {
	MediaType string          `json:"mediaType"`
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
	Subject   *v1.Descriptor  `json:"subject"`
}

// isImageManifest reports whether b is an image manifest (a config and
// layers), not an index.
func isImageManifest(b []byte) bool {
	m, err := parseShape(b)
	return err == nil && m.Config != nil && len(m.Manifests) == 0
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

// grants is what an allowed manifest lets through: an index's children as
// kind child (or referrer, for a listing of signature material), an
// image's config and layers as kind blob (or material blob).
func (m *manifestShape) grants(listed, blob GrantKind) []Grant {
	out := make([]Grant, 0, len(m.Manifests)+len(m.Layers)+1)
	for _, d := range m.Manifests {
		out = append(out, Grant{Kind: listed, Digest: d.Digest, Size: d.Size})
	}
	if m.Config != nil {
		out = append(out, Grant{Kind: blob, Digest: m.Config.Digest, Size: m.Config.Size})
	}
	for _, l := range m.Layers {
		out = append(out, Grant{Kind: blob, Digest: l.Digest, Size: l.Size})
	}
	return out
}
