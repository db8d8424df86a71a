package verify

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/portcullis-dev/portcullis/oci"
)

// TestDiscoverUpstreamErrors: an upstream failure on any read is an error
// ("could not decide"), never "no signatures".
func TestDiscoverUpstreamErrors(t *testing.T) {
	cases := map[string]func(r *http.Request) bool{
		"referrers": func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/referrers/") },
		"sig tag":   func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, ".sig") },
		"payload blob": func(r *http.Request) bool {
			return strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet
		},
		"referrer by dg": func(r *http.Request) bool {
			return strings.Contains(r.URL.Path, "/manifests/sha256:") && r.Method == http.MethodGet
		},
	}
	for name, fail := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var failing atomic.Bool
			tr := newRegistry(t, true, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if failing.Load() && fail(r) {
						http.Error(w, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
						return
					}
					h.ServeHTTP(w, r)
				})
			})
			repo := tr.Repo("acme/app")
			img := tr.PushImage(repo, "v1")
			k := testKeys(t)["ecdsa-p256"]
			tr.PushLegacy(repo, img.Digest, k.LegacyKeyLayer(t, "r/x", img.Digest))
			tr.PushReferrer(repo, img, k.KeyBundle(t, statementFor(img.Digest, SignPredicateType)), SignPredicateType)
			failing.Store(true)
			disc, err := Discover(context.Background(), tr.Reader, repo, img.Digest, Limits{})
			if err == nil || errors.Is(err, ErrNotFound) {
				t.Fatalf("Discover = %+v, %v; want an upstream error", disc, err)
			}
			t.Log(err)
		})
	}
}

func TestDiscoverFindsBothFormats(t *testing.T) {
	forBothRegistries(t, func(t *testing.T, referrers bool) {
		sc := newScenario(t, referrers)
		k, d := testKeys(t)["ed25519"], sc.image.Digest
		sc.tr.PushLegacy(sc.repo, d, k.LegacyKeyLayer(t, "r/x", d), k.LegacyKeyLayer(t, "r/y", d))
		sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, statementFor(d, SignPredicateType)), SignPredicateType)
		disc := discover(sc.tr, sc.repo, d, Limits{})
		var formats []string
		for _, s := range disc.Signatures {
			if s.Malformed != "" || s.Entity == nil {
				t.Errorf("%s: malformed %q", s.Source, s.Malformed)
			}
			formats = append(formats, s.Format.String())
		}
		if got := strings.Join(formats, ","); got != "sigstore bundle,legacy .sig,legacy .sig" {
			t.Errorf("formats = %s", got)
		}
		if disc.Signatures[1].DockerReference != "r/x" || disc.Signatures[1].DockerManifestDigest != d.String() {
			t.Errorf("legacy claim = %+v", disc.Signatures[1])
		}
		if got := disc.Signatures[0].SubjectDigests; len(got) != 1 || got[0] != d.String() {
			t.Errorf("bundle subjects = %v", got)
		}
		want := []string{"referrers of " + d.String(), "tag sha256-" + d.Hex + ".sig"}
		if strings.Join(disc.Looked, "|") != strings.Join(want, "|") {
			t.Errorf("Looked = %v", disc.Looked)
		}
	})
}

// TestDiscoverReferrerFilter: referrers that are not Sigstore material are
// ignored; malformed ones are reported.
func TestDiscoverReferrerFilter(t *testing.T) {
	sc := newScenario(t, true)
	d := sc.image.Digest
	cfg := sc.tr.PushBlob(sc.repo, []byte("{}"), oci.OCIEmptyJSON)
	// An SBOM referrer (artifactType not a bundle): never fetched.
	sc.tr.PutManifest(sc.repo, "", &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: "application/spdx+json",
		Config: cfg, Layers: []v1.Descriptor{sc.tr.PushBlob(sc.repo, []byte("{}"), "application/spdx+json")}, Subject: &sc.image})
	// A referrer with empty config and no bundle layer: not a signature.
	sc.tr.PutManifest(sc.repo, "", &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: cfg, Layers: []v1.Descriptor{sc.tr.PushBlob(sc.repo, []byte("x"), "text/plain")}, Subject: &sc.image})
	// A bundle layer that is not a bundle: malformed.
	sc.tr.PushReferrer(sc.repo, sc.image, []byte(`{"mediaType":"nope"}`), SignPredicateType)
	disc := discover(sc.tr, sc.repo, d, Limits{})
	if len(disc.Signatures) != 1 || !strings.Contains(disc.Signatures[0].Malformed, "not a valid Sigstore bundle") {
		t.Fatalf("signatures = %+v", disc.Signatures)
	}
}

func TestDiscoverLayerLimit(t *testing.T) {
	sc := newScenario(t, false)
	k, d := testKeys(t)["ecdsa-p256"], sc.image.Digest
	sc.tr.PushLegacy(sc.repo, d, k.LegacyKeyLayer(t, "r/x", d))
	sc.tr.PushReferrer(sc.repo, sc.image, k.KeyBundle(t, statementFor(d, SignPredicateType)), SignPredicateType)
	disc := discover(sc.tr, sc.repo, d, Limits{MaxLayerBytes: 64})
	if len(disc.Signatures) != 2 {
		t.Fatalf("signatures = %+v", disc.Signatures)
	}
	for _, s := range disc.Signatures {
		if !strings.Contains(s.Malformed, "over the 64-byte limit") {
			t.Errorf("%s: malformed = %q", s.Source, s.Malformed)
		}
	}
}

// TestDiscoverSubjectMismatch: a fallback index that lists a bundle made
// for another image does not make it a signature of this one.
func TestDiscoverSubjectMismatch(t *testing.T) {
	sc := newScenario(t, false)
	k, d := testKeys(t)["ecdsa-p256"], sc.image.Digest
	other := sc.tr.PushImage(sc.repo, "other")
	ref := sc.tr.PushReferrer(sc.repo, other, k.KeyBundle(t, statementFor(d, SignPredicateType)), SignPredicateType)
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + ref.String() + `","size":1}]}`
	sc.tr.PutRaw(sc.repo, "sha256-"+d.Hex, []byte(idx), string(types.OCIImageIndex))
	disc := discover(sc.tr, sc.repo, d, Limits{})
	if len(disc.Signatures) != 1 || !strings.Contains(disc.Signatures[0].Malformed, "manifest subject is not "+d.String()) {
		t.Fatalf("signatures = %+v", disc.Signatures)
	}
}

func TestIsBundleMediaType(t *testing.T) {
	for mt, want := range map[string]bool{
		"application/vnd.dev.sigstore.bundle.v0.3+json":          true,
		"application/vnd.dev.sigstore.bundle+json;version=0.3":   true,
		"application/vnd.dev.sigstore.bundle+json; version=0.3":  true,
		"application/vnd.dev.sigstore.bundle.v0.4+json":          true,
		"application/vnd.dev.sigstore.bundle+json":               false,
		"application/vnd.dev.sigstore.bundle.v+json":             false,
		"application/vnd.dev.cosign.simplesigning.v1+json":       false,
		"application/vnd.dev.sigstore.bundle.v0.3+json+whatever": false,
	} {
		if got := isBundleMediaType(mt); got != want {
			t.Errorf("isBundleMediaType(%q) = %v, want %v", mt, got, want)
		}
	}
}
