//go:build e2e

package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Interop with the real cosign CLI: images signed by cosign v3 and v2 with a
// key pair cosign generated, in every storage format each writes offline,
// must be served by a proxy whose policy trusts that key, and cosign must
// verify them through the proxy. Both binaries are pinned and installed by
// `make tools` (see the Makefile); a missing one skips its subtests (fails
// with CI=true).
//
// Each combination signs on two upstreams: the shared distribution registry
// (registry.example; no referrers API, so cosign keeps bundles under the
// sha256-<hex> fallback tag) and go-containerregistry's registry with the
// referrers API on (referrers.example). cosign signs against the upstream's
// own address, as a publisher would, and everything else goes through the
// proxy.

// cosignFormat is one way a cosign version stores a signature.
type cosignFormat struct {
	name   string
	sign   []string // flags of `cosign sign` that select the format
	verify []string // flags of `cosign verify` that find it
	env    []string // added to both commands' environment
	// asClients makes the payload name the image as clients pull it
	// through the proxy (--sign-container-identity, which cosign documents
	// for image proxies): the gate then rebuilds each payload from the
	// digest its .sig layer gives and reads none.
	asClients bool
	// refused, if not "", is why the proxy does not accept this format: the
	// signed image must then be refused like an unsigned one (the gate fails
	// closed on signature formats it does not read).
	refused string
}

// cosignVersion is a pinned cosign CLI and how to run it offline.
type cosignVersion struct {
	tool, version string
	// sign and verify are the flags every command of this version needs to
	// stay offline: no Rekor upload, no signing config or TUF fetch, plain
	// HTTP registries.
	sign, verify []string
	// emptyTrustedRoot adds --trusted-root with a trusted root that trusts
	// nothing to cosign verify: cosign v2 otherwise fetches trusted_root.json
	// from the Sigstore TUF CDN first (and, for bundles, fails without it).
	emptyTrustedRoot bool
	formats          []cosignFormat
}

// oci11Refused is why the proxy refuses cosign's experimental OCI 1.1
// variant of legacy signatures (a simple-signing referrer with artifactType
// application/vnd.dev.cosign.artifact.sig.v1+json, written with
// COSIGN_EXPERIMENTAL=1 --registry-referrers-mode=oci-1-1): package verify
// reads bundles from referrers and simple-signing layers only from .sig
// tags, and drops referrers of other artifact types.
const oci11Refused = "the OCI 1.1 simple-signing referrer is not a format Portcullis reads"

// oci11Legacy is that experimental variant; both versions write it.
var oci11Legacy = cosignFormat{
	name:    "oci11-legacy",
	sign:    []string{"--new-bundle-format=false", "--registry-referrers-mode=oci-1-1"},
	verify:  []string{"--experimental-oci11"},
	env:     []string{"COSIGN_EXPERIMENTAL=1"},
	refused: oci11Refused,
}

var cosignVersions = []cosignVersion{
	{
		tool: "cosign", version: "v3.1.3",
		// --tlog-upload=false is refused unless the signing config (from TUF)
		// is off too. --tlog-upload and --new-bundle-format are deprecated
		// (hidden from --help) but work.
		sign:   []string{"--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry", "-y"},
		verify: []string{"--insecure-ignore-tlog=true", "--allow-http-registry"},
		formats: []cosignFormat{
			{name: "bundle"}, // the default
			{name: "legacy", sign: []string{"--new-bundle-format=false"}},
			{name: "legacy-as-clients", sign: []string{"--new-bundle-format=false"}, asClients: true},
			oci11Legacy,
		},
	},
	{
		tool: "cosign-v2", version: "v2.6.5",
		// v2 signs with the legacy format and no signing config by default.
		// It has --allow-insecure-registry too (HTTP and unverified TLS);
		// --allow-http-registry is the narrower one.
		sign:             []string{"--tlog-upload=false", "--allow-http-registry", "-y"},
		verify:           []string{"--insecure-ignore-tlog=true", "--allow-http-registry"},
		emptyTrustedRoot: true,
		formats: []cosignFormat{
			{name: "legacy"}, // the default
			{name: "legacy-as-clients", asClients: true},
			// A bundle referrer like v3's, but its descriptor in the
			// referrers fallback index has artifactType
			// application/vnd.oci.empty.v1+json (v3: the bundle type).
			{name: "bundle", sign: []string{"--new-bundle-format"}, verify: []string{"--new-bundle-format"}},
			oci11Legacy,
		},
	},
}

// cosignUpstreams are the registries cosign signs on, as the proxy names them.
var cosignUpstreams = []string{"registry.example", "referrers.example"}

