//go:build e2e

package e2e

import (
	"encoding/base64"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Regression tests for two gate bugs these e2e tests found: a child refused
// before its index stayed refused, and a policy reload broke pulls in flight.

// A child manifest fetched by digest before its (signed) index is denied,
// rightly: it is unsigned and no allowed index lists it yet. Once the index
// is allowed, the child must be served: a cached denial (denyTTL) must not
// outlive the grant its parent now gives it.
func TestGatedRegressionChildDeniedBeforeParent(t *testing.T) {
	e := setup(t)
	p := e.startGatedProxy(t)
	idx := e.gatedFixture(t, signedIndexImage)
	child := manifestPath(signedIndexImage, idx.children[hostPlatform].String())

	wantDenied(t, "GET the child before its index", registryGet(t, http.MethodGet, p.addr, child), unsignedReason)
	if r := registryGet(t, http.MethodGet, p.addr, manifestPath(signedIndexImage, "")); r.status != http.StatusOK {
		t.Fatalf("GET the signed index: %d\n%s", r.status, r.body)
	}
	if r := registryGet(t, http.MethodGet, p.addr, child); r.status != http.StatusOK {
		t.Errorf("GET the child after its index was allowed: %d, want 200 (allowed by the parent)\n%s", r.status, r.body)
	}
}

// Every reload makes a new policy revision, even for an edit that changes
// nothing (a comment). A pull in flight across it must go on: the blobs and
// index children its manifest was granted under the old revision stay
// servable once that manifest is allowed again under the new one.
func TestGatedRegressionReloadBreaksPullsInFlight(t *testing.T) {
	e := setup(t)
	p := e.startGatedProxy(t)
	img := e.gatedFixture(t, legacySignedImage)
	idx := e.gatedFixture(t, signedIndexImage)
	for _, ref := range []string{legacySignedImage, signedIndexImage} {
		if r := registryGet(t, http.MethodGet, p.addr, manifestPath(ref, "")); r.status != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", ref, r.status, r.body)
		}
	}
	if r := registryGet(t, http.MethodGet, p.addr, blobPath(legacySignedImage, img.layers[0])); r.status != http.StatusOK {
		t.Fatalf("GET the first layer before the reload: %d\n%s", r.status, r.body)
	}

	writeAtomic(t, filepath.Join(p.dir, "policy.yaml"), gatedPolicy+"# an edit that changes no decision\n")
	deadline := time.Now().Add(10 * time.Second)
	for !p.logContains(`"msg":"policy reloaded"`) {
		if time.Now().After(deadline) {
			t.Fatal("no policy reload within 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	if r := registryGet(t, http.MethodGet, p.addr, blobPath(legacySignedImage, img.layers[1])); r.status != http.StatusOK {
		t.Errorf("GET the second layer of the allowed %s after an unrelated reload: %d, want 200\n%s", legacySignedImage, r.status, r.body)
	}
	if r := registryGet(t, http.MethodGet, p.addr, manifestPath(signedIndexImage, idx.children[hostPlatform].String())); r.status != http.StatusOK {
		t.Errorf("GET a child of the allowed %s after an unrelated reload: %d, want 200\n%s", signedIndexImage, r.status, r.body)
	}
}

// TestGatedBogusSig (a short name: podman limits its runroot path): gate-integrity
// defect 1, as an attacker who can push would do it with the
// real cosign CLI: the refused image's own manifest attached as the payload
// of a junk legacy signature (`cosign attach signature`). Fetching the .sig
// through the proxy used to grant the image's digest, after which crane and
// podman pulled the refused image. Now the .sig of a refused image is
// refused, and the image stays refused by digest, by tag and to both clients.
func TestGatedBogusSig(t *testing.T) {
	e := setup(t)
	c := needCosign(t, cosignVersions[0].tool, cosignVersions[0].version)
	crane := needTool(t, "crane")
	podman := needTool(t, "podman")
	p := e.startGatedProxy(t)
	up := e.upstreams["registry.example"].addr
	const image = "registry.example/acme/decoy"
	d := cosignImage(t, up, image, "v1")

	dir := t.TempDir()
	payload := filepath.Join(dir, "m.json")
	writeFile(t, payload, run(t, nil, crane, "manifest", "--insecure", up+"/acme/decoy@"+d.String()))
	sig := filepath.Join(dir, "sig.b64")
	writeFile(t, sig, base64.StdEncoding.EncodeToString([]byte("junk, not a signature")))
	c.run(t, dir, nil, "attach", "signature", "--allow-http-registry", "--payload", payload, "--signature", sig, up+"/acme/decoy@"+d.String())

	sigTag := "sha256-" + d.Hex + ".sig"
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		if r := registryGet(t, method, p.addr, manifestPath(image+":v1", sigTag)); r.status != http.StatusForbidden {
			t.Errorf("%s the bogus .sig of the refused image through the proxy: %d, want 403\n%s", method, r.status, r.body)
		}
	}
	wantDenied(t, "GET the refused image by digest after its bogus .sig", registryGet(t, http.MethodGet, p.addr, manifestPath(image+":v1", d.String())))
	wantDenied(t, "GET the refused image by tag after its bogus .sig", registryGet(t, http.MethodGet, p.addr, manifestPath(image+":v1", "v1")))
	if r := fails(t, nil, crane, "pull", "--insecure", "--format=oci", p.addr+"/"+image+":v1", filepath.Join(dir, "layout")); !strings.Contains(r.stderr+r.stdout, "DENIED") {
		t.Errorf("crane pull of the refused image: want a DENIED failure, got:\n%s%s", r.stdout, r.stderr)
	}
	env, global, pull := podmanSetup(t, p.addr)
	args := append(append(append(slices.Clone(global), "pull", "--quiet"), pull...), image+":v1")
	if r := fails(t, env, podman, args...); !strings.Contains(r.stderr+r.stdout, "403") && !strings.Contains(r.stderr+r.stdout, "denied") {
		t.Errorf("podman pull of the refused image: want a refusal, got:\n%s%s", r.stdout, r.stderr)
	}
}
