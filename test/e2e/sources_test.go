//go:build e2e

package e2e

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// sourcesPolicy reads the signatures of srcs/app, srcs/other and
// srcs/unsourced from srcs/signatures (cosign's COSIGN_REPOSITORY) only,
// never from the image's own repository.
const sourcesPolicy = `policies:
  - name: sourced
    images: ["registry.example/srcs/app", "registry.example/srcs/other", "registry.example/srcs/unsourced"]
    authorities:
      - name: release
        key: {path: cosign.pub}
        signaturesFrom: registry.example/srcs/signatures
default: deny
`

// TestSignaturesFrom: with the real cosign v2 CLI signing into another
// repository (COSIGN_REPOSITORY, the legacy .sig format; v3 ignores it for
// bundles), an image whose policy names that repository as signaturesFrom
// is allowed on the signature found there, and `cosign verify` with
// COSIGN_REPOSITORY pointed at the proxy verifies it through the proxy. An
// attacker's tries are refused: a signature by another key in the source,
// a signature by the trusted key in the image's own repository (the policy
// reads the source only, so neither the image nor that signature is
// served, and cosign verify through the proxy fails where it succeeds
// against the upstream), and the source's material about a refused image,
// asked for directly. A payload in the source naming the image as clients
// pull it (--sign-container-identity) is rebuilt, not read.
func TestSignaturesFrom(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	c := needCosign(t, "cosign-v2", "v2.6.5")
	trusted := c.generateKeyPair(t, "trusted")
	other := c.generateKeyPair(t, "other")
	upstream := e.upstreams["registry.example"].addr
	p := startAttestProxy(t, e, trusted.pub, sourcesPolicy)
	flags := []string{"--tlog-upload=false", "--allow-http-registry", "-y"}
	sign := func(key cosignKey, repo string, d v1.Hash, into string) {
		t.Helper()
		var env []string
		if into != "" {
			env = []string{"COSIGN_REPOSITORY=" + upstream + "/" + into}
		}
		c.run(t, "", env, append(append([]string{"sign", "--key", key.priv}, flags...), upstream+"/"+repo+"@"+d.String())...)
	}
	app := cosignImage(t, upstream, "registry.example/srcs/app", "v1")
	sign(trusted, "srcs/app", app, "srcs/signatures")
	bad := cosignImage(t, upstream, "registry.example/srcs/other", "v1")
	sign(other, "srcs/other", bad, "srcs/signatures")
	unsourced := cosignImage(t, upstream, "registry.example/srcs/unsourced", "v1")
	sign(trusted, "srcs/unsourced", unsourced, "")

	blobs := func() float64 {
		return metricSum(p.adminAddr, "portcullis_upstream_requests_total", `route="blob"`)
	}
	before := blobs()
	if r := cosignGetManifest(t, p.addr, "registry.example/srcs/app", "v1"); r.status != 200 {
		t.Errorf("srcs/app signed into srcs/signatures: %d, want 200\n%s", r.status, r.body)
	}
	if n := blobs() - before; n == 0 {
		t.Errorf("srcs/app:v1's payload names the upstream's address, not the image as clients pull it: it must be read, but no blob was read upstream")
	}
	// Signed into the source under the name clients pull it by (cosign's
	// --sign-container-identity), the payload is rebuilt, not read.
	named := cosignImage(t, upstream, "registry.example/srcs/app", "v2")
	c.run(t, "", []string{"COSIGN_REPOSITORY=" + upstream + "/srcs/signatures"},
		append(append([]string{"sign", "--key", trusted.priv, "--sign-container-identity", "registry.example/srcs/app"}, flags...), upstream+"/srcs/app@"+named.String())...)
	before = blobs()
	if r := cosignGetManifest(t, p.addr, "registry.example/srcs/app", "v2"); r.status != 200 {
		t.Errorf("srcs/app:v2 signed into srcs/signatures as clients name it: %d, want 200\n%s", r.status, r.body)
	}
	if n := blobs() - before; n != 0 {
		t.Errorf("srcs/app:v2: %.0f blobs read upstream; its payload names the image as clients pull it, so none should be", n)
	}
	if msg := cosignDenied(t, "srcs/other signed into the source by another key", cosignGetManifest(t, p.addr, "registry.example/srcs/other", "v1")); msg != "" && !strings.Contains(msg, "sourced") {
		t.Errorf("the refusal of srcs/other does not name its policy: %s", msg)
	}
	cosignDenied(t, "srcs/unsourced signed in its own repository only", cosignGetManifest(t, p.addr, "registry.example/srcs/unsourced", "v1"))

	// cosign verify through the proxy, reading the signature through the
	// proxy too.
	proxied := []string{"COSIGN_REPOSITORY=" + p.addr + "/registry.example/srcs/signatures"}
	root := c.emptyTrustedRoot(t)
	c.run(t, "", proxied, "verify", "--key", trusted.pub, "--insecure-ignore-tlog=true", "--allow-http-registry", "--trusted-root", root,
		p.addr+"/registry.example/srcs/app@"+app.String())
	// srcs/unsourced's own signature verifies against the upstream
	// directly, but not through the proxy, which refuses the image and so
	// serves none of its material.
	own := []string{"verify", "--key", trusted.pub, "--insecure-ignore-tlog=true", "--allow-http-registry", "--trusted-root", root}
	c.run(t, "", nil, append(own, upstream+"/srcs/unsourced@"+unsourced.String())...)
	if r := c.exec(t, "", nil, append(own, p.addr+"/registry.example/srcs/unsourced@"+unsourced.String())...); r.err == nil {
		t.Errorf("cosign verify of the refused srcs/unsourced through the proxy succeeded:\n%s", r.stderr)
	}

	// The source's material, asked for directly: served about the allowed
	// image, refused about the refused one.
	tag := func(d v1.Hash) string { return "sha256-" + d.Hex + ".sig" }
	if r := cosignGetManifest(t, p.addr, "registry.example/srcs/signatures", tag(app)); r.status != 200 {
		t.Errorf("the source's .sig of the allowed image: %d, want 200\n%s", r.status, r.body)
	}
	cosignDenied(t, "the source's .sig of the refused image", cosignGetManifest(t, p.addr, "registry.example/srcs/signatures", tag(bad)))
}
