//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dockerd is not among the test clients (no daemon in CI); this test checks
// that deploy/daemon.json is valid and that the proxy answers the requests
// dockerd's classic image store sends to a registry mirror: plain Docker Hub
// paths with no registry segment and no ns parameter.

// dockerAccept is what dockerd's classic puller sends for a manifest.
var dockerAccept = []string{
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
}

func TestDockerdMirrorRequests(t *testing.T) {
	e := setup(t)
	s := render(t, "daemon.json", filepath.Join(t.TempDir(), "daemon.json"),
		"https://"+placeholderHost, "http://"+e.addr)
	var cfg struct {
		Mirrors []string `json:"registry-mirrors"`
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields() // dockerd refuses unknown keys too
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("daemon.json: %v\n%s", err, s)
	}
	if len(cfg.Mirrors) != 1 {
		t.Fatalf("daemon.json: registry-mirrors = %v, want one mirror", cfg.Mirrors)
	}
	mirror, err := url.Parse(cfg.Mirrors[0])
	if err != nil || mirror.Path != "" {
		t.Fatalf("daemon.json: mirror %q must be a bare origin (dockerd ignores paths): %v", cfg.Mirrors[0], err)
	}

	want := e.fixture(t, hubImage)
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string, accept []string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, mirror.String()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range accept {
			req.Header.Add("Accept", a)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	if resp, _ := get("/v2/", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/: %s", resp.Status)
	}
	resp, body := get("/v2/"+hubRepoPath+"/manifests/latest", dockerAccept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/%s/manifests/latest: %s\n%s", hubRepoPath, resp.Status, body)
	}
	if got := sha256Digest(body); got != want.digest.String() {
		t.Errorf("manifest body hashes to %s, want %s", got, want.digest)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != want.digest.String() {
		t.Errorf("Docker-Content-Digest = %q, want %s", got, want.digest)
	}
	if got := resp.Header.Get("Content-Type"); got != string(want.mediaType) {
		t.Errorf("Content-Type = %q, want %s", got, want.mediaType)
	}
	for _, l := range want.layers {
		resp, body := get("/v2/"+hubRepoPath+"/blobs/"+l.String(), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET blob %s: %s", l, resp.Status)
		}
		if got := sha256Digest(body); got != l.String() {
			t.Errorf("blob %s has digest %s", l, got)
		}
	}
}
