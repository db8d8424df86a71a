//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Attestations made with the real cosign CLIs (`cosign attest --key`, a key
// pair cosign generated, offline: no Rekor, no TSA) and checked by proxies
// whose policies require them. Each cosign version attests in each format
// it writes (attestFormats): a v0.3 bundle referrer, which cosign keeps on
// distribution (no referrers API) under the sha256-<hex> fallback index, or
// a DSSE layer of the legacy sha256-<hex>.att tag. The attested images carry
// no image signature: attestation-only authorities pass them.
//
// TestAttestCosign pulls every image through one proxy per requirement
// (attestChecks), so that one attestation is checked under each without
// attesting again; TestAttestPull pulls with podman and containerd.

// attestPredicate is one predicate type cosign attests, with a predicate
// and what the policies require of it.
type attestPredicate struct {
	name       string // the image's last repository segment and the attestation's name
	cosignType string // cosign attest --type
	body       string // the predicate file
	want       string // a predicateType of the policy that the attestation satisfies
	other      string // one it does not satisfy
	// holds and fails are CEL conditions over the predicate cosign writes
	// from body: true, and false.
	holds, fails string
	// undecodable: cosign writes a statement that is not in-toto (its
	// predicate is not a JSON object), which sigstore-go fails to decode:
	// the proxy refuses it as not verified, as cosign verify-attestation
	// does, and cosign's sigstore-go signer (v2 with --signing-config)
	// refuses to sign it.
	undecodable bool
}

