package main

import (
	"archive/tar"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/elf"
	"encoding/binary"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// fakeELF writes a minimal ELF64 executable header for machine (with a
// PT_INTERP program header when dynamic) followed by some bytes.
func fakeELF(t *testing.T, machine elf.Machine, dynamic bool) string {
	t.Helper()
	h := elf.Header64{
		Ident:     [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Ehsize:    64,
		Phentsize: 56,
	}
	if dynamic {
		h.Phoff, h.Phnum = 64, 1
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, h)
	if dynamic {
		binary.Write(&buf, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_INTERP), Off: 120, Filesz: 1})
	}
	buf.WriteString("\x00not really portcullis\n")
	path := filepath.Join(t.TempDir(), "portcullis")
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeCAs writes a directory of two self-signed certificates, the second
// without a trailing newline, and returns it and the bundle expected.
func fakeCAs(t *testing.T) (dir string, bundle []byte) {
	t.Helper()
	dir = t.TempDir()
	for i, name := range []string{"B_Root.crt", "A_Root.crt"} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0), IsCA: true, BasicConstraintsValid: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		bundle = append(b, bundle...) // A_Root.crt comes first
		if i == 1 {
			b = bytes.TrimSuffix(b, []byte("\n"))
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, bundle
}

func testOptions(t *testing.T, bin, ca string) options {
	return options{Binary: bin, Out: filepath.Join(t.TempDir(), "image"), CA: ca, CAVersion: "20250419~deb12u2",
		Source: "https://example.test/portcullis", Revision: "0123456789abcdef0123456789abcdef01234567",
		Version: "v1.2.3", Created: 1796221812, MaxSize: 40_000_000}
}

// readLayout returns the only image of the layout at dir.
func readLayout(t *testing.T, dir string) (v1.Image, v1.Descriptor) {
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
		t.Fatalf("index.json has %d manifests, want 1", len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, m.Manifests[0]
}

type entry struct {
	hdr  *tar.Header
	body []byte
}

// entries reads every layer's tar, in order, checking each is sorted.
func entries(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]entry{}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr, prev := tar.NewReader(rc), ""
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name <= prev {
				t.Errorf("layer %d: %q after %q: not sorted", i, h.Name, prev)
			}
			prev = h.Name
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			all[h.Name] = entry{h, body}
		}
		rc.Close()
	}
	return all
}

