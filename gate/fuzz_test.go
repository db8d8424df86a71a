package gate

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/verify"
)

// notFoundReader answers every read with ErrNotFound.
type notFoundReader struct{}

func (notFoundReader) Manifest(context.Context, verify.Repository, string) (*verify.Manifest, error) {
	return nil, verify.ErrNotFound
}
func (notFoundReader) Referrers(context.Context, verify.Repository, v1.Hash) (*v1.IndexManifest, error) {
	return nil, verify.ErrNotFound
}
func (notFoundReader) Blob(context.Context, verify.Repository, v1.Hash, int64) ([]byte, error) {
	return nil, verify.ErrNotFound
}

// FuzzShapeCheck: whatever the bytes and the tag, the signature-material
// shape check never panics, and what it accepts has its kind's shape:
// bounded entries, only the layer types of the kind, an OCI index of OCI
// manifests for listings.
func FuzzShapeCheck(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}`), "sha256-"+strings.Repeat("a", 64))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}]}`), "sha256-"+strings.Repeat("b", 64))
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":10}]}`), "sha256-"+strings.Repeat("c", 64)+".sig")
	f.Add([]byte(`{"layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json"}]}`), "sha256-"+strings.Repeat("d", 64)+".att")
	f.Add([]byte(`not json`), "v1")
	lim := verify.Limits{}.WithDefaults()
	f.Fuzz(func(t *testing.T, b []byte, ref string) {
		as, ok := signatureTagAs(ref)
		if !ok {
			as = judgeAs{kind: kindReferrer}
		}
		shape, err := parseShape(b)
		if err != nil {
			return
		}
		problem, err := shapeProblem(context.Background(), notFoundReader{}, verify.Repository{Registry: "r", Name: "a"}, as.kind, shape, lim)
		if err != nil || problem != "" {
			return
		}
		if as.kind == kindFallback {
			if shape.MediaType != ociIndexType || len(shape.Layers) > 0 || len(shape.Manifests) > lim.MaxArtifactEntries {
				t.Fatalf("accepted a listing that is not an OCI index of at most %d entries: %s", lim.MaxArtifactEntries, b)
			}
			for _, d := range shape.Manifests {
				if string(d.MediaType) != ociManifestType {
					t.Fatalf("accepted a listing entry of type %s", d.MediaType)
				}
			}
			return
		}
		if len(shape.Layers) == 0 || len(shape.Layers) > lim.MaxArtifactEntries || len(shape.Manifests) > 0 || shape.Config == nil {
			t.Fatalf("accepted %s material with %d layers: %s", as.kind, len(shape.Layers), b)
		}
		if shape.Config.Digest.String() != emptyJSONDigest {
			t.Fatalf("accepted a config that was never read (the reader has none): %s", b)
		}
		for _, l := range shape.Layers {
			mt := string(l.MediaType)
			if l.Size > lim.MaxLayerBytes || isRunnableLayer(mt) {
				t.Fatalf("accepted layer %s of %d bytes in %s material", mt, l.Size, as.kind)
			}
		}
	})
}

func isRunnableLayer(mt string) bool {
	return strings.Contains(mt, "tar") || strings.Contains(mt, "rootfs")
}