var attestPredicates = []attestPredicate{
	{
		name: "slsa", cosignType: "slsaprovenance", want: "slsaprovenance", other: "spdx",
		// v0.2; cosign re-parses it into its own struct, so only its fields.
		body: `{"builder": {"id": "https://example.com/builder@v1"},
 "buildType": "https://example.com/build-type@v1",
 "invocation": {"configSource": {"uri": "git+https://example.com/acme/app", "digest": {"sha1": "0123456789abcdef0123456789abcdef01234567"}, "entryPoint": "build.yaml"}},
 "materials": [{"uri": "git+https://example.com/acme/app", "digest": {"sha1": "0123456789abcdef0123456789abcdef01234567"}}]}`,
		holds: `predicate.builder.id == "https://example.com/builder@v1" && predicate.materials.exists(m, m.uri.startsWith("git+https://example.com/"))`,
		fails: `predicate.builder.id == "https://example.com/untrusted-builder"`,
	},
	{
		// SLSA v1, which the slsaprovenance alias covers too (but not the
		// v0.2 URI).
		name: "slsa1", cosignType: "slsaprovenance1", want: "slsaprovenance", other: "https://slsa.dev/provenance/v0.2",
		body: `{"buildDefinition": {"buildType": "https://example.com/build-type@v1",
  "externalParameters": {"repository": "https://example.com/acme/app", "ref": "refs/heads/main"},
  "resolvedDependencies": [{"uri": "git+https://example.com/acme/app@refs/heads/main", "digest": {"gitCommit": "0123456789abcdef0123456789abcdef01234567"}}]},
 "runDetails": {"builder": {"id": "https://example.com/builder@v1"}, "metadata": {"invocationId": "https://example.com/ci/run/1"}}}`,
		holds: `predicate.runDetails.builder.id == "https://example.com/builder@v1" && predicate.buildDefinition.externalParameters.ref == "refs/heads/main"`,
		fails: `predicate.buildDefinition.externalParameters.ref.startsWith("refs/tags/")`,
	},
	{
		name: "spdx", cosignType: "spdxjson", want: "spdx", other: "cyclonedx",
		body: `{"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": "acme-app",
 "documentNamespace": "https://example.com/spdx/acme-app-1",
 "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: portcullis-e2e"]},
 "packages": [{"name": "busybox", "SPDXID": "SPDXRef-busybox", "versionInfo": "1.36.1", "downloadLocation": "NOASSERTION"}]}`,
		holds: `predicate.spdxVersion == "SPDX-2.3" && predicate.packages.exists(p, p.name == "busybox" && p.versionInfo == "1.36.1")`,
		fails: `predicate.packages.exists(p, p.name == "openssl")`,
	},
	{
		// SPDX tag-value: cosign's --type spdx makes the whole file the
		// predicate, a JSON string, where in-toto requires an object.
		name: "spdx-text", cosignType: "spdx", want: "spdx", other: "cyclonedx", undecodable: true,
		body:  "SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\nSPDXID: SPDXRef-DOCUMENT\nDocumentName: acme-app\nPackageName: busybox",
		holds: `predicate.startsWith("SPDXVersion: SPDX-2.3") && predicate.contains("PackageName: busybox")`,
		fails: `predicate.contains("PackageName: openssl")`,
	},
	{
		name: "cyclonedx", cosignType: "cyclonedx", want: "cyclonedx", other: "vuln",
		body: `{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
 "components": [{"type": "library", "name": "zlib", "version": "1.3.1", "purl": "pkg:generic/zlib@1.3.1"}]}`,
		holds: `predicate.bomFormat == "CycloneDX" && predicate.components.all(c, c.purl.startsWith("pkg:"))`,
		fails: `predicate.components.size() == 0`,
	},
	{
		// cosign decodes it into its vuln predicate struct (invocation,
		// scanner, metadata).
		name: "vuln", cosignType: "vuln", want: "vuln", other: "https://cosign.sigstore.dev/attestation/v1",
		body: `{"invocation": {"uri": "https://example.com/ci/run/1", "event_id": "1", "builder.id": "https://example.com/builder@v1"},
 "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.50.0", "version": "0.50.0",
  "db": {"uri": "https://example.com/trivy-db", "version": "2"},
  "result": {"criticalCount": 0, "findings": []}},
 "metadata": {"scanStartedOn": "2026-01-01T00:00:00Z", "scanFinishedOn": "2026-01-01T00:01:00Z"}}`,
		holds: `predicate.scanner.uri.startsWith("pkg:github/aquasecurity/trivy@") && predicate.scanner.result.criticalCount == 0`,
		fails: `predicate.scanner.result.criticalCount > 0`,
	},
	{
		name: "openvex", cosignType: "openvex", want: "openvex", other: "link",
		body: `{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/acme-app-1", "author": "acme",
 "timestamp": "2026-01-01T00:00:00Z", "version": 1,
 "statements": [{"vulnerability": {"name": "CVE-2024-0001"}, "products": [{"@id": "pkg:oci/app"}],
  "status": "not_affected", "justification": "vulnerable_code_not_present"}]}`,
		holds: `predicate.statements.all(s, s.status == "not_affected" || s.status == "fixed")`,
		fails: `predicate.statements.exists(s, s.status == "affected")`,
	},
	{
		// An in-toto link; cosign requires its _type.
		name: "link", cosignType: "link", want: "link", other: "openvex",
		body: `{"_type": "link", "name": "build", "command": ["make", "all"],
 "materials": {"main.go": {"sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
 "products": {}, "byproducts": {"return-value": 0}, "environment": {}}`,
		holds: `predicate.name == "build" && predicate.byproducts["return-value"] == 0 && "main.go" in predicate.materials`,
		fails: `predicate.command[0] == "bazel"`,
	},
	{
		// cosign's own generic predicate: {"Data": the file as a string,
		// "Timestamp": when cosign attested}.
		name: "custom", cosignType: "custom", want: "https://cosign.sigstore.dev/attestation/v1", other: "slsaprovenance",
		body:  `{"team": "payments", "reviewed": true}`,
		holds: `predicate.Data.contains('"team": "payments"') && timestamp(predicate.Timestamp) <= now`,
		fails: `predicate.Data.contains("finance")`,
	},
	{
		// A predicate type of its own (a URI): cosign writes the file as the
		// predicate.
		name: "review", cosignType: "https://example.com/attestation/review/v1", want: "https://example.com/attestation/review/v1",
		other: "https://example.com/attestation/review/v2",
		body:  `{"team": "payments", "reviewed": true, "approvers": ["alice", "bob"]}`,
		holds: `predicateType == "https://example.com/attestation/review/v1" && predicate.reviewed && predicate.approvers.size() >= 2`,
		fails: `predicate.team == "finance"`,
	},
}

// attestFormat is a cosign version and a format it attests in.
type attestFormat struct {
	name string // the repository segment: <tool>-<format>
	v    cosignVersion
	f    cosignFormat
	// signingConfig adds --signing-config with a signing config that names
	// no service, and an empty --trusted-root (so that cosign fetches
	// neither from TUF). cosign v2.6.5 then labels its bundle referrers
	// dev.sigstore.bundle.predicateType https://sigstore.dev/cosign/sign/v1,
	// attestations too: only the signed statement tells them from
	// signatures.
	signingConfig bool
}

