package gate

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/verifytest"
)

// TestGateSignaturesFrom: an authority's signaturesFrom repository is where
// its signatures and attestations are read (cosign's COSIGN_REPOSITORY);
// material there is served only about an image allowed in a repository
// whose matching policy names that source, never about a refused one, and
// material in the image's own repository no longer counts for it. A
// payload there naming the image (as cosign writes it) is rebuilt, not
// read.
func TestGateSignaturesFrom(t *testing.T) {
	forBothRegistries(t, func(t *testing.T, referrers bool) {
		var sourceBlobs atomic.Int64
		tr := newRegistry(t, referrers, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/v2/signatures/app/blobs/") {
					sourceBlobs.Add(1)
				}
				next.ServeHTTP(w, r)
			})
		})
		app, sigs := tr.Repo("acme/app"), tr.Repo("signatures/app")
		k := testKeys(t)["ecdsa-p256"]
		pemKey, err := cryptoutils.MarshalPublicKeyToPEM(k.Priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		src := fmt.Sprintf(`policies:
  - name: mirrored
    images: ["%[1]s/acme/**"]
    authorities:
      - name: release
        signaturesFrom: %[1]s/signatures/app
        key:
          data: |
%[2]s
  - name: sigs
    images: ["%[1]s/signatures/**"]
    authorities:
      - name: release
        key:
          data: |
%[2]s
`, tr.Host, indent(string(pemKey), "            "))
		p, err := policy.Parse([]byte(src), "policy.yaml", nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		g := newAttestGate(t, tr, p, nil)

		signed := tr.PushImage(app, "signed")
		tr.PushLegacy(sigs, signed.Digest, k.LegacyKeyLayer(t, tr.Host+"/acme/app", signed.Digest))
		local := tr.PushImage(app, "local") // signed in its own repository only
		tr.PushLegacy(app, local.Digest, k.LegacyKeyLayer(t, tr.Host+"/acme/app", local.Digest))
		refused := tr.PushImage(app, "refused")
		tr.PushLegacy(sigs, refused.Digest, testKeys(t)["other-p256"].LegacyKeyLayer(t, tr.Host+"/acme/app", refused.Digest))

		sourceBlobs.Store(0)
		v, err := manifestVerdict(t, g, tr, app, "signed")
		wantVerdict(t, v, err, true, "allowed")
		if n := sourceBlobs.Load(); n != 0 {
			t.Errorf("%d blob requests to the signature repository; want 0 (the payload names the image, and is rebuilt)", n)
		}
		// By digest, the discovery started ahead reads the source too.
		g3 := newAttestGate(t, tr, p, nil)
		release := g3.PrepareManifest(context.Background(), app, signed.Digest)
		k3 := prepKey{app, signed.Digest}
		waitFor(t, "the discovery ahead to end", func() bool {
			g3.prep.mu.Lock()
			defer g3.prep.mu.Unlock()
			return g3.prep.m[k3] != nil && g3.prep.m[k3].finished()
		})
		v, err = manifestVerdict(t, g3, tr, app, signed.Digest.String())
		release()
		wantVerdict(t, v, err, true, "allowed")
		if n := sourceBlobs.Load(); n != 0 {
			t.Errorf("by digest: %d blob requests to the signature repository; want 0", n)
		}
		v, err = manifestVerdict(t, g, tr, app, "local")
		wantVerdict(t, v, err, false, "no signatures found (looked in: referrers of "+local.Digest.String())
		v, err = manifestVerdict(t, g, tr, app, "refused")
		wantVerdict(t, v, err, false, "refused")

		// The source's material: about the allowed image, served; about
		// the refused one, not.
		v, err = manifestVerdict(t, g, tr, sigs, verifytest.LegacyTag(signed.Digest))
		wantVerdict(t, v, err, true, "allowed: the .sig signature material")
		v, err = manifestVerdict(t, g, tr, sigs, verifytest.LegacyTag(refused.Digest))
		wantVerdict(t, v, err, false, "refused")

		// Without a verdict of the image, material in the source is not
		// served (a fresh gate: nothing decided yet).
		g2 := newAttestGate(t, tr, p, nil)
		v, err = manifestVerdict(t, g2, tr, sigs, verifytest.LegacyTag(signed.Digest))
		wantVerdict(t, v, err, false, "refused")
	})
}

