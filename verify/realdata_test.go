package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/policy"
)

// Real, third-party signature material (see /work/shared/realdata/README.md),
// read in place and served from a ggcr registry. The certificates have long
// expired: they verify only with a trusted signing time.

const (
	githubOAuth = "https://github.com/login/oauth"
	githubOIDC  = "https://token.actions.githubusercontent.com"
)

// realdata returns a realdata folder, skipping when the data is absent
// (failing under CI=true).
func realdata(t testing.TB, sub string) string {
	t.Helper()
	dir := os.Getenv("PORTCULLIS_REALDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "realdata")
	}
	dir = filepath.Join(dir, sub)
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("realdata missing under CI: %v", err)
		}
		t.Skipf("realdata not available: %v", err)
	}
	return dir
}

func readFile(t testing.TB, path ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(path...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publicGood is the public-good trusted root, by policy.PublicGood.
func publicGood(t testing.TB) TrustProvider {
	t.Helper()
	tp, err := StaticTrust(map[string][]byte{policy.PublicGood: readFile(t, realdata(t, "trusted-root"), "trusted_root.json")})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// sigstoreJSON reads containers/image's "sigstore-json" signature files:
// a legacy cosign layer (payload and annotations).
func sigstoreJSON(t testing.TB, path ...string) layer {
	t.Helper()
	b, ok := bytes.CutPrefix(readFile(t, path...), []byte("\x00sigstore-json\n"))
	if !ok {
		t.Fatalf("%s: not sigstore-json", filepath.Join(path...))
	}
	var s struct {
		Payload     []byte            `json:"payload"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return layer{Payload: s.Payload, Annotations: s.Annotations}
}

func pemKeyAuthority(t testing.TB, name string, pemKey []byte, requireTlog bool) *policy.Authority {
	t.Helper()
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	a := &policy.Authority{Name: name, Key: &policy.Key{PEM: pemKey, Public: pub, Hint: hintOf(pub)}, RequireTlog: requireTlog}
	return a
}

func identityAuthority(issuer, subject string) *policy.Authority {
	return &policy.Authority{
		Name:        "keyless",
		Keyless:     &policy.Keyless{Identities: []policy.Identity{{Issuer: issuer, Subject: subject}}, RequireSCT: true},
		RequireTlog: true,
	}
}

// pushExact pushes exact manifest bytes at tag, with the media type they
// declare, and checks their digest.
func pushExact(tr *testRegistry, repo Repository, tag string, b []byte, wantDigest string) v1.Hash {
	tr.T.Helper()
	var m struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		tr.T.Fatal(err)
	}
	h := tr.PutRaw(repo, tag, b, m.MediaType)
	if wantDigest != "" && h.String() != wantDigest {
		tr.T.Fatalf("%s: digest %s, want %s", tag, h, wantDigest)
	}
	return h
}

// realCase resolves tag like the proxy would, discovers and checks.
type realCase struct {
	name            string
	repo, tag       string
	authority       *policy.Authority
	matchRepository bool
	image           string // as named by the client; default the served repo
	wantIdentity    string // pass
	wantReasons     []string
}

func runReal(tr *testRegistry, t *testing.T, trust TrustProvider, cases []realCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo := tr.Repo(tc.repo)
			m, err := tr.Reader.Manifest(context.Background(), repo, tc.tag)
			if err != nil {
				t.Fatal(err)
			}
			disc := discover(tr, repo, m.Digest, Limits{})
			c, err := NewChecker(trust)
			if err != nil {
				t.Fatal(err)
			}
			image := tc.image
			if image == "" {
				image = repo.String()
			}
			res := c.Check(tc.authority, disc, image, tc.matchRepository)
			if tc.wantIdentity == "" {
				wantReasons(t, res, tc.wantReasons...)
				return
			}
			if !res.Passed || res.Identity != tc.wantIdentity {
				t.Errorf("got %+v, want pass as %q", res, tc.wantIdentity)
			}
		})
	}
}

func TestRealdataContainersImage(t *testing.T) {
	dir := realdata(t, "containers-image-cosign")
	tr := newRegistry(t, false, nil)
	signed := readFile(t, dir, "fulcio-rekor-1", "manifest.json")
	const signedDigest = "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a"
	fulcio := sigstoreJSON(t, dir, "fulcio-rekor-1", "signature-1")
	noSET := layer{Payload: fulcio.Payload, Annotations: map[string]string{}}
	for k, v := range fulcio.Annotations {
		if k != annRekorBundle {
			noSET.Annotations[k] = v
		}
	}
	keyOnly := sigstoreJSON(t, dir, "key-only", "signature-1")
	for repo, l := range map[string]layer{"fulcio-rekor-1": fulcio, "fulcio-no-set": noSET, "key-1": sigstoreJSON(t, dir, "key-rekor-1", "signature-1")} {
		d := pushExact(tr, tr.Repo(repo), "latest", signed, signedDigest)
		tr.PushLegacy(tr.Repo(repo), d, l)
	}
	single := pushExact(tr, tr.Repo("single"), "latest", readFile(t, dir, "key-only", "manifest.json"), "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00")
	tr.PushLegacy(tr.Repo("single"), single, keyOnly)
	modified := pushExact(tr, tr.Repo("modified"), "latest", readFile(t, dir, "negative-modified-manifest", "manifest.json"), "")
	tr.PushLegacy(tr.Repo("modified"), modified, keyOnly)
	pushExact(tr, tr.Repo("unknown-key"), "latest", readFile(t, dir, "key-only", "manifest.json"), single.String())
	tr.PushLegacy(tr.Repo("unknown-key"), single, sigstoreJSON(t, dir, "negative-unknown-key", "unknown-cosign-key.signature"))

	mitr := identityAuthority(githubOAuth, "mitr@redhat.com")
	cosign2 := readFile(t, dir, "key-rekor-1", "cosign2.pub")
	cosign1 := readFile(t, dir, "key-only", "cosign.pub")
	runReal(tr, t, publicGood(t), []realCase{
		{name: "keyless with SET", repo: "fulcio-rekor-1", tag: "latest", authority: mitr,
			wantIdentity: "issuer " + githubOAuth + " subject mitr@redhat.com, legacy .sig"},
		{name: "keyless with SET, tlog optional", repo: "fulcio-rekor-1", tag: "latest",
			authority:    &policy.Authority{Keyless: mitr.Keyless},
			wantIdentity: "issuer " + githubOAuth + " subject mitr@redhat.com, legacy .sig"},
		{name: "keyless, other identity", repo: "fulcio-rekor-1", tag: "latest", authority: identityAuthority(githubOAuth, "someone@redhat.com"),
			wantReasons: []string{"identity issuer https://github.com/login/oauth subject mitr@redhat.com does not match issuer https://github.com/login/oauth subject someone@redhat.com"}},
		{name: "keyless, other issuer", repo: "fulcio-rekor-1", tag: "latest", authority: identityAuthority(githubOIDC, "mitr@redhat.com"),
			wantReasons: []string{"does not match issuer " + githubOIDC}},
		{name: "keyless, SET stripped", repo: "fulcio-no-set", tag: "latest", authority: mitr,
			wantReasons: []string{"certificate expired (not after 2023-01-20T21:01:31Z) and no trusted timestamp (no Rekor SET or RFC 3161 timestamp)"}},
		{name: "keyless, relocated, matchRepository", repo: "fulcio-rekor-1", tag: "latest", authority: mitr, matchRepository: true,
			wantReasons: []string{"payload names repository 192.168.64.2:5000/cosign-signed/fulcio-rekor-1, not"}},
		{name: "keyless, matchRepository, original name", repo: "fulcio-rekor-1", tag: "latest", authority: mitr, matchRepository: true,
			image: "192.168.64.2:5000/cosign-signed/fulcio-rekor-1", wantIdentity: "issuer " + githubOAuth + " subject mitr@redhat.com, legacy .sig"},
		{name: "key with SET, tlog required", repo: "key-1", tag: "latest", authority: pemKeyAuthority(t, "cosign2", cosign2, true),
			wantIdentity: "key " + pemHint(t, cosign2) + ", legacy .sig"},
		{name: "key with SET, tlog optional", repo: "key-1", tag: "latest", authority: pemKeyAuthority(t, "cosign2", cosign2, false),
			wantIdentity: "key " + pemHint(t, cosign2) + ", legacy .sig"},
		{name: "key with SET, other key", repo: "key-1", tag: "latest", authority: pemKeyAuthority(t, "cosign", cosign1, false),
			wantReasons: []string{"none verified for key " + pemHint(t, cosign1), "signers seen: key " + pemHint(t, cosign2), "signature does not verify with key"}},
		{name: "key only", repo: "single", tag: "latest", authority: pemKeyAuthority(t, "cosign", cosign1, false),
			wantIdentity: "key " + pemHint(t, cosign1) + ", legacy .sig"},
		{name: "key only, tlog required", repo: "single", tag: "latest", authority: pemKeyAuthority(t, "cosign", cosign1, true),
			wantReasons: []string{"no transparency log (Rekor) entry, and the authority requires one"}},
		{name: "modified manifest", repo: "modified", tag: "latest", authority: pemKeyAuthority(t, "cosign", cosign1, false),
			wantReasons: []string{"payload names digest sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00, not the image's " + modified.String()}},
		{name: "unknown key", repo: "unknown-key", tag: "latest", authority: pemKeyAuthority(t, "cosign", cosign1, false),
			wantReasons: []string{"signature does not verify with key " + pemHint(t, cosign1)}},
	})
}

func pemHint(t testing.TB, pemKey []byte) string {
	t.Helper()
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	return hintOf(pub)
}

// TestRealdataServerImageIndex: a 2026 keyless (GitHub Actions) signature
// of an OCI image index.
func TestRealdataServerImageIndex(t *testing.T) {
	dir := realdata(t, "salrashid123-server-image-index-2026")
	const digest = "sha256:c05263d2ff654c3a94243662440913f045075d59c436e2c69e9145ec2b87a321"
	if h, _ := oci.Digest("sha256", readFile(t, dir, "index.json")); h.String() != digest {
		t.Fatalf("index.json digest %s", h)
	}
	d, _ := v1.NewHash(digest)
	forBothRegistries(t, func(t *testing.T, referrers bool) {
		tr := newRegistry(t, referrers, nil)
		repo := tr.Repo("salrashid123/server_image")
		// The index's children are not available, so ggcr's registry will
		// not store the index itself; discovery needs only its digest.
		tr.PushBlob(repo, readFile(t, dir, "signature-config.json"), "application/vnd.oci.image.config.v1+json")
		tr.PushBlob(repo, readFile(t, dir, "payload.json"), oci.CosignSimpleSigning)
		pushExact(tr, repo, legacyTag(d), readFile(t, dir, "signature-manifest.reconstructed.json"), "")
		disc := discover(tr, repo, d, Limits{})
		subject := "https://github.com/salrashid123/go-bazel-github-workflow/.github/workflows/release.yaml@refs/tags/v0.0.30"
		c, err := NewChecker(publicGood(t))
		if err != nil {
			t.Fatal(err)
		}
		res := c.Check(identityAuthority(githubOIDC, subject), disc, "docker.io/salrashid123/server_image", true)
		if want := "issuer " + githubOIDC + " subject " + subject + ", legacy .sig"; !res.Passed || res.Identity != want {
			t.Errorf("got %+v, want pass as %q", res, want)
		}
		re := &policy.Authority{RequireTlog: true, Keyless: &policy.Keyless{RequireSCT: true, Identities: []policy.Identity{
			{Issuer: githubOIDC, SubjectRegExp: `^https://github\.com/salrashid123/other/`}}}}
		wantReasons(t, c.Check(re, disc, repo.String(), false), "does not match issuer "+githubOIDC+" subject ~^https://github")
	})
}

// TestRealdataConnaisseur: several key signers on one image (threshold
// policies), and a relocated keyless signature.
func TestRealdataConnaisseur(t *testing.T) {
	dir := realdata(t, "connaisseur-testimage")
	img := filepath.Join(dir, "securesystemsengineering", "testimage")
	tr := newRegistry(t, true, nil)
	repo := tr.Repo("securesystemsengineering/testimage")
	blobs, err := os.ReadDir(filepath.Join(img, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		tr.PushBlob(repo, readFile(t, img, "blobs", b.Name()), oci.CosignSimpleSigning)
	}
	for _, tag := range []string{"keyless", "multi-cosigned-alice", "multi-cosigned-alice-bob-charlie"} {
		d := pushExact(tr, repo, tag, readFile(t, img, "manifests", tag+".json"), "")
		pushExact(tr, repo, legacyTag(d), readFile(t, img, "manifests", legacyTag(d)+".json"), "")
	}
	trust := publicGood(t)
	signers := map[string]*policy.Authority{}
	for _, n := range []string{"alice", "bob", "charlie", "default"} {
		signers[n] = pemKeyAuthority(t, n, readFile(t, dir, "keys", n+".pub.pem"), false)
	}
	c, err := NewChecker(trust)
	if err != nil {
		t.Fatal(err)
	}
	passing := func(tag string) string {
		m, err := tr.Reader.Manifest(context.Background(), repo, tag)
		if err != nil {
			t.Fatal(err)
		}
		disc := discover(tr, repo, m.Digest, Limits{})
		var names []string
		for _, n := range []string{"alice", "bob", "charlie", "default"} {
			if res := c.Check(signers[n], disc, "docker.io/securesystemsengineering/testimage", true); res.Passed {
				names = append(names, n)
			}
		}
		return strings.Join(names, ",")
	}
	// threshold 2 of {alice, bob, charlie}: met by the three-signer image only.
	if got := passing("multi-cosigned-alice-bob-charlie"); got != "alice,bob,charlie" {
		t.Errorf("alice-bob-charlie image: passing %q", got)
	}
	if got := passing("multi-cosigned-alice"); got != "alice" {
		t.Errorf("alice image: passing %q", got)
	}
	identity := identityAuthority(githubOAuth, "philipp.belitz@securesystems.de")
	runReal(tr, t, trust, []realCase{
		{name: "keyless relocated", repo: repo.Name, tag: "keyless", authority: identity,
			wantIdentity: "issuer " + githubOAuth + " subject philipp.belitz@securesystems.de, legacy .sig"},
		{name: "keyless relocated, matchRepository", repo: repo.Name, tag: "keyless", authority: identity, matchRepository: true,
			image: "docker.io/securesystemsengineering/testimage", wantReasons: []string{"payload names repository index.docker.io/phbelitz/rekor-test"}},
		{name: "keyless for a key authority", repo: repo.Name, tag: "keyless", authority: signers["alice"],
			wantReasons: []string{"signature does not verify with key " + signers["alice"].Key.Hint}},
		{name: "bob on alice's image", repo: repo.Name, tag: "multi-cosigned-alice", authority: signers["bob"],
			wantReasons: []string{"1 signature found, none verified for key " + signers["bob"].Key.Hint}},
	})
}

// TestRealdataBundles: a real cosign v3 image signature bundle (a
// referrer) and a real attestation bundle (not a signature).
func TestRealdataBundles(t *testing.T) {
	forBothRegistries(t, func(t *testing.T, referrers bool) {
		tr := newRegistry(t, referrers, nil)
		trust := publicGood(t)
		kw := tr.Repo("kubewarden/kubewarden-controller")
		d, _ := v1.NewHash("sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172")
		subject := v1.Descriptor{MediaType: "application/vnd.oci.image.index.v1+json", Digest: d, Size: 1}
		tr.PushReferrer(kw, subject, readFile(t, realdata(t, "sigstore-rs-kubewarden-v03"), "bundle_v03.json"), "")
		c, err := NewChecker(trust)
		if err != nil {
			t.Fatal(err)
		}
		san := "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0"
		res := c.Check(identityAuthority(githubOIDC, san), discover(tr, kw, d, Limits{}), kw.String(), false)
		if want := "issuer " + githubOIDC + " subject " + san + ", sigstore bundle"; !res.Passed || res.Identity != want {
			t.Errorf("got %+v, want pass as %q", res, want)
		}

		att := realdata(t, "cosign-oci-attestation-v03")
		repo := tr.Repo("attested")
		ad := pushExact(tr, repo, "latest", readFile(t, att, "manifest.json"), "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4")
		tr.PushReferrer(repo, v1.Descriptor{MediaType: "application/vnd.docker.distribution.manifest.v2+json", Digest: ad, Size: 1},
			readFile(t, att, "oci-attestation.sigstore.json"), "")
		res = c.Check(identityAuthority(githubOAuth, "cody@soyland.com"), discover(tr, repo, ad, Limits{}), repo.String(), false)
		wantReasons(t, res, "no signatures found", "1 attestation found but attestations are not signatures")
	})
}
