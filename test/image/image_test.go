// Package image checks the container image `make image` builds: the
// binary built as the Makefile builds it, the image built twice from it
// with build/mkimage, both read back with go-containerregistry, and the
// binary taken out of the image and run.
package image

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// caDir is where Debian's ca-certificates package keeps its certificates.
const caDir = "/usr/share/ca-certificates/mozilla"

func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the portcullis binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary runs on linux only")
	}
	if _, err := os.Stat(caDir); err != nil {
		t.Skipf("no Debian ca-certificates (%v)", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin, mkimage := filepath.Join(tmp, "portcullis"), filepath.Join(tmp, "mkimage")
	// As `make image` builds it, for this machine's architecture so that
	// the test can run it.
	run(t, root, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + runtime.GOARCH, "GOAMD64=v1"},
		"go", "build", "-trimpath", "-buildvcs=true", "-ldflags=-s -w", "-o", bin, "./cmd/portcullis")
	run(t, root, nil, "go", "build", "-o", mkimage, "./build/mkimage")

	var digests []v1.Hash
	var img v1.Image
	for _, out := range []string{"a/image", "b/image"} {
		out = filepath.Join(tmp, out)
		// The revision, version and created time: the binary's.
		stdout := run(t, root, nil, mkimage, "-binary", bin, "-out", out, "-ca", caDir, "-ca-version", "test")
		t.Logf("%s", stdout)
		img = readLayout(t, out)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout, d.String()) {
			t.Errorf("mkimage printed %q, not the digest %s", stdout, d)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same binary: %s and %s", digests[0], digests[1])
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/usr/local/bin/portcullis"}) ||
		cf.Architecture != runtime.GOARCH || cf.OS != "linux" {
		t.Errorf("User %q, Entrypoint %q, platform %s/%s", cf.Config.User, cf.Config.Entrypoint, cf.OS, cf.Architecture)
	}
	if cf.Config.Labels["dev.portcullis.go"] != runtime.Version() {
		t.Errorf("labels %v: want dev.portcullis.go %s", cf.Config.Labels, runtime.Version())
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	size := m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	t.Logf("image %s: %d bytes (config and compressed layers)", digests[0], size)
	if size >= 40_000_000 {
		t.Errorf("image is %d bytes, want under 40 MB", size)
	}

	files := layerFiles(t, img)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"]) {
		t.Error("no CA certificates at /etc/ssl/certs/ca-certificates.crt")
	}
	extracted := filepath.Join(tmp, "extracted-portcullis")
	if err := os.WriteFile(extracted, files["usr/local/bin/portcullis"], 0o755); err != nil {
		t.Fatal(err)
	}
	version := run(t, tmp, nil, extracted, "version")
	if !strings.HasPrefix(version, "portcullis v") || !strings.Contains(version, "linux/"+runtime.GOARCH) {
		t.Errorf("portcullis version printed %q", version)
	}
}

// run runs name with args in dir, with env added, and returns its stdout.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func readLayout(t *testing.T, dir string) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("%s: %d manifests, want 1", dir, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// layerFiles is the contents of the regular files in img's layers.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				if files[h.Name], err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
		}
		rc.Close()
	}
	return files
}