// bundle reports whether f stores bundle referrers (not .att or .sig tags).
func (af attestFormat) bundle() bool { return af.f.name == "bundle" }

// attestFormats are the formats of cosignVersions the proxy reads (not the
// OCI 1.1 simple-signing variant), and cosign v2's bundles written with a
// signing config.
func attestFormats() []attestFormat {
	var out []attestFormat
	for _, v := range cosignVersions {
		for _, f := range v.formats {
			if f.refused != "" {
				continue
			}
			out = append(out, attestFormat{name: v.tool + "-" + f.name, v: v, f: f})
			if v.tool == "cosign-v2" && f.name == "bundle" {
				out = append(out, attestFormat{name: v.tool + "-bundle-sc", v: v, f: f, signingConfig: true})
			}
		}
	}
	return out
}

// attestCLI runs one cosign CLI in one format.
type attestCLI struct {
	af    attestFormat
	c     *cosignCLI
	flags []string // of cosign attest and sign: offline, plain HTTP, the format
	root  string   // an empty trusted root, for cosign v2
}

// cli writes the files af's commands read (once: the commands run in
// parallel) and returns how to run c in format af.
func (af attestFormat) cli(t *testing.T, c *cosignCLI) *attestCLI {
	a := &attestCLI{af: af, c: c, flags: append(slices.Clone(af.v.sign), af.f.sign...)}
	if af.v.emptyTrustedRoot || af.signingConfig {
		a.root = c.emptyTrustedRoot(t)
	}
	if af.signingConfig {
		sc := filepath.Join(c.dir, "empty_signing_config.json")
		writeFile(t, sc, `{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","rekorTlogConfig":{"selector":"ANY"},"tsaConfig":{"selector":"ANY"}}`+"\n")
		a.flags = append(a.flags, "--signing-config", sc, "--trusted-root", a.root)
	}
	return a
}

// attestArgs is cosign attest of ref with key and p's predicate (written to
// a file of t's).
func (a *attestCLI) attestArgs(t *testing.T, key cosignKey, p attestPredicate, ref string) []string {
	pred := filepath.Join(t.TempDir(), p.name+".json")
	writeFile(t, pred, p.body+"\n")
	args := append([]string{"attest", "--key", key.priv, "--type", p.cosignType, "--predicate", pred}, a.flags...)
	return append(args, ref)
}

// attest runs cosign attest of ref with key and p's predicate.
func (a *attestCLI) attest(t *testing.T, key cosignKey, p attestPredicate, ref string) {
	t.Helper()
	a.c.run(t, "", a.af.f.env, a.attestArgs(t, key, p, ref)...)
}

// sign runs cosign sign of ref with key.
func (a *attestCLI) sign(t *testing.T, key cosignKey, ref string) {
	t.Helper()
	a.c.run(t, "", a.af.f.env, append(append([]string{"sign", "--key", key.priv}, a.flags...), ref)...)
}

// verifyAttestation runs cosign verify-attestation of ref (through the
// proxy) with key, for predicate p, which must succeed.
func (a *attestCLI) verifyAttestation(t *testing.T, key cosignKey, p attestPredicate, ref string) {
	t.Helper()
	args := append([]string{"verify-attestation", "--key", key.pub, "--type", p.cosignType}, a.af.v.verify...)
	if a.af.v.emptyTrustedRoot {
		args = append(args, "--trusted-root", a.root)
	}
	a.c.run(t, "", a.af.f.env, append(append(args, a.af.f.verify...), ref)...)
}

// attestPredicateNamed is the predicate of attestPredicates named name.
func attestPredicateNamed(t *testing.T, name string) attestPredicate {
	t.Helper()
	i := slices.IndexFunc(attestPredicates, func(p attestPredicate) bool { return p.name == name })
	if i < 0 {
		t.Fatalf("no predicate %q", name)
	}
	return attestPredicates[i]
}

// attestImage is one image of a format, attest/<format>/<repo>:v1.
type attestImage struct {
	repo string
	// pred is what the policies of attestChecks require of it and, unless
	// signOnly, what it is attested with.
	pred     attestPredicate
	signOnly bool // signed (cosign sign), not attested
	otherKey bool // attested with a key the policies do not trust
}