func TestBuildIsReproducible(t *testing.T) {
	bin := fakeELF(t, elf.EM_X86_64, false)
	caDir, bundle := fakeCAs(t)
	o1, o2 := testOptions(t, bin, caDir), testOptions(t, bin, caDir)
	r1, err := run(o1)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := run(o2)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Digest != r2.Digest {
		t.Fatalf("two builds: %s and %s", r1.Digest, r2.Digest)
	}
	if r1.Certificates != 2 || r1.Platform.String() != "linux/amd64" {
		t.Errorf("result %+v: want 2 certificates, linux/amd64", r1)
	}
	img, desc := readLayout(t, o1.Out)
	if d, _ := img.Digest(); d != r1.Digest || desc.Platform == nil || desc.Platform.String() != "linux/amd64" {
		t.Errorf("layout holds %s for %v, run reported %s", d, desc.Platform, r1.Digest)
	}
	for _, name := range []string{"index.json", "oci-layout"} {
		a, _ := os.ReadFile(filepath.Join(o1.Out, name))
		b, _ := os.ReadFile(filepath.Join(o2.Out, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the layouts (or is empty)", name)
		}
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("User %q", c.User)
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{"/usr/local/bin/portcullis"}) ||
		!reflect.DeepEqual(c.Cmd, []string{"serve", "--config", "/etc/portcullis/config.yaml"}) {
		t.Errorf("Entrypoint %q, Cmd %q", c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["5050/tcp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("ExposedPorts %v", c.ExposedPorts)
	}
	created := time.Unix(o1.Created, 0).UTC()
	if !cf.Created.Time.Equal(created) || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("created %v, platform %s/%s", cf.Created, cf.OS, cf.Architecture)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.source":   o1.Source,
		"org.opencontainers.image.revision": o1.Revision,
		"org.opencontainers.image.version":  "v1.2.3",
		"org.opencontainers.image.created":  "2026-12-02T14:30:12Z",
		"dev.portcullis.ca-certificates":    "20250419~deb12u2",
	} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	m, _ := img.Manifest()
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Annotations["org.opencontainers.image.revision"] != o1.Revision {
		t.Errorf("manifest %s, annotations %v", m.MediaType, m.Annotations)
	}

	files := entries(t, img)
	binBody, _ := os.ReadFile(bin)
	for name, want := range map[string]struct {
		mode int64
		uid  int
		body []byte
	}{
		"etc/ssl/certs/ca-certificates.crt": {0o644, 0, bundle},
		"usr/local/bin/portcullis":          {0o755, 0, binBody},
		"etc/passwd":                        {0o644, 0, []byte(passwd)},
		"etc/group":                         {0o644, 0, []byte(group)},
		"tmp/":                              {0o1777, 0, nil},
		"var/lib/portcullis/":               {0o700, nonroot, nil},
	} {
		e, ok := files[name]
		if !ok {
			t.Errorf("%s is not in the image", name)
			continue
		}
		if e.hdr.Mode != want.mode || e.hdr.Uid != want.uid || e.hdr.Gid != want.uid || !bytes.Equal(e.body, want.body) {
			t.Errorf("%s: mode %o uid %d gid %d, %d bytes; want mode %o uid=gid=%d, %d bytes",
				name, e.hdr.Mode, e.hdr.Uid, e.hdr.Gid, len(e.body), want.mode, want.uid, len(want.body))
		}
	}
	for name, e := range files {
		if !e.hdr.ModTime.Equal(created) || e.hdr.Uname != "" || e.hdr.Gname != "" {
			t.Errorf("%s: mtime %v, owner %q:%q", name, e.hdr.ModTime, e.hdr.Uname, e.hdr.Gname)
		}
	}
	if !strings.Contains(passwd, "nonroot:x:65532:65532:") || !strings.Contains(group, "nonroot:x:65532:") {
		t.Error("no nonroot user or group")
	}

	// Another created time is another image.
	o3 := testOptions(t, bin, caDir)
	o3.Created++
	if r3, err := run(o3); err != nil || r3.Digest == r1.Digest {
		t.Errorf("created+1: %v, digest %v", err, r1.Digest)
	}
}

func TestSizeBound(t *testing.T) {
	bin := fakeELF(t, elf.EM_AARCH64, false)
	caDir, _ := fakeCAs(t)
	o := testOptions(t, bin, caDir)
	r, err := run(o)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := readLayout(t, o.Out)
	m, _ := img.Manifest()
	want := m.Config.Size + m.Layers[0].Size + m.Layers[1].Size
	if len(m.Layers) != 2 || r.Size != want || r.ConfigSize != m.Config.Size || r.Platform.Architecture != "arm64" {
		t.Fatalf("size %d (config %d), want %d (config %d + layers); %s", r.Size, r.ConfigSize, want, m.Config.Size, r.Platform)
	}

	o.MaxSize = r.Size // at the limit is fine
	if _, err := run(o); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	o.MaxSize, o.Out = r.Size-1, filepath.Join(t.TempDir(), "image")
	if _, err := run(o); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("one byte over: %v", err)
	}
	if _, err := os.Stat(o.Out); !os.IsNotExist(err) {
		t.Errorf("an image over the limit was written to %s (%v)", o.Out, err)
	}
}

func TestRefuses(t *testing.T) {
	caDir, _ := fakeCAs(t)
	static := fakeELF(t, elf.EM_X86_64, false)
	notCA := filepath.Join(t.TempDir(), "bundle.pem")
	os.WriteFile(notCA, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o644)
	notLayout := t.TempDir()
	os.WriteFile(filepath.Join(notLayout, "precious"), []byte("x"), 0o644)
	for name, tc := range map[string]struct {
		edit func(*options)
		want string
	}{
		"dynamic":       {func(o *options) { o.Binary = fakeELF(t, elf.EM_X86_64, true) }, "dynamically linked"},
		"not ELF":       {func(o *options) { o.Binary = caDir + "/A_Root.crt" }, "not an ELF"},
		"machine":       {func(o *options) { o.Binary = fakeELF(t, elf.EM_386, false) }, "unsupported machine"},
		"no revision":   {func(o *options) { o.Revision = "" }, "no revision"},
		"no ca version": {func(o *options) { o.CAVersion = "" }, "required"},
		"not a cert":    {func(o *options) { o.CA = notCA }, `"PRIVATE KEY"`},
		"not a layout":  {func(o *options) { o.Out = notLayout }, "not an OCI layout"},
	} {
		o := testOptions(t, static, caDir)
		tc.edit(&o)
		if _, err := run(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(notLayout, "precious")); err != nil {
		t.Error(err)
	}
}
