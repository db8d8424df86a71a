package verify

import (
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/portcullis-dev/portcullis/oci"
)

// A legacy signature's payload is usually known before it is read: cosign
// writes the simple-signing document of the image it signs, naming the
// image's repository as the signer named it and its digest, with no
// optional fields unless the signer added annotations
// (sigstore/sigstore pkg/signature/payload). The .sig layer gives the
// payload's digest and size. When the document cosign would have written
// for the subject, under a name clients use for the image's repository
// (also when its signatures are read from another repository: cosign's
// COSIGN_REPOSITORY does not change what the payload names), has that
// digest and size, it is the payload, byte for byte (a blob is its
// digest's content), and the decision need not wait for a round trip to
// the upstream to read it. Any other payload (another repository's name,
// the signature repository's included; annotations; a claimed identity)
// is read as before.

// Keeper is implemented by a Reader that keeps what discovery reads (the
// content store keeps an allowed image's signature material): discovery
// hands it a payload it had without reading, so that it is kept as if it
// had been read.
type Keeper interface {
	KeepBlob(repo Repository, d v1.Hash, b []byte)
}

// rebuiltPayload is the payload of a simple-signing layer of a signature
// of e.digest (of e.image, read from e.repo) when it is the document
// cosign writes by default (see above), within the layer size limit.
func (e *examiner) rebuiltPayload(layer v1.Descriptor) ([]byte, bool) {
	if layer.Size <= 0 || layer.Size > e.lim.MaxLayerBytes {
		return nil, false
	}
	for _, ref := range payloadNames(e.image) {
		d, err := name.NewDigest(ref+"@"+e.digest.String(), name.WeakValidation)
		if err != nil {
			continue
		}
		b, err := payload.Cosign{Image: d, ClaimedIdentity: ref}.MarshalJSON()
		if err != nil || int64(len(b)) != layer.Size {
			continue
		}
		if got, err := oci.Digest(layer.Digest.Algorithm, b); err == nil && got == layer.Digest {
			if k, ok := e.r.(Keeper); ok {
				k.KeepBlob(e.repo, layer.Digest, b)
			}
			return b, true
		}
	}
	return nil, false
}

// payloadNames are the names a signer gives repo in the payload when it
// signs the image under the name clients pull it by: cosign writes Docker
// Hub as "index.docker.io" (go-containerregistry rewrites "docker.io" so),
// a signer given --sign-container-identity as typed, often "docker.io".
func payloadNames(repo Repository) []string {
	if oci.NormalizeRegistry(repo.Registry) == oci.DockerHub {
		n := oci.NormalizeRepository(oci.DockerHub, repo.Name)
		return []string{name.DefaultRegistry + "/" + n, oci.DockerHub + "/" + n}
	}
	return []string{repo.Registry + "/" + repo.Name}
}
