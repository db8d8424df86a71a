package proxy

import (
	"encoding/json"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/portcullis-dev/portcullis/upstream"
)

// TestReferrers: with the upstream's API, and from the sha256-<hex> fallback
// tag that ggcr's client writes when the upstream has none.
func TestReferrers(t *testing.T) {
	for _, api := range []bool{true, false} {
		t.Run(map[bool]string{true: "api", false: "fallback tag"}[api], func(t *testing.T) {
			up := newUpstreamServer(t, registry.WithReferrersSupport(api))
			subject := randomImage(t, 100, 1)
			sd := up.push(t, "acme/app", "v1", subject)
			desc, err := partialDescriptor(subject)
			if err != nil {
				t.Fatal(err)
			}
			// An artifact whose subject is the image, pushed by digest.
			art := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
			art = mutate.ConfigMediaType(art, "application/vnd.example.sbom")
			art = mutate.Subject(art, *desc).(v1.Image)
			ad, _ := art.Digest()
			ref, _ := name.NewDigest(up.host()+"/acme/app@"+ad.String(), name.Insecure)
			if err := remote.Write(ref, art); err != nil {
				t.Fatal(err)
			}
			tp := newTestProxy(t, map[string]*upstreamServer{"registry.example": up})
			for _, tc := range []struct {
				query string
				want  int
			}{{"", 1}, {"?artifactType=application/vnd.example.sbom", 1}, {"?artifactType=application/other", 0}} {
				resp, body := tp.do(t, "GET", "/v2/registry.example/acme/app/referrers/"+sd.String()+tc.query, nil)
				mustEqual(t, "status", resp.StatusCode, 200)
				mustEqual(t, "Content-Type", resp.Header.Get("Content-Type"), "application/vnd.oci.image.index.v1+json")
				var idx v1.IndexManifest
				if err := json.Unmarshal(body, &idx); err != nil {
					t.Fatal(err)
				}
				mustEqual(t, "referrers"+tc.query, len(idx.Manifests), tc.want)
				if tc.want == 1 {
					mustEqual(t, "referrer digest", idx.Manifests[0].Digest, ad)
				}
				if tc.query != "" {
					mustEqual(t, "OCI-Filters-Applied", resp.Header.Get("OCI-Filters-Applied"), "artifactType")
				}
			}
			// Without the API: a client's request teaches the proxy nothing
			// (one anonymous client must not switch the API off for others),
			// the gate's own lookup does, for that repository only.
			if !api {
				path := "/v2/acme/app/referrers/" + sd.String()
				before := up.count("GET", path)
				tp.do(t, "GET", "/v2/registry.example/acme/app/referrers/"+sd.String(), nil)
				mustEqual(t, "referrers API asked again after a client's request", up.count("GET", path)-before, 1)
				if _, err := tp.up.(*upstream.Client).Referrers(t.Context(), Repository{Registry: "registry.example", Name: "acme/app"}, sd); err != nil {
					t.Fatal(err)
				}
				before = up.count("GET", path)
				tp.do(t, "GET", "/v2/registry.example/acme/app/referrers/"+sd.String(), nil)
				mustEqual(t, "referrers API asked again after the gate's lookup", up.count("GET", path)-before, 0)
				if _, err := tp.up.(*upstream.Client).Referrers(t.Context(), Repository{Registry: "registry.example", Name: "acme/other"}, sd); err != nil {
					t.Fatal(err)
				}
			}
			// No referrers at all: an empty index, not a 404.
			other := up.push(t, "acme/app", "v2", randomImage(t, 10, 1))
			resp, body := tp.do(t, "GET", "/v2/registry.example/acme/app/referrers/"+other.String(), nil)
			mustEqual(t, "status", resp.StatusCode, 200)
			var idx v1.IndexManifest
			if err := json.Unmarshal(body, &idx); err != nil || idx.Manifests == nil || len(idx.Manifests) != 0 {
				t.Fatalf("want an empty index, got %s (%v)", body, err)
			}
		})
	}
}

func partialDescriptor(img v1.Image) (*v1.Descriptor, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	sz, err := img.Size()
	if err != nil {
		return nil, err
	}
	return &v1.Descriptor{MediaType: mt, Digest: d, Size: sz}, nil
}
