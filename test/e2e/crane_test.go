//go:build e2e

package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// crane talks to the proxy with the registry as a path prefix
// (127.0.0.1:PORT/registry.example/acme/app:v1), like containers/image.

// craneRef is the reference crane uses for a fixture: the proxy address,
// then the full client reference as a path.
func (e *env) craneRef(ref string) string { return e.addr + "/" + ref }

// sha256Digest is the digest of b, "sha256:<hex>".
func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestCraneImage(t *testing.T) {
	e := setup(t)
	crane := needTool(t, "crane")
	for _, ref := range []string{appImage, ociImage} {
		t.Run(ref, func(t *testing.T) {
			want := e.fixture(t, ref)
			src := e.craneRef(ref)

			if got := strings.TrimSpace(run(t, nil, crane, "digest", "--insecure", src)); got != want.digest.String() {
				t.Errorf("crane digest = %s, want %s", got, want.digest)
			}
			raw := run(t, nil, crane, "manifest", "--insecure", src)
			if got := sha256Digest([]byte(raw)); got != want.digest.String() {
				t.Errorf("crane manifest bytes hash to %s, want %s (bytes must be served unchanged)", got, want.digest)
			}

			// Full pull into an OCI layout: crane checks every blob's digest.
			layout := filepath.Join(t.TempDir(), "layout")
			run(t, nil, crane, "pull", "--insecure", "--format=oci", src, layout)
			assertLayoutTop(t, layout, want.digest)
			for _, l := range want.layers {
				assertBlob(t, layout, l)
			}

			// Flattened filesystem: the random file of each layer is there.
			tarPath := filepath.Join(t.TempDir(), "fs.tar")
			run(t, nil, crane, "export", "--insecure", src, tarPath)
			if n := countRandomFiles(t, tarPath); n != len(want.layers) {
				t.Errorf("crane export: %d layer files in the filesystem, want %d", n, len(want.layers))
			}
		})
	}
}

func TestCraneIndex(t *testing.T) {
	e := setup(t)
	crane := needTool(t, "crane")
	want := e.fixture(t, multiImage)
	src := e.craneRef(multiImage)

	if got := strings.TrimSpace(run(t, nil, crane, "digest", "--insecure", src)); got != want.digest.String() {
		t.Errorf("crane digest = %s, want index digest %s", got, want.digest)
	}
	raw := run(t, nil, crane, "manifest", "--insecure", src)
	if got := sha256Digest([]byte(raw)); got != want.digest.String() {
		t.Errorf("crane manifest bytes hash to %s, want %s", got, want.digest)
	}
	for _, platform := range []string{armPlatform, hostPlatform} {
		child := want.children[platform]
		got := strings.TrimSpace(run(t, nil, crane, "digest", "--insecure", "--platform", platform, src))
		if got != child.String() {
			t.Errorf("crane digest --platform %s = %s, want %s", platform, got, child)
		}
	}

	// Without --platform, crane pull --format=oci writes the whole index.
	layout := filepath.Join(t.TempDir(), "layout")
	run(t, nil, crane, "pull", "--insecure", "--format=oci", src, layout)
	assertLayoutTop(t, layout, want.digest)
	for platform, d := range want.children {
		t.Logf("child %s %s", platform, d)
		assertBlob(t, layout, d)
	}
}

// TestCraneDockerHub pulls the Docker Hub fixture in the three spellings the
// proxy must accept: a docker.io path prefix, the same with library/ left
// implied, and no prefix at all (the default registry, as dockerd asks).
func TestCraneDockerHub(t *testing.T) {
	e := setup(t)
	crane := needTool(t, "crane")
	want := e.fixture(t, hubImage)
	refs := []string{
		e.addr + "/docker.io/library/busybox:latest",
		e.addr + "/library/busybox:latest",
	}
	if !e.direct {
		refs = append(refs, e.addr+"/docker.io/busybox:latest")
	}
	for _, src := range refs {
		if got := strings.TrimSpace(run(t, nil, crane, "digest", "--insecure", src)); got != want.digest.String() {
			t.Errorf("crane digest %s = %s, want %s", src, got, want.digest)
		}
	}
	layout := filepath.Join(t.TempDir(), "layout")
	run(t, nil, crane, "pull", "--insecure", "--format=oci", refs[len(refs)-1], layout)
	assertLayoutTop(t, layout, want.digest)
}

// assertLayoutTop checks that an OCI layout's index.json lists exactly one
// manifest, with digest want.
func assertLayoutTop(t *testing.T, layout string, want v1.Hash) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("%s/index.json: %v", layout, err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != want {
		t.Fatalf("%s/index.json lists %+v, want one manifest %s", layout, idx.Manifests, want)
	}
	assertBlob(t, layout, want)
}

// assertBlob checks that an OCI layout holds blob d with matching content.
func assertBlob(t *testing.T, layout string, d v1.Hash) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout, "blobs", d.Algorithm, d.Hex))
	if err != nil {
		t.Errorf("layout %s: blob %s: %v", layout, d, err)
		return
	}
	if got := sha256Digest(b); got != d.String() {
		t.Errorf("layout %s: blob %s has digest %s", layout, d, got)
	}
}

// countRandomFiles counts the files random.Layer writes in a filesystem tar.
func countRandomFiles(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if strings.HasPrefix(filepath.Base(h.Name), "random_file_") {
			n++
		}
	}
}