// attestImages are the images each format attests (or signs).
func attestImages() []attestImage {
	var out []attestImage
	for _, p := range attestPredicates {
		out = append(out, attestImage{repo: p.name, pred: p})
	}
	slsa := attestPredicates[0] // slsaprovenance v0.2
	return append(out,
		attestImage{repo: "signed-only", pred: slsa, signOnly: true},
		attestImage{repo: "other-key", pred: slsa, otherKey: true},
	)
}

// attestCheck is what one proxy's policy requires of every image.
type attestCheck struct {
	name string
	// requirement is the attestation the authority lists for an image
	// whose policy requires p ("" condition or maxAge: none); ok is false
	// for a plain signature authority.
	requirement func(p attestPredicate) (predicateType, condition, maxAge string, ok bool)
}

var attestChecks = []attestCheck{
	{name: "type", requirement: func(p attestPredicate) (string, string, string, bool) { return p.want, "", "", true }},
	{name: "other-type", requirement: func(p attestPredicate) (string, string, string, bool) { return p.other, "", "", true }},
	{name: "cel-true", requirement: func(p attestPredicate) (string, string, string, bool) { return p.want, p.holds, "", true }},
	{name: "cel-false", requirement: func(p attestPredicate) (string, string, string, bool) { return p.want, p.fails, "", true }},
	// A key authority has no verified signing time without a timestamp
	// authority or a log, and cosign wrote neither.
	{name: "max-age", requirement: func(p attestPredicate) (string, string, string, bool) { return p.want, "", "720h", true }},
	{name: "signature", requirement: func(attestPredicate) (string, string, string, bool) { return "", "", "", false }},
}

// attestAuthority is the authority every test policy names.
const attestAuthority = "cosign-key"

// want is what ck's proxy answers for im of format af: nil when it serves
// it, else parts of the DENIED message.
func (ck attestCheck) want(im attestImage, af attestFormat) []string {
	pt, cond, _, ok := ck.requirement(im.pred)
	needs := fmt.Sprintf("needs attestation %q (%s) from authority %q: ", im.pred.name, pt, attestAuthority)
	switch {
	case !ok && im.signOnly:
		return nil
	case !ok && af.bundle():
		// A bundle attestation is found with the signatures, and is not one.
		return []string{"no signatures found", "attestations are not signatures"}
	case !ok:
		// The .att tag is not read without attestation requirements.
		return []string{"no signatures found"}
	case im.signOnly || ck.name == "other-type":
		return []string{needs + "none found"}
	case im.otherKey:
		return []string{needs + "found 1, none verified"}
	case im.pred.undecodable:
		return []string{needs + "found 1, none verified", "decoding json"}
	case ck.name == "cel-false":
		return []string{needs + "found 1, condition false: " + cond}
	case ck.name == "max-age":
		return []string{needs + "found 1, no verified signing time"}
	}
	return nil
}

// attestPolicy is the policy of ck's proxy: for each image repository (of
// every format), a policy requiring what ck requires of it, from the key in
// cosign.pub.
func attestPolicy(ck attestCheck, images []attestImage) string {
	var b strings.Builder
	b.WriteString("policies:\n")
	for _, im := range images {
		fmt.Fprintf(&b, "  - name: %s\n    images: [\"registry.example/attest/*/%s\"]\n    authorities:\n      - name: %s\n        key: {path: cosign.pub}\n",
			im.repo, im.repo, attestAuthority)
		pt, cond, maxAge, ok := ck.requirement(im.pred)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "        attestations:\n          - name: %s\n            predicateType: %s\n", im.pred.name, yamlString(pt))
		if cond != "" {
			fmt.Fprintf(&b, "            condition: %s\n", yamlString(cond))
		}
		if maxAge != "" {
			fmt.Fprintf(&b, "            maxAge: %s\n", maxAge)
		}
	}
	b.WriteString("default: deny\n")
	return b.String()
}

