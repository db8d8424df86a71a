//go:build e2e

package e2e

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// skopeo (containers/image, as in CRI-O and podman) with the registry as a
// path prefix: docker://127.0.0.1:PORT/registry.example/acme/app:v1.

// skopeoEnv isolates skopeo from the host's containers configuration: an
// empty registries.conf (no host mirrors or rewrites), no registries.d
// lookaside, no credentials, and an accept-anything signature policy.
func skopeoEnv(t *testing.T) (env []string, global []string) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "registries.conf"), "unqualified-search-registries = []\n")
	writeFile(t, filepath.Join(dir, "policy.json"), `{"default":[{"type":"insecureAcceptAnything"}]}`+"\n")
	writeFile(t, filepath.Join(dir, "registries.d", "default.yaml"), "default-docker: {}\n")
	env = []string{
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(dir, "registries.conf"),
		"HOME=" + dir,
	}
	global = []string{
		"--policy", filepath.Join(dir, "policy.json"),
		"--registries.d", filepath.Join(dir, "registries.d"),
	}
	return env, global
}

func TestSkopeoCopy(t *testing.T) {
	e := setup(t)
	skopeo := needTool(t, "skopeo")
	env, global := skopeoEnv(t)
	for _, ref := range []string{appImage, ociImage, hubImage} {
		t.Run(ref, func(t *testing.T) {
			want := e.fixture(t, ref)
			src := "docker://" + e.addr + "/" + ref

			raw := run(t, env, skopeo, append(global, "inspect", "--raw", "--tls-verify=false", "--no-creds", src)...)
			if got := sha256Digest([]byte(raw)); got != want.digest.String() {
				t.Errorf("skopeo inspect --raw bytes hash to %s, want %s", got, want.digest)
			}

			// --preserve-digests: fail rather than convert Docker schema 2
			// to OCI (which would change the digest) when writing oci:.
			layout := filepath.Join(t.TempDir(), "layout")
			run(t, env, skopeo, append(global, "copy", "--preserve-digests", "--src-tls-verify=false", "--src-no-creds",
				src, "oci:"+layout)...)
			assertLayoutTop(t, layout, want.digest)
			for _, l := range want.layers {
				assertBlob(t, layout, l)
			}
		})
	}
}

func TestSkopeoCopyAll(t *testing.T) {
	e := setup(t)
	skopeo := needTool(t, "skopeo")
	env, global := skopeoEnv(t)
	want := e.fixture(t, multiImage)
	src := "docker://" + e.addr + "/" + multiImage

	raw := run(t, env, skopeo, append(global, "inspect", "--raw", "--tls-verify=false", "--no-creds", src)...)
	if got := sha256Digest([]byte(raw)); got != want.digest.String() {
		t.Errorf("skopeo inspect --raw bytes hash to %s, want %s", got, want.digest)
	}

	// skopeo 1.9 re-serializes an index it copies with --all (and refuses
	// --preserve-digests for it), so the copy's index has a digest of its
	// own; the children, OCI manifests needing no conversion, keep theirs.
	layout := filepath.Join(t.TempDir(), "layout")
	run(t, env, skopeo, append(global, "copy", "--all", "--src-tls-verify=false", "--src-no-creds",
		src, "oci:"+layout)...)
	top := readJSON[v1.IndexManifest](t, filepath.Join(layout, "index.json"))
	if len(top.Manifests) != 1 || !top.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("oci layout index.json lists %+v, want one index", top.Manifests)
	}
	d := top.Manifests[0].Digest
	copied := readJSON[v1.IndexManifest](t, filepath.Join(layout, "blobs", d.Algorithm, d.Hex))
	got := map[string]v1.Hash{}
	for _, m := range copied.Manifests {
		if m.Platform != nil {
			got[m.Platform.OS+"/"+m.Platform.Architecture] = m.Digest
		}
	}
	if !maps.Equal(got, want.children) {
		t.Errorf("copied index children = %v, want %v", got, want.children)
	}
	for _, d := range want.children {
		assertBlob(t, layout, d)
	}
}

// readJSON decodes the JSON file at path into a T.
func readJSON[T any](t *testing.T, path string) T {
	t.Helper()
	var v T
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}
