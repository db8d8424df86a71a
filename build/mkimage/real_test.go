package main

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// debianCAs is where Debian's ca-certificates package keeps its
// certificates (`make deps` machines have it).
const debianCAs = "/usr/share/ca-certificates/mozilla"

// TestRealImage builds the portcullis binary as `make image` does, the
// image twice from it (same digest), reads it back, and runs the binary
// taken out of the image.
func TestRealImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the portcullis binary")
	}
	if _, err := os.Stat(debianCAs); err != nil || runtime.GOOS != "linux" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Debian ca-certificates on linux here (%v): CI machines have them", err)
		}
		t.Skipf("needs Debian's ca-certificates on linux (%v)", err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "portcullis")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=true", "-ldflags=-s -w", "-o", bin, "./cmd/portcullis")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOAMD64=v1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var digests []v1.Hash
	var img v1.Image
	for _, out := range []string{"a", "b"} {
		o := testOptions(t, bin, debianCAs)
		o.Out, o.Revision, o.Version, o.Created = filepath.Join(tmp, out), "", "", -1 // the binary's
		r, err := run(o)
		if err != nil {
			t.Fatal(err)
		}
		img, _ = readLayout(t, o.Out)
		if d, _ := img.Digest(); d != r.Digest {
			t.Fatalf("the layout holds %s, run said %s", d, r.Digest)
		}
		digests = append(digests, r.Digest)
		t.Logf("image %s: %d bytes (config and compressed layers)", r.Digest, r.Size)
		if r.Size >= 40_000_000 {
			t.Errorf("image is %d bytes, want under 40 MB", r.Size)
		}
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same binary: %s and %s", digests[0], digests[1])
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/usr/local/bin/portcullis"}) ||
		cf.Architecture != runtime.GOARCH || cf.OS != "linux" || cf.Config.Labels["dev.portcullis.go"] != runtime.Version() {
		t.Errorf("User %q, Entrypoint %q, platform %s/%s, labels %v", cf.Config.User, cf.Config.Entrypoint, cf.OS, cf.Architecture, cf.Config.Labels)
	}
	files := entries(t, img)
	if !x509.NewCertPool().AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"].body) {
		t.Error("no CA certificates at /etc/ssl/certs/ca-certificates.crt")
	}
	extracted := filepath.Join(tmp, "extracted-portcullis")
	if err := os.WriteFile(extracted, files["usr/local/bin/portcullis"].body, 0o755); err != nil {
		t.Fatal(err)
	}
	version, err := exec.Command(extracted, "version").Output()
	if err != nil || !strings.HasPrefix(string(version), "portcullis v") || !strings.Contains(string(version), "linux/"+runtime.GOARCH) {
		t.Errorf("portcullis version printed %q (%v)", version, err)
	}
}
