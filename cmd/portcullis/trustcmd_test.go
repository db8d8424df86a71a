package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/verify/tuftrust/tuftest"
)

// TestTrustFetch: `trust fetch` writes the trusted root a TUF repository
// serves, verified from the root given.
func TestTrustFetch(t *testing.T) {
	want := realdata(t, "trusted-root", "trusted_root.json") // fails under CI when missing, skips elsewhere
	repo := tuftest.NewRepo(t)
	repo.SetTarget("trusted_root.json", want)
	dir := t.TempDir()
	rootFile := writeFile(t, dir, "root.json", string(repo.RootJSON()))
	out := filepath.Join(dir, "trusted_root.json")
	if msg, err := execute(newTrustCmd(), "fetch", "--out", out, "--url", repo.URL(), "--root", rootFile); err != nil || !strings.Contains(msg, "wrote "+out) {
		t.Fatalf("trust fetch: %v\n%s", err, msg)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatalf("wrote %d bytes, not the repository's trusted root", len(got))
	}
	other := tuftest.NewRepo(t) // another repository's root does not verify this one
	otherRoot := writeFile(t, dir, "other.json", string(other.RootJSON()))
	if _, err := execute(newTrustCmd(), "fetch", "--out", filepath.Join(dir, "x.json"), "--url", repo.URL(), "--root", otherRoot); exitCode(err) != 1 {
		t.Fatalf("a repository not signed by the given root: exit %d %v", exitCode(err), err)
	}
}

// TestServeWithoutTrustRoot: a policy whose TUF repository cannot be
// reached (no network, no cache) does not stop serve: it starts, /readyz
// says degraded naming the root, and an image that needs it gets 503.
func TestServeWithoutTrustRoot(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	repo := tuftest.NewRepo(t)
	dir := t.TempDir()
	writeFile(t, dir, "root.json", string(repo.RootJSON()))
	policyFile := writeFile(t, dir, "policy.yaml", fmt.Sprintf(`trustRoots:
  - name: mirror
    tuf: {url: "http://%s", rootFile: root.json, cacheDir: cache}
policies:
  - name: ci
    images: ["registry.example/**"]
    authorities:
      - name: gha
        trustRoot: mirror
        keyless:
          identities: [{issuer: https://token.actions.githubusercontent.com, subjectRegExp: "^https://github\\.com/acme/"}]
`, dead))
	up := newTestUpstream(t)
	up.push("acme/app", "v1")
	r := startServe(t, fmt.Sprintf("upstreams: [{registry: registry.example, endpoint: %q, insecure: true}]\npolicyFile: %s\n", up.URL, policyFile))
	resp, err := http.Get("http://" + r.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `degraded: trust root "mirror" not loaded yet`) {
		t.Fatalf("/readyz: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + r.addr + "/v2/registry.example/acme/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `trust root \"mirror\" not loaded yet`) {
		t.Fatalf("an image needing the missing root: %d %s", resp.StatusCode, body)
	}
}
