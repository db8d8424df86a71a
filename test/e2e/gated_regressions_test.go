//go:build e2e

package e2e

import (
	"net/http"
	"path/filepath"
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
