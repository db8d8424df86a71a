package verifytest

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/upstream"
)

// Registry is ggcr's in-memory registry on loopback, with the upstream
// client (the proxy's and the gate's) over it as Reader.
type Registry struct {
	T      testing.TB
	Host   string
	Reader *upstream.Client
}

// NewRegistry starts a registry, with or without the referrers API. wrap,
// if not nil, decorates the handler (fault injection).
func NewRegistry(t testing.TB, referrers bool, wrap func(http.Handler) http.Handler) *Registry {
	t.Helper()
	var h http.Handler = registry.New(registry.WithReferrersSupport(referrers), registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	return &Registry{T: t, Host: host, Reader: NewReader(t, host)}
}

// NewReader is the upstream client for the registry at host (plain http),
// named by its host as the tests name repositories, with no tag cache
// (tests move tags).
func NewReader(t testing.TB, host string) *upstream.Client {
	t.Helper()
	c, err := upstream.New([]upstream.Config{{Registry: host, Endpoint: &url.URL{Scheme: "http", Host: host}}},
		upstream.WithTagTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Repo names a repository on the registry.
func (tr *Registry) Repo(name string) oci.Repository {
	return oci.Repository{Registry: tr.Host, Name: name}
}

// Ref is repo:ref, or repo@ref for a digest.
func (tr *Registry) Ref(repo oci.Repository, ref string) name.Reference {
	tr.T.Helper()
	s := repo.String() + ":" + ref
	if strings.Contains(ref, ":") {
		s = repo.String() + "@" + ref
	}
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		tr.T.Fatal(err)
	}
	return r
}

// PushImage pushes a random image at tag and returns its descriptor.
func (tr *Registry) PushImage(repo oci.Repository, tag string) v1.Descriptor {
	tr.T.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		tr.T.Fatal(err)
	}
	if err := remote.Write(tr.Ref(repo, tag), img); err != nil {
		tr.T.Fatal(err)
	}
	d, _ := img.Digest()
	sz, _ := img.Size()
	mt, _ := img.MediaType()
	return v1.Descriptor{Digest: d, Size: sz, MediaType: mt}
}

// PushBlob uploads b and returns its descriptor.
func (tr *Registry) PushBlob(repo oci.Repository, b []byte, mt string) v1.Descriptor {
	tr.T.Helper()
	l := static.NewLayer(b, types.MediaType(mt))
	if err := remote.WriteLayer(tr.Ref(repo, "x").Context(), l); err != nil {
		tr.T.Fatal(err)
	}
	d, _ := l.Digest()
	return v1.Descriptor{MediaType: types.MediaType(mt), Size: int64(len(b)), Digest: d}
}

// rawManifest is a manifest pushed byte for byte.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// PutRaw pushes exact manifest bytes at ref (a tag or digest; "" for by
// digest) and returns their digest.
func (tr *Registry) PutRaw(repo oci.Repository, ref string, b []byte, mt string) v1.Hash {
	tr.T.Helper()
	h, err := oci.Digest("sha256", b)
	if err != nil {
		tr.T.Fatal(err)
	}
	if ref == "" {
		ref = h.String()
	}
	if err := remote.Put(tr.Ref(repo, ref), rawManifest{b, types.MediaType(mt)}); err != nil {
		tr.T.Fatal(err)
	}
	return h
}

// PutManifest marshals m and pushes it at ref ("" for by digest).
func (tr *Registry) PutManifest(repo oci.Repository, ref string, m *v1.Manifest) v1.Hash {
	tr.T.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		tr.T.Fatal(err)
	}
	return tr.PutRaw(repo, ref, b, string(m.MediaType))
}

// LegacyTag is cosign's signature tag of d: "sha256-<hex>.sig".
func LegacyTag(d v1.Hash) string { return d.Algorithm + "-" + d.Hex + ".sig" }

// PushLegacy pushes a cosign .sig manifest for d with the given layers.
func (tr *Registry) PushLegacy(repo oci.Repository, d v1.Hash, layers ...Layer) {
	tr.T.Helper()
	tr.PutManifest(repo, LegacyTag(d), tr.layersManifest(repo, oci.CosignSimpleSigning, layers))
}

// PushReferrer pushes a bundle referrer of subject, as cosign v3 does,
// annotated with predicateType unless it is "".
func (tr *Registry) PushReferrer(repo oci.Repository, subject v1.Descriptor, bundleJSON []byte, predicateType string) v1.Hash {
	tr.T.Helper()
	m := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  "application/vnd.dev.sigstore.bundle.v0.3+json",
		Config:        tr.PushBlob(repo, []byte("{}"), oci.OCIEmptyJSON),
		Layers:        []v1.Descriptor{tr.PushBlob(repo, bundleJSON, "application/vnd.dev.sigstore.bundle.v0.3+json")},
		Annotations:   map[string]string{"dev.sigstore.bundle.content": "dsse-envelope"},
		Subject:       &subject,
	}
	if predicateType != "" {
		m.Annotations["dev.sigstore.bundle.predicateType"] = predicateType
	}
	return tr.PutManifest(repo, "", m)
}

// AttestationTag is cosign's attestation tag of d: "sha256-<hex>.att".
func AttestationTag(d v1.Hash) string { return d.Algorithm + "-" + d.Hex + ".att" }

// PushAttestations pushes a cosign .att manifest for d whose layers are
// DSSE envelopes (each Layer's Payload is the envelope JSON).
func (tr *Registry) PushAttestations(repo oci.Repository, d v1.Hash, layers ...Layer) {
	tr.T.Helper()
	tr.PutManifest(repo, AttestationTag(d), tr.layersManifest(repo, oci.DSSEEnvelope, layers))
}

// PushInTotoReferrer pushes an in-toto referrer of subject (artifactType
// application/vnd.in-toto+json, DSSE envelope layers), as cosign's
// WriteAttestationsReferrer does.
func (tr *Registry) PushInTotoReferrer(repo oci.Repository, subject v1.Descriptor, layers ...Layer) v1.Hash {
	tr.T.Helper()
	m := tr.layersManifest(repo, oci.DSSEEnvelope, layers)
	m.ArtifactType, m.Subject = oci.InToto, &subject
	return tr.PutManifest(repo, "", m)
}

// layersManifest pushes layers of media type mt, with their annotations,
// and an empty image config, and returns the manifest listing them (as
// cosign writes its .sig and .att tags).
func (tr *Registry) layersManifest(repo oci.Repository, mt string, layers []Layer) *v1.Manifest {
	m := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        tr.PushBlob(repo, []byte("{}"), "application/vnd.oci.image.config.v1+json"),
	}
	for _, l := range layers {
		desc := tr.PushBlob(repo, l.Payload, mt)
		desc.Annotations = l.Annotations
		m.Layers = append(m.Layers, desc)
	}
	return m
}