// TestSourcedGrantFollowsReload (found by the model test): material in a
// signaturesFrom repository served about an image allowed under one
// policy (the .sig and its payload) is refused after a reload to one that
// no longer reads from there, even though the image is still allowed (on
// its own repository's signature): a grant decided again under the new
// policy is the new verdict's, not the old one's. A reload to a policy
// that still reads from there keeps serving it.
func TestSourcedGrantFollowsReload(t *testing.T) {
	tr := newRegistry(t, false, nil)
	app, sigs := tr.Repo("acme/app"), tr.Repo("signatures/app")
	k := testKeys(t)["ecdsa-p256"]
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(k.Priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	key := indent(string(pemKey), "            ")
	parse := func(name string, sourced bool) *Snapshot {
		from := ""
		if sourced {
			from = "\n        signaturesFrom: " + tr.Host + "/signatures/app"
		}
		src := fmt.Sprintf("policies:\n  - name: %s\n    images: [\"%s/acme/**\"]\n    authorities:\n      - name: release%s\n        key:\n          data: |\n%s\n", name, tr.Host, from, key)
		p, err := policy.Parse([]byte(src), "policy.yaml", nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		snap, err := NewSnapshot(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	// No cached denials: each refusal below is decided through the grants.
	g, err := New(tr.Reader, parse("app", true), WithDenyTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	img := tr.PushImage(app, "v1")
	layer := k.LegacyKeyLayer(t, app.String(), img.Digest)
	tr.PushLegacy(sigs, img.Digest, layer)
	tr.PushLegacy(app, img.Digest, k.LegacyKeyLayer(t, app.String(), img.Digest))
	payload := digestOfBytes(layer.Payload)
	sigTag := verifytest.LegacyTag(img.Digest)
	material := func(allowed bool, msg string) {
		t.Helper()
		v, err := manifestVerdict(t, g, tr, sigs, sigTag)
		wantVerdict(t, v, err, allowed, msg)
		if v, err = g.Blob(context.Background(), sigs, payload); err != nil || v.Allowed() != allowed {
			t.Fatalf("the payload blob in %s: %v %v, want allowed=%v", sigs, v, err, allowed)
		}
	}

	v, err := manifestVerdict(t, g, tr, app, "v1")
	wantVerdict(t, v, err, true, "allowed")
	material(true, "allowed: the .sig signature material")

	g.SetSnapshot(parse("renamed", true)) // another revision, the same source
	material(true, "allowed: the .sig signature material")

	g.SetSnapshot(parse("renamed", false))
	material(false, "refused")
	v, err = manifestVerdict(t, g, tr, app, "v1")
	wantVerdict(t, v, err, true, "allowed")
	material(false, "refused")
}

// TestSourcedGrantThroughAnotherRepository: one image in two
// repositories whose policies both read its signature from one source
// (acme/one also has its own). After a reload that drops the source for
// acme/one (still allowed there, on its own signature), the source's
// material is still served about it, through acme/two's verdict decided
// again; once neither reads from there, it is refused.
func TestSourcedGrantThroughAnotherRepository(t *testing.T) {
	tr := newRegistry(t, false, nil)
	one, two, sigs := tr.Repo("acme/one"), tr.Repo("acme/two"), tr.Repo("signatures/app")
	k := testKeys(t)["ecdsa-p256"]
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(k.Priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	key := indent(string(pemKey), "            ")
	parse := func(oneFrom, twoFrom bool) *Snapshot {
		var b strings.Builder
		b.WriteString("policies:\n")
		for _, p := range []struct {
			repo string
			from bool
		}{{"one", oneFrom}, {"two", twoFrom}} {
			fmt.Fprintf(&b, "  - name: %s\n    images: [\"%s/acme/%s\"]\n    authorities:\n      - name: release\n", p.repo, tr.Host, p.repo)
			if p.from {
				fmt.Fprintf(&b, "        signaturesFrom: %s/signatures/app\n", tr.Host)
			}
			fmt.Fprintf(&b, "        key:\n          data: |\n%s\n", key)
		}
		pol, err := policy.Parse([]byte(b.String()), "policy.yaml", nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		snap, err := NewSnapshot(pol, nil)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	g, err := New(tr.Reader, parse(true, true), WithDenyTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	img := tr.PushImage(one, "v1")
	m, err := tr.Reader.Manifest(context.Background(), one, "v1")
	if err != nil {
		t.Fatal(err)
	}
	tr.PutRaw(two, "v1", m.Bytes, string(m.MediaType))
	tr.PushLegacy(sigs, img.Digest, k.LegacyKeyLayer(t, one.String(), img.Digest))
	// Signed in acme/one too: allowed there under either policy, granting
	// the source only while its policy reads from there.
	tr.PushLegacy(one, img.Digest, k.LegacyKeyLayer(t, one.String(), img.Digest))
	sigTag := verifytest.LegacyTag(img.Digest)
	for _, repo := range []verify.Repository{one, two} {
		v, err := manifestVerdict(t, g, tr, repo, "v1")
		wantVerdict(t, v, err, true, "allowed")
	}
	v, err := manifestVerdict(t, g, tr, sigs, sigTag)
	wantVerdict(t, v, err, true, "allowed: the .sig signature material")

	g.SetSnapshot(parse(false, true))
	v, err = manifestVerdict(t, g, tr, sigs, sigTag)
	wantVerdict(t, v, err, true, "allowed: the .sig signature material")

	g.SetSnapshot(parse(false, false))
	v, err = manifestVerdict(t, g, tr, sigs, sigTag)
	wantVerdict(t, v, err, false, "refused")
}

// TestParseSignaturesFrom: signaturesFrom names a repository with its
// registry, no tag or digest.
func TestParseSignaturesFrom(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"registry.example/signatures/app", ""},
		{"docker.io/nginx", ""},
		{"signatures/app", "with its registry"},
		{"registry.example/signatures/app:v1", "without a tag or digest"},
		{"registry.example/Signatures", "not a repository name"},
	} {
		src := fmt.Sprintf("policies:\n  - name: p\n    images: [\"registry.example/**\"]\n    authorities:\n      - name: a\n        signaturesFrom: %s\n        key: {data: \"x\"}\n", tc.value)
		_, err := policy.Parse([]byte(src), "policy.yaml", nil)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if tc.want == "" && strings.Contains(got, "signaturesFrom") || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q; want %q", tc.value, got, tc.want)
		}
	}
}

// TestLoaderRefusesUnknownSource: with Configured set (serve sets the
// upstream client's Has), a policy file whose signaturesFrom names a
// registry the proxy has no upstream for does not load (at start-up: exit
// 2), and a reload to one keeps the last good policy; without Configured,
// it loads.
func TestLoaderRefusesUnknownSource(t *testing.T) {
	const src = "policies:\n  - name: p\n    images: [\"registry.example/**\"]\n    authorities:\n      - name: a\n        signaturesFrom: %s\n        key: {data: %q}\n"
	pem, _ := cryptoutils.MarshalPublicKeyToPEM(testKeys(t)["ecdsa-p256"].Priv.Public())
	configured := func(r string) bool { return r == "registry.example" }
	dir := t.TempDir()
	write := func(source string) string { return writeTestFile(t, dir, "policy.yaml", fmt.Sprintf(src, source, pem)) }
	const want = `policy.yaml:5: policies[0].authorities[0].signaturesFrom: authority "a" (policy "p") reads signatures from mirror.example/signatures/app, but "mirror.example" is not an upstream registry of this proxy`
	path := write("mirror.example/signatures/app")
	if _, err := (&Loader{}).Load(path); err != nil {
		t.Errorf("without Configured: %v", err)
	}
	if _, err := (&Loader{Configured: configured}).Load(path); !strings.Contains(fmt.Sprint(err), want) {
		t.Errorf("Load: %v, want %q", err, want)
	}

	builder := &Loader{Configured: configured}
	snap, err := builder.Load(write("registry.example/signatures/app"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(unusedUpstream(t), snap)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReloader(path, builder, g, zap.NewNop(), prometheus.NewRegistry())
	good := g.Snapshot().Revision
	write("mirror.example/signatures/app")
	r.Reload()
	if g.Snapshot().Revision != good || !strings.Contains(r.Degraded(), want) {
		t.Errorf("a reload to an unknown source: revision %s (was %s), degraded %q", g.Snapshot().Revision, good, r.Degraded())
	}
}
