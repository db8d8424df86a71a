package verify

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/upstream"
	"github.com/portcullis-dev/portcullis/verify/signing"
)

// hiddenBlobs serves a registry whose blob GETs answer 404 while hide is
// set, counting them: a signature that verifies then was verified without
// reading its payload.
type hiddenBlobs struct {
	hide atomic.Bool
	gets atomic.Int64
}

func (h *hiddenBlobs) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			h.gets.Add(1)
			if h.hide.Load() {
				http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"hidden"}]}`, http.StatusNotFound)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// readerAs is an upstream client that serves tr's repositories under the
// registry name registry, as a proxy configured with that name and tr as
// its endpoint would.
func readerAs(t *testing.T, tr *testRegistry, registry string) *upstream.Client {
	t.Helper()
	c, err := upstream.New([]upstream.Config{{Registry: registry, Endpoint: &url.URL{Scheme: "http", Host: tr.Host}}}, upstream.WithTagTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRebuiltPayloadRealdata: real cosign payloads are rebuilt byte for
// byte from the image's name and digest (Docker Hub as cosign names it,
// and a registry with a port), so their signatures verify with no payload
// read; a payload naming another repository is read.
func TestRebuiltPayloadRealdata(t *testing.T) {
	dir := realdata(t, "connaisseur-testimage")
	img := filepath.Join(dir, "securesystemsengineering", "testimage")
	var hb hiddenBlobs
	tr := newRegistry(t, false, hb.wrap)
	pushed := tr.Repo("securesystemsengineering/testimage")
	blobs, err := os.ReadDir(filepath.Join(img, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		tr.PushBlob(pushed, readFile(t, img, "blobs", b.Name()), oci.CosignSimpleSigning)
	}
	digests := map[string]v1.Hash{}
	for _, tag := range []string{"keyless", "multi-cosigned-alice-bob-charlie"} {
		d := pushExact(tr, pushed, tag, readFile(t, img, "manifests", tag+".json"), "")
		pushExact(tr, pushed, legacyTag(d), readFile(t, img, "manifests", legacyTag(d)+".json"), "")
		digests[tag] = d
	}
	ci := realdata(t, "containers-image-cosign")
	key1 := tr.Repo("cosign-signed/key-1")
	d1 := pushExact(tr, key1, "latest", readFile(t, ci, "fulcio-rekor-1", "manifest.json"), "")
	tr.PushLegacy(key1, d1, sigstoreJSON(t, ci, "key-rekor-1", "signature-1"))
	hb.hide.Store(true)
	hb.gets.Store(0)

	c, err := NewChecker(publicGood(t))
	if err != nil {
		t.Fatal(err)
	}
	hub := oci.Repository{Registry: oci.DockerHub, Name: pushed.Name}
	disc, err := Discover(context.Background(), readerAs(t, tr, oci.DockerHub), hub, digests["multi-cosigned-alice-bob-charlie"], Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(disc.Signatures) != 3 {
		t.Fatalf("signatures = %+v", disc.Signatures)
	}
	for _, n := range []string{"alice", "bob", "charlie"} {
		a := pemKeyAuthority(t, n, readFile(t, dir, "keys", n+".pub.pem"), false)
		if res := c.Check(a, disc, hub.String(), true); !res.Passed {
			t.Errorf("%s: %+v", n, res)
		}
	}
	if n := hb.gets.Load(); n != 0 {
		t.Errorf("%d payload blob GETs for signatures whose payload names the image; want 0", n)
	}

	// The keyless signature names index.docker.io/phbelitz/rekor-test: its
	// payload is not this image's default, so it is read (and hidden).
	disc, err = Discover(context.Background(), readerAs(t, tr, oci.DockerHub), hub, digests["keyless"], Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(disc.Signatures) != 1 || !strings.Contains(disc.Signatures[0].Malformed, "payload blob") {
		t.Errorf("relocated keyless signature = %+v; want its payload read (and not found)", disc.Signatures)
	}
	if n := hb.gets.Load(); n != 1 {
		t.Errorf("%d payload blob GETs; want 1, the relocated signature's", n)
	}

	hb.gets.Store(0)
	port := oci.Repository{Registry: "192.168.64.2:5000", Name: key1.Name}
	disc, err = Discover(context.Background(), readerAs(t, tr, port.Registry), port, d1, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	cosign2 := pemKeyAuthority(t, "cosign2", readFile(t, ci, "key-rekor-1", "cosign2.pub"), true)
	if res := c.Check(cosign2, disc, port.String(), true); !res.Passed || hb.gets.Load() != 0 {
		t.Errorf("key-rekor-1 as %s: %+v, %d blob GETs; want a pass with none", port, res, hb.gets.Load())
	}
}

// TestRebuiltPayloadGrantsNothing: a rebuilt payload is only the bytes a
// read would have returned. Its signature must still verify with a
// trusted key, a layer must still fit the limit, and a layer that is not
// the default document of this image (another digest's signature copied
// here, a payload one byte longer) is read.
func TestRebuiltPayloadGrantsNothing(t *testing.T) {
	var hb hiddenBlobs
	tr := newRegistry(t, false, hb.wrap)
	keys := testKeys(t)
	trusted, other := keys["ecdsa-p256"], keys["ed25519"]
	repo := tr.Repo("acme/app")
	own := repo.String()
	d := tr.PushImage(repo, "v1").Digest
	elsewhere := tr.PushImage(repo, "v2").Digest
	padded := trusted.LegacyKeyLayer(t, own, d)
	padded.Payload = append(padded.Payload, ' ')
	padded.Annotations[annSignature] = b64(trusted.SignLegacy(t, padded.Payload))
	tr.PushLegacy(repo, d,
		other.LegacyKeyLayer(t, own, d),
		trusted.LegacyKeyLayer(t, own, elsewhere),
		padded)
	good := tr.PushImage(repo, "v3").Digest
	tr.PushLegacy(repo, good, trusted.LegacyKeyLayer(t, own, good))
	hb.hide.Store(true)
	hb.gets.Store(0)

	disc := discover(tr, repo, d, Limits{})
	if len(disc.Signatures) != 3 {
		t.Fatalf("signatures = %+v", disc.Signatures)
	}
	for i, want := range []string{"", "payload blob", "payload blob"} {
		if got := disc.Signatures[i].Malformed; (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("signature %d: malformed %q, want %q", i, got, want)
		}
	}
	if n := hb.gets.Load(); n != 2 {
		t.Errorf("%d payload GETs; want 2 (the copied and the padded payload)", n)
	}
	c, err := NewChecker(TrustMap{})
	if err != nil {
		t.Fatal(err)
	}
	wantReasons(t, c.Check(trusted.Authority(false, ""), disc, own, false), "signature does not verify with key")
	if res := c.Check(other.Authority(false, ""), disc, own, false); !res.Passed {
		t.Errorf("the other key's rebuilt signature: %+v; want a pass for that key", res)
	}
	if res := c.Check(trusted.Authority(false, ""), discover(tr, repo, good, Limits{}), own, false); !res.Passed {
		t.Errorf("trusted key on its own image: %+v", res)
	}
	for _, s := range discover(tr, repo, good, Limits{MaxLayerBytes: 64}).Signatures {
		if !strings.Contains(s.Malformed, "over the 64-byte limit") {
			t.Errorf("%s: malformed = %q, want over the limit", s.Source, s.Malformed)
		}
	}
}

// TestRebuiltPayloadSignaturesFrom: signatures stored in another
// repository (a policy's signaturesFrom, cosign's COSIGN_REPOSITORY) name
// the image's own repository in their payload; read for that image, they
// are rebuilt and verify with no payload read. The same .sig read as if
// the signature repository were the image (Discover) names another
// repository: it is read, and so is one in the source that names the
// source rather than the image.
func TestRebuiltPayloadSignaturesFrom(t *testing.T) {
	var hb hiddenBlobs
	tr := newRegistry(t, false, hb.wrap)
	trusted := testKeys(t)["ecdsa-p256"]
	app, sigs := tr.Repo("acme/app"), tr.Repo("acme/signatures")
	d := tr.PushImage(app, "v1").Digest
	tr.PushLegacy(sigs, d, trusted.LegacyKeyLayer(t, app.String(), d))
	hb.hide.Store(true)
	hb.gets.Store(0)

	c, err := NewChecker(TrustMap{})
	if err != nil {
		t.Fatal(err)
	}
	disc, err := DiscoverFrom(context.Background(), tr.Reader, sigs, app, d, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if res := c.Check(trusted.Authority(false, ""), disc, app.String(), false); !res.Passed || hb.gets.Load() != 0 {
		t.Errorf("signatures from %s for %s: %+v, %d payload GETs; want a pass with none", sigs, app, res, hb.gets.Load())
	}
	disc = discover(tr, sigs, d, Limits{})
	if len(disc.Signatures) != 1 || !strings.Contains(disc.Signatures[0].Malformed, "payload blob") || hb.gets.Load() != 1 {
		t.Errorf("read as %s's own: %+v, %d payload GETs; want its payload read (and not found)", sigs, disc.Signatures, hb.gets.Load())
	}
	// A payload in the source naming the source, not the image: read.
	hb.hide.Store(false)
	d2 := tr.PushImage(app, "v2").Digest
	tr.PushLegacy(sigs, d2, trusted.LegacyKeyLayer(t, sigs.String(), d2))
	hb.hide.Store(true)
	hb.gets.Store(0)
	if disc, err = DiscoverFrom(context.Background(), tr.Reader, sigs, app, d2, Limits{}); err != nil {
		t.Fatal(err)
	}
	if len(disc.Signatures) != 1 || !strings.Contains(disc.Signatures[0].Malformed, "payload blob") || hb.gets.Load() != 1 {
		t.Errorf("a payload naming %s, for %s: %+v, %d payload GETs; want it read (and not found)", sigs, app, disc.Signatures, hb.gets.Load())
	}
}

// TestRebuiltPayloadIsCosigns: the payload the test and bench signers
// write is the one discovery rebuilds (sigstore/sigstore's), under each
// name it tries (Docker Hub as cosign writes it and as "docker.io"), so
// what the benchmarks measure is what real cosign signatures get.
func TestRebuiltPayloadIsCosigns(t *testing.T) {
	d, _ := v1.NewHash("sha256:" + strings.Repeat("ab", 32))
	for _, repo := range []oci.Repository{
		{Registry: "registry.example", Name: "acme/app"},
		{Registry: "127.0.0.1:5000", Name: "a/b/c"},
		{Registry: oci.DockerHub, Name: "library/nginx"},
	} {
		for _, ref := range payloadNames(repo) {
			b := signing.Payload(ref, d)
			h, _ := oci.Digest("sha256", b)
			e := &examiner{repo: repo, image: repo, digest: d, lim: Limits{}.WithDefaults()}
			got, ok := e.rebuiltPayload(v1.Descriptor{Digest: h, Size: int64(len(b))})
			if !ok || string(got) != string(b) {
				t.Errorf("%s as %s: rebuilt %q, %v; want %q", repo, ref, got, ok, b)
			}
		}
	}
}