func TestCosignInterop(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	upstreams := map[string]string{
		"registry.example":  e.upstreams["registry.example"].addr,
		"referrers.example": startCosignReferrersRegistry(t),
	}
	for _, v := range cosignVersions {
		t.Run(v.tool+"@"+v.version, func(t *testing.T) {
			c := needCosign(t, v.tool, v.version)
			trusted := c.generateKeyPair(t, "trusted")
			other := c.generateKeyPair(t, "other")
			p := startCosignProxy(t, e, trusted.pub, upstreams)
			for _, up := range cosignUpstreams {
				for _, f := range v.formats {
					t.Run(up+"/"+f.name, func(t *testing.T) {
						p.logOnFailure(t)
						ic := interopCase{e: e, c: c, v: v, f: f, p: p, registry: up, upstream: upstreams[up], trusted: trusted, other: other}
						ic.run(t)
					})
				}
			}
		})
	}
}

// interopCase is one cosign version and format on one upstream.
type interopCase struct {
	e        *env
	c        *cosignCLI
	v        cosignVersion
	f        cosignFormat
	p        *cosignProxy
	registry string // the upstream's name on the proxy
	upstream string // its host:port
	trusted  cosignKey
	other    cosignKey
}

// repo is the case's repository.
func (ic *interopCase) repo() string { return "interop/" + ic.c.tool + "/" + ic.f.name }

func (ic *interopCase) run(t *testing.T) {
	repo := ic.repo()
	image := ic.registry + "/" + repo // as clients name it through the proxy
	direct := ic.upstream + "/" + repo
	signed := cosignImage(t, ic.upstream, image, "signed")
	both := cosignImage(t, ic.upstream, image, "both-keys")
	unsigned := cosignImage(t, ic.upstream, image, "unsigned")
	forged := cosignImage(t, ic.upstream, image, "other-key")
	t.Logf("%s: signed %s, both-keys %s, unsigned %s, other-key %s", image, signed, both, unsigned, forged)

	ic.sign(t, ic.trusted, direct+"@"+signed.String())
	ic.sign(t, ic.other, direct+"@"+both.String()) // two signatures, the trusted one second
	ic.sign(t, ic.trusted, direct+"@"+both.String())
	ic.sign(t, ic.other, direct+"@"+forged.String())
	// cosign accepts its own signature on the upstream: what follows
	// checks the proxy, not the signing.
	ic.verify(t, ic.trusted, direct+"@"+signed.String())

	// The manifests through the proxy, by tag.
	blobsBefore := metricSum(ic.p.admin, "portcullis_upstream_requests_total", `route="blob"`)
	for _, img := range []struct {
		tag string
		d   v1.Hash
	}{{"signed", signed}, {"both-keys", both}} {
		r := cosignGetManifest(t, ic.p.addr, image, img.tag)
		what := "GET " + image + ":" + img.tag + " through the proxy"
		if ic.f.refused != "" {
			t.Logf("%s: refused as expected (%s): %s", what, ic.f.refused, cosignDenied(t, what, r))
			continue
		}
		if r.status != http.StatusOK {
			t.Errorf("%s: %d, want 200\n%s", what, r.status, r.body)
		} else if got := r.header.Get("Docker-Content-Digest"); got != img.d.String() || sha256Digest(r.body) != img.d.String() {
			t.Errorf("%s: Docker-Content-Digest %s, body hashes to %s; want %s", what, got, sha256Digest(r.body), img.d)
		}
		if d := ic.p.waitDecision(t, image, img.d); d.Result != "allow" || d.Cause != "policy" {
			t.Errorf("decision on %s@%s: %+v, want allow by policy", image, img.d, d)
		}
	}
	if n := metricSum(ic.p.admin, "portcullis_upstream_requests_total", `route="blob"`) - blobsBefore; ic.f.asClients && n != 0 {
		t.Errorf("deciding on the signed and both-keys images read %.0f blobs upstream; their payloads name the image as clients pull it, so none should be read", n)
	} else if !ic.f.asClients && ic.f.refused == "" && n == 0 {
		t.Errorf("deciding on the signed and both-keys images read no blob upstream, but their payloads (or bundles) must be read")
	}
	msg := cosignDenied(t, "GET "+image+":unsigned", cosignGetManifest(t, ic.p.addr, image, "unsigned"))
	if !strings.Contains(msg, "no signatures found") {
		t.Errorf("GET %s:unsigned: DENIED message does not say there are no signatures: %q", image, msg)
	}
	msg = cosignDenied(t, "GET "+image+":other-key", cosignGetManifest(t, ic.p.addr, image, "other-key"))
	if ic.f.refused == "" && strings.Contains(msg, "no signatures found") {
		t.Errorf("GET %s:other-key: the proxy found no signature (cosign signed it with another key): %q", image, msg)
	}
	for _, d := range []v1.Hash{unsigned, forged} {
		if got := ic.p.waitDecision(t, image, d); got.Result != "deny" || got.Cause != "policy" {
			t.Errorf("decision on %s@%s: %+v, want deny by policy", image, d, got)
		}
	}
	if ic.f.refused == "" {
		// The whole image: manifest, config and layers, checked by digest.
		cosignPull(t, ic.p.addr+"/"+image+":signed")
	}

	// portcullis verify decides the same way.
	code, res := cosignPortcullisVerify(t, ic.e, ic.p.configPath, image+":signed", image+"@"+both.String())
	want, wantCode := "allow", 0
	if ic.f.refused != "" {
		want, wantCode = "deny", 1
	}
	if code != wantCode || len(res) != 2 || res[0].Decision != want || res[0].Digest != signed.String() || res[1].Decision != want {
		t.Errorf("portcullis verify of the signed and both-keys images: exit %d, %+v; want exit %d, both %s", code, res, wantCode, want)
	}
	code, res = cosignPortcullisVerify(t, ic.e, ic.p.configPath, image+":unsigned", image+"@"+forged.String())
	if code != 1 || len(res) != 2 || res[0].Decision != "deny" || res[1].Decision != "deny" {
		t.Errorf("portcullis verify of the unsigned and other-key images: exit %d, %+v; want exit 1, both deny", code, res)
	}

	// cosign verifies through the proxy: the signature material of a served
	// image must be served. The material of a refused image is not (cosign
	// verify of a digest reads only the signatures, and the gate decides the
	// image itself first), so for a refused format cosign fails through the
	// proxy, by digest and by tag.
	through := ic.p.addr + "/" + image
	if ic.f.refused == "" {
		ic.verify(t, ic.trusted, through+"@"+signed.String())
		if r := ic.c.exec(t, "", ic.f.env, ic.verifyArgs(t, ic.other, through+"@"+signed.String())...); r.err == nil {
			t.Errorf("cosign verify with the other key through the proxy succeeded:\n%s", r.stdout)
		}
		ic.verify(t, ic.trusted, through+":both-keys")
	} else {
		for _, ref := range []string{through + "@" + signed.String(), through + ":both-keys"} {
			r := ic.c.exec(t, "", ic.f.env, ic.verifyArgs(t, ic.trusted, ref)...)
			if r.err == nil {
				t.Errorf("cosign verify of %s through the proxy succeeded; the proxy refuses the image, so its signatures too", ref)
			}
			t.Logf("cosign verify of %s through the proxy fails (%v), as the image is refused (%s):\n%s", ref, r.err, ic.f.refused, cosignIndent(r.stderr))
		}
	}
	ic.logDecisions(t, image)
}

