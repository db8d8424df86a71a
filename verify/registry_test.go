package verify

import (
	"context"
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

// testRegistry is ggcr's in-memory registry on httptest, with the
// upstream client over it.
type testRegistry struct {
	t      testing.TB
	host   string
	reader *upstream.Client
}

// newRegistry starts a registry, with or without the referrers API. wrap,
// if not nil, decorates the handler (fault injection).
func newRegistry(t testing.TB, referrers bool, wrap func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	var h http.Handler = registry.New(registry.WithReferrersSupport(referrers), registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	return &testRegistry{t: t, host: host, reader: newTestReader(t, host)}
}

// newTestReader is the upstream client for the registry at host (plain
// http), named by its host as the tests name repositories, with no tag
// cache (tests move tags).
func newTestReader(t testing.TB, host string) *upstream.Client {
	t.Helper()
	c, err := upstream.New([]upstream.Config{{Registry: host, Endpoint: &url.URL{Scheme: "http", Host: host}}},
		upstream.WithTagTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (tr *testRegistry) repo(name string) Repository {
	return Repository{Registry: tr.host, Name: name}
}

func (tr *testRegistry) ref(repo Repository, ref string) name.Reference {
	tr.t.Helper()
	s := repo.String() + ":" + ref
	if strings.Contains(ref, ":") {
		s = repo.String() + "@" + ref
	}
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		tr.t.Fatal(err)
	}
	return r
}

// pushImage pushes a random image at tag and returns its descriptor.
func (tr *testRegistry) pushImage(repo Repository, tag string) v1.Descriptor {
	tr.t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := remote.Write(tr.ref(repo, tag), img); err != nil {
		tr.t.Fatal(err)
	}
	d, _ := img.Digest()
	sz, _ := img.Size()
	mt, _ := img.MediaType()
	return v1.Descriptor{Digest: d, Size: sz, MediaType: mt}
}

// pushBlob uploads b and returns its descriptor.
func (tr *testRegistry) pushBlob(repo Repository, b []byte, mt string) v1.Descriptor {
	tr.t.Helper()
	l := static.NewLayer(b, types.MediaType(mt))
	if err := remote.WriteLayer(tr.ref(repo, "x").Context(), l); err != nil {
		tr.t.Fatal(err)
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

// putRaw pushes exact manifest bytes at ref (tag or digest) and returns
// their digest.
func (tr *testRegistry) putRaw(repo Repository, ref string, b []byte, mt string) v1.Hash {
	tr.t.Helper()
	h, err := oci.Digest("sha256", b)
	if err != nil {
		tr.t.Fatal(err)
	}
	if ref == "" {
		ref = h.String()
	}
	if err := remote.Put(tr.ref(repo, ref), rawManifest{b, types.MediaType(mt)}); err != nil {
		tr.t.Fatal(err)
	}
	return h
}

// putManifest marshals m and pushes it at ref ("" for by digest).
func (tr *testRegistry) putManifest(repo Repository, ref string, m *v1.Manifest) v1.Hash {
	tr.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		tr.t.Fatal(err)
	}
	return tr.putRaw(repo, ref, b, string(m.MediaType))
}

// layer is one legacy signature layer to push.
type layer struct {
	payload []byte
	ann     map[string]string
}

// pushLegacy pushes a cosign .sig manifest for d with the given layers.
func (tr *testRegistry) pushLegacy(repo Repository, d v1.Hash, layers ...layer) {
	tr.t.Helper()
	m := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        tr.pushBlob(repo, []byte("{}"), "application/vnd.oci.image.config.v1+json"),
	}
	for _, l := range layers {
		desc := tr.pushBlob(repo, l.payload, simpleSigningMediaType)
		desc.Annotations = l.ann
		m.Layers = append(m.Layers, desc)
	}
	tr.putManifest(repo, legacyTag(d), m)
}

// pushReferrer pushes a bundle referrer of subject, as cosign v3 does.
func (tr *testRegistry) pushReferrer(repo Repository, subject v1.Descriptor, bundleJSON []byte, predicateType string) v1.Hash {
	tr.t.Helper()
	m := &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  "application/vnd.dev.sigstore.bundle.v0.3+json",
		Config:        tr.pushBlob(repo, []byte("{}"), emptyConfigMediaType),
		Layers:        []v1.Descriptor{tr.pushBlob(repo, bundleJSON, "application/vnd.dev.sigstore.bundle.v0.3+json")},
		Annotations:   map[string]string{"dev.sigstore.bundle.content": "dsse-envelope"},
		Subject:       &subject,
	}
	if predicateType != "" {
		m.Annotations[annBundlePredicateType] = predicateType
	}
	return tr.putManifest(repo, "", m)
}

// discover runs Discover through the registry's reader.
func (tr *testRegistry) discover(repo Repository, d v1.Hash, lim Limits) *Discovery {
	tr.t.Helper()
	disc, err := Discover(context.Background(), tr.reader, repo, d, lim)
	if err != nil {
		tr.t.Fatalf("Discover: %v", err)
	}
	return disc
}
