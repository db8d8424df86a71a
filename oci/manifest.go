package oci

import (
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Media types the proxy and the gate read.
const (
	OCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	OCIIndex           = "application/vnd.oci.image.index.v1+json"
	DockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	OCIEmptyJSON       = "application/vnd.oci.empty.v1+json"
	// CosignSimpleSigning is the layer type of a legacy cosign signature
	// (the layers of a .sig tag: signed payloads).
	CosignSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	// DSSEEnvelope is the layer type of a cosign attestation (the layers of
	// an .att tag, or of an in-toto referrer): one DSSE envelope each.
	DSSEEnvelope = "application/vnd.dsse.envelope.v1+json"
	// InToto is the artifact type of cosign's in-toto attestation
	// referrers, and a layer type some tools use for DSSE envelopes.
	InToto     = "application/vnd.in-toto+json"
	emptyIndex = `{"schemaVersion":2,"mediaType":"` + OCIIndex + `","manifests":[]}`
)

// ManifestTypes are the manifest and index media types, as a reader that
// takes any of them sends them in Accept.
var ManifestTypes = []string{OCIManifest, OCIIndex, DockerManifest, DockerManifestList}

// EmptyIndex is an OCI index listing nothing: the referrers answer when
// there are none.
func EmptyIndex() []byte { return []byte(emptyIndex) }

// Manifest is a manifest as an upstream served it: its exact bytes, the
// digest they hash to (computed over the bytes, never taken from a header)
// and its media type. It is immutable once made.
type Manifest struct {
	Digest    v1.Hash
	MediaType string
	Bytes     []byte

	digest, size string // made once by NewManifest
}

// NewManifest returns the Manifest of b, which hashes to d.
func NewManifest(d v1.Hash, mediaType string, b []byte) *Manifest {
	return &Manifest{Digest: d, MediaType: mediaType, Bytes: b, digest: d.String(), size: strconv.Itoa(len(b))}
}

// DigestString is Digest.String(), made once.
func (m *Manifest) DigestString() string {
	if m.digest != "" {
		return m.digest
	}
	return m.Digest.String()
}

// Size is len(Bytes) in decimal, for Content-Length, made once.
func (m *Manifest) Size() string {
	if m.size != "" {
		return m.size
	}
	return strconv.Itoa(len(m.Bytes))
}