// sign signs ref with key in the case's format.
func (ic *interopCase) sign(t *testing.T, key cosignKey, ref string) {
	t.Helper()
	args := append([]string{"sign", "--key", key.priv}, ic.v.sign...)
	if ic.f.asClients {
		args = append(args, "--sign-container-identity", ic.registry+"/"+ic.repo())
	}
	args = append(append(args, ic.f.sign...), ref)
	ic.c.run(t, "", ic.f.env, args...)
}

// verifyArgs is `cosign verify` of ref with key's public key.
func (ic *interopCase) verifyArgs(t *testing.T, key cosignKey, ref string) []string {
	args := append([]string{"verify", "--key", key.pub}, ic.v.verify...)
	if ic.v.emptyTrustedRoot {
		args = append(args, "--trusted-root", ic.c.emptyTrustedRoot(t))
	}
	return append(append(args, ic.f.verify...), ref)
}

// verify runs cosign verify of ref with key, which must succeed.
func (ic *interopCase) verify(t *testing.T, key cosignKey, ref string) {
	t.Helper()
	ic.c.run(t, "", ic.f.env, ic.verifyArgs(t, key, ref)...)
}

// logDecisions logs the proxy's decisions on the repository: the images,
// and the signature material cosign fetched through it.
func (ic *interopCase) logDecisions(t *testing.T, image string) {
	var lines []string
	for _, d := range ic.p.decisions(t, image, v1.Hash{}) {
		lines = append(lines, d.Result+" "+d.Cause+": "+d.Message)
	}
	slices.Sort(lines)
	t.Logf("proxy decisions on %s:\n%s", image, cosignIndent(strings.Join(slices.Compact(lines), "\n")))
}