// yamlString quotes s for YAML (a JSON string is a YAML double-quoted
// scalar).
func yamlString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// startAttestProxy starts a proxy in front of e's upstreams with policy,
// trusting the public key at pub, for the rest of the test.
func startAttestProxy(t *testing.T, e *env, pub, policy string) *proxyProc {
	t.Helper()
	pem, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cosign.pub"), string(pem))
	writeFile(t, filepath.Join(dir, "policy.yaml"), policy)
	return e.startProxyIn(t, dir, gatedConfig)
}

func TestAttestCosign(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	start := time.Now()
	// One key pair for all versions (cosign v2 reads v3's keys), so that
	// the proxies serve every format.
	keygen := needCosign(t, "cosign", "v3.1.3")
	trusted := keygen.generateKeyPair(t, "trusted")
	other := keygen.generateKeyPair(t, "other")
	images := attestImages()
	proxies := make([]*proxyProc, len(attestChecks))
	for i, ck := range attestChecks {
		proxies[i] = startAttestProxy(t, e, trusted.pub, attestPolicy(ck, images))
	}
	upstream := e.upstreams["registry.example"].addr
	t.Logf("%d proxies started in %v", len(proxies), time.Since(start).Round(time.Millisecond))

	for _, af := range attestFormats() {
		t.Run(af.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			cli := af.cli(t, needCosign(t, af.v.tool, af.v.version))
			digests := make([]v1.Hash, len(images))
			unattested := make([]bool, len(images)) // cosign refused to attest it
			// Attest (or sign) every image; t.Run returns when all are done.
			t.Run("attest", func(t *testing.T) {
				for i, im := range images {
					t.Run(im.repo, func(t *testing.T) {
						t.Parallel()
						repo := "attest/" + af.name + "/" + im.repo
						digests[i] = cosignImage(t, upstream, "registry.example/"+repo, "v1")
						ref := upstream + "/" + repo + "@" + digests[i].String()
						switch {
						case im.pred.undecodable && af.signingConfig:
							r := cli.c.exec(t, "", af.f.env, cli.attestArgs(t, trusted, im.pred, ref)...)
							if r.err == nil || !strings.Contains(r.stderr, "decoding json") {
								t.Fatalf("cosign attest of a predicate that is not an object: %v, want a refusal to decode the statement\n%s", r.err, r.stderr)
							}
							t.Logf("cosign refuses to attest (nothing to check): %s", strings.TrimSpace(r.stderr))
							unattested[i] = true
							return
						case im.signOnly:
							cli.sign(t, trusted, ref)
						case im.otherKey:
							cli.attest(t, other, im.pred, ref)
						default:
							cli.attest(t, trusted, im.pred, ref)
						}
						if !im.signOnly {
							attestStored(t, upstream, repo, digests[i], af.bundle(), 1)
						}
					})
				}
			})
			if t.Failed() {
				return
			}
			attested := time.Since(start)

			// Every image through every proxy, then the decisions (the
			// proxies flush their logs every second).
			responses := make([][]httpResult, len(attestChecks))
			for i := range attestChecks {
				for _, im := range images {
					ref := "registry.example/attest/" + af.name + "/" + im.repo + ":v1"
					responses[i] = append(responses[i], registryGet(t, http.MethodGet, proxies[i].addr, manifestPath(ref, "")))
				}
			}
			for i, ck := range attestChecks {
				for j, im := range images {
					if unattested[j] {
						continue
					}
					image := "registry.example/attest/" + af.name + "/" + im.repo
					checkAttested(t, proxies[i], image, digests[j], responses[i][j], ck.name, ck.want(im, af))
				}
			}

			// portcullis verify decides the same way, reading the
			// attestations itself.
			base := "registry.example/attest/" + af.name + "/"
			code, res := cosignPortcullisVerify(t, e, proxies[0].configPath, base+images[0].repo+":v1", base+"signed-only:v1")
			if code != 1 || len(res) != 2 || res[0].Decision != "allow" || res[0].Digest != digests[0].String() || res[1].Decision != "deny" {
				t.Errorf("portcullis verify of the %s and signed-only images under check type: exit %d, %+v; want exit 1, allow and deny", images[0].repo, code, res)
			}

			// A served image whole (manifest, config and layers, checked by
			// digest), and its attestation, which cosign verifies through
			// the proxy.
			image := proxies[0].addr + "/registry.example/attest/" + af.name + "/" + images[0].repo
			cosignPull(t, image+":v1")
			cli.verifyAttestation(t, trusted, images[0].pred, image+"@"+digests[0].String())
			t.Logf("%s: attested in %v, checked in %v", af.name, attested.Round(time.Millisecond), (time.Since(start) - attested).Round(time.Millisecond))
		})
	}
}

// attestStored checks that cosign stored want attestations of repo@d (on
// the upstream at addr) where the format keeps them: in the sha256-<hex>
// fallback index of bundle referrers, or as layers of the sha256-<hex>.att
// tag. It logs them, with the predicate types cosign's annotations claim.
func attestStored(t *testing.T, addr, repo string, d v1.Hash, bundle bool, want int) {
	t.Helper()
	tag := "sha256-" + d.Hex
	if !bundle {
		tag += ".att"
	}
	ref, err := name.ParseReference(addr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	opt := remote.WithContext(t.Context())
	var stored []string
	if !bundle {
		img, err := remote.Image(ref, opt)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		for _, l := range m.Layers {
			stored = append(stored, fmt.Sprintf("layer %s, predicateType annotation %s", l.MediaType, l.Annotations["predicateType"]))
		}
	} else {
		idx, err := remote.Index(ref, opt)
		if err != nil {
			t.Fatalf("%s (the referrers fallback index): %v", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		for _, desc := range im.Manifests {
			var rm v1.Manifest
			m, err := remote.Get(ref.Context().Digest(desc.Digest.String()), opt)
			if err == nil {
				err = json.Unmarshal(m.Manifest, &rm)
			}
			if err != nil {
				t.Fatalf("referrer %s: %v", desc.Digest, err)
			}
			stored = append(stored, fmt.Sprintf("referrer %s (index entry artifactType %s): artifactType %s, predicateType annotation %s",
				desc.Digest, desc.ArtifactType, rm.ArtifactType, rm.Annotations["dev.sigstore.bundle.predicateType"]))
		}
	}
	t.Logf("cosign stored under %s:\n%s", ref, cosignIndent(strings.Join(stored, "\n")))
	if len(stored) != want {
		t.Errorf("%s holds %d attestations, want %d", ref, len(stored), want)
	}
}

// checkAttested checks r, proxy p's answer (under check) to GET image:v1 of
// digest d: it must serve it (deny nil) or refuse it with a DENIED message
// containing each of deny, and log that decision.
func checkAttested(t *testing.T, p *proxyProc, image string, d v1.Hash, r httpResult, check string, deny []string) {
	t.Helper()
	what := "GET " + image + ":v1 under check " + check
	l := p.waitAudit(t, image, d.String())
	if deny != nil {
		msg := wantDenied(t, what, r, deny...)
		if l.Result != "deny" {
			t.Errorf("%s: decision %+v, want deny", what, l)
		}
		t.Logf("%s: refused: %s", what, msg)
		return
	}
	if r.status != http.StatusOK {
		t.Errorf("%s: %d, want 200\n%s", what, r.status, r.body)
	} else if got := r.header.Get("Docker-Content-Digest"); got != d.String() || sha256Digest(r.body) != d.String() {
		t.Errorf("%s: Docker-Content-Digest %s, body hashes to %s; want %s", what, got, sha256Digest(r.body), d)
	}
	if l.Result != "allow" || (check != "signature" && !strings.Contains(l.Identity, "attestation")) {
		t.Errorf("%s: decision %+v, want allow on an attestation", what, l)
	}
	t.Logf("%s: served (%s)", what, l.Identity)
}

// attestPullPolicy requires of the images under attest/pull/ provenance from
// the expected builder, and of those under attest/pull-sbom/ provenance and
// an SBOM listing busybox, all signed by the key in cosign.pub.
const attestPullPolicy = `policies:
  - name: provenance-required
    images: ["registry.example/attest/pull/**"]
    authorities:
      - name: build-key
        key: {path: cosign.pub}
        attestations:
          - name: provenance
            predicateType: slsaprovenance
            condition: 'predicate.builder.id == "https://example.com/builder@v1"'
  - name: provenance-and-sbom
    images: ["registry.example/attest/pull-sbom/**"]
    authorities:
      - name: build-key
        key: {path: cosign.pub}
        attestations:
          - name: provenance
            predicateType: slsaprovenance
          - name: sbom
            predicateType: spdx
            condition: 'predicate.packages.exists(p, p.name == "busybox")'
default: deny
`
