package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where things are in the image, and who runs it.
const (
	binaryPath = "/usr/local/bin/portcullis"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
	nonroot    = 65532
	configPath = "/etc/portcullis/config.yaml"
)

// The listen and adminListen ports of deploy/config-example.yaml.
var exposedPorts = []string{"5050/tcp", "9090/tcp"}

const passwd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`

const group = `root:x:0:
nobody:x:65534:
nonroot:x:65532:
`

// options are mkimage's flags (see main).
type options struct {
	Binary, Out, CA, CAVersion, Source string
	Revision, Version                  string       // "": the binary's
	Created                            int64        // Unix seconds; < 0: the binary's vcs.time
	MaxSize                            int64        // bytes of config plus compressed layers
	Warn                               func(string) // nil: no warnings
}

type result struct {
	Digest            v1.Hash
	Platform          v1.Platform
	Size, ConfigSize  int64
	Revision, Version string
	Created           time.Time
	Certificates      int
}

// run builds the image and, if it fits in o.MaxSize, writes it to o.Out.
func run(o options) (*result, error) {
	if o.Binary == "" || o.CAVersion == "" {
		return nil, errors.New("-binary and -ca-version are required")
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	arch, err := staticArch(o.Binary)
	if err != nil {
		return nil, err
	}
	ca, certs, err := caBundle(o.CA)
	if err != nil {
		return nil, err
	}
	r := &result{Platform: v1.Platform{OS: "linux", Architecture: arch}, Certificates: certs}
	goVersion, err := stamp(o, r)
	if err != nil {
		return nil, err
	}

	labels := map[string]string{
		"org.opencontainers.image.title":       "portcullis",
		"org.opencontainers.image.description": "Pull-through OCI registry mirror that serves only images whose signatures satisfy a policy",
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.revision":    r.Revision,
		"org.opencontainers.image.version":     r.Version,
		"org.opencontainers.image.created":     r.Created.Format(time.RFC3339),
		"dev.portcullis.ca-certificates":       o.CAVersion,
	}
	if goVersion != "" {
		labels["dev.portcullis.go"] = goVersion
	}
	img, err := build(bin, ca, r.Platform, r.Created, labels, o.CAVersion)
	if err != nil {
		return nil, err
	}
	if r.Size, r.ConfigSize, err = imageSize(img); err != nil {
		return nil, err
	}
	if r.Size > o.MaxSize {
		return nil, fmt.Errorf("image is %d bytes (config %d + compressed layers %d), over the limit of %d",
			r.Size, r.ConfigSize, r.Size-r.ConfigSize, o.MaxSize)
	}
	if r.Digest, err = img.Digest(); err != nil {
		return nil, err
	}
	return r, writeLayout(o.Out, img, r.Platform)
}

// staticArch is the GOARCH of an ELF executable with no program
// interpreter: the image has no libc or dynamic loader to run anything else.
func staticArch(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: not an ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked (cgo?): build it with CGO_ENABLED=0", path)
		}
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	}
	return "", fmt.Errorf("%s: unsupported machine %s", path, f.Machine)
}

// stamp fills in r's revision, version and created time from the options,
// else from the binary's build information, and returns the binary's Go
// version ("" if it has no build information).
func stamp(o options, r *result) (goVersion string, err error) {
	var vcsRev, vcsTime, modified, modVersion string
	if bi, err := buildinfo.ReadFile(o.Binary); err == nil {
		goVersion, modVersion = bi.GoVersion, bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRev = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	switch {
	case o.Revision != "" && vcsRev != "" && o.Revision != vcsRev:
		return "", fmt.Errorf("-revision %s, but the binary was built from %s", o.Revision, vcsRev)
	case o.Revision != "":
		r.Revision = o.Revision
	case vcsRev != "":
		r.Revision = vcsRev
	default:
		return "", errors.New("no revision: the binary has no vcs.revision (build it with -buildvcs=true) and -revision is not set")
	}
	if modified == "true" && o.Warn != nil {
		o.Warn(fmt.Sprintf("the binary was built from a modified tree (vcs.modified=true), not from %s alone", r.Revision))
	}

	r.Version = o.Version
	if r.Version == "" {
		r.Version = modVersion
	}
	if r.Version == "" || r.Version == "(devel)" {
		return "", fmt.Errorf("no version: the binary's module version is %q and -version is not set", r.Version)
	}

	switch {
	case o.Created >= 0:
		r.Created = time.Unix(o.Created, 0).UTC()
	case vcsTime != "":
		if r.Created, err = time.Parse(time.RFC3339, vcsTime); err != nil {
			return "", fmt.Errorf("the binary's vcs.time: %w", err)
		}
		r.Created = r.Created.UTC()
	default:
		return "", errors.New("no created time: the binary has no vcs.time and -created is not set")
	}
	return goVersion, nil
}

// caBundle reads a PEM bundle, or bundles a directory's *.crt files in
// name order, each ending in a newline, as update-ca-certificates does for
// the files listed in a default /etc/ca-certificates.conf. Every block must
// be a certificate; it returns how many there are.
func caBundle(path string) ([]byte, int, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	var bundle []byte
	if !st.IsDir() {
		if bundle, err = os.ReadFile(path); err != nil {
			return nil, 0, err
		}
	} else {
		names, err := filepath.Glob(filepath.Join(path, "*.crt"))
		if err != nil {
			return nil, 0, err
		}
		sort.Strings(names)
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, 0, err
			}
			if len(b) > 0 && b[len(b)-1] != '\n' {
				b = append(b, '\n')
			}
			bundle = append(bundle, b...)
		}
	}
	n := 0
	for rest := bundle; ; n++ {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, 0, fmt.Errorf("%s: text that is not PEM after %d certificates", path, n)
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, 0, fmt.Errorf("%s: a %q PEM block", path, block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return nil, 0, fmt.Errorf("%s: certificate %d: %w", path, n+1, err)
		}
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("%s: no certificates", path)
	}
	return bundle, n, nil
}

// file is a tar entry: a directory when name ends in "/".
type file struct {
	name     string // without the leading "/"
	mode     int64
	uid      int // and gid
	contents []byte
}

// build assembles the image: a base layer, the binary's layer, the config.
func build(bin, ca []byte, p v1.Platform, created time.Time, labels map[string]string, caVersion string) (v1.Image, error) {
	base, err := layerOf(created,
		file{"etc/", 0o755, 0, nil},
		file{"etc/group", 0o644, 0, []byte(group)},
		file{"etc/passwd", 0o644, 0, []byte(passwd)},
		file{"etc/ssl/", 0o755, 0, nil},
		file{"etc/ssl/certs/", 0o755, 0, nil},
		file{strings.TrimPrefix(caPath, "/"), 0o644, 0, ca},
		file{"home/", 0o755, 0, nil},
		file{"home/nonroot/", 0o700, nonroot, nil},
		file{"tmp/", 0o1777, 0, nil},
		file{"var/", 0o755, 0, nil},
		file{"var/lib/", 0o755, 0, nil},
		file{"var/lib/portcullis/", 0o700, nonroot, nil},
	)
	if err != nil {
		return nil, err
	}
	app, err := layerOf(created,
		file{"usr/", 0o755, 0, nil},
		file{"usr/local/", 0o755, 0, nil},
		file{"usr/local/bin/", 0o755, 0, nil},
		file{strings.TrimPrefix(binaryPath, "/"), 0o755, 0, bin},
	)
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	at := v1.Time{Time: created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: at,
			CreatedBy: "mkimage: base: ca-certificates " + caVersion + ", /etc/passwd, /etc/group, /tmp, /home/nonroot, /var/lib/portcullis"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: at, CreatedBy: "mkimage: " + binaryPath}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = p.OS, p.Architecture, at
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", nonroot, nonroot),
		Entrypoint:   []string{binaryPath},
		Cmd:          []string{"serve", "--config", configPath},
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		WorkingDir:   "/",
		ExposedPorts: map[string]struct{}{},
		Labels:       labels,
	}
	for _, port := range exposedPorts {
		cf.Config.ExposedPorts[port] = struct{}{}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	return mutate.Annotations(img, labels).(v1.Image), nil
}

// layerOf is a gzipped tar layer of files, sorted by name, each with mtime
// t, uid and gid set and no user or group names. The gzip header has no
// time or name (ggcr's compression uses compress/gzip's zero Header).
func layerOf(t time.Time, files ...file) (v1.Layer, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: t, Format: tar.FormatUSTAR}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.contents))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		if _, err := tw.Write(f.contents); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression),
		tarball.WithCompressedCaching)
}

// imageSize is the size of the config plus the compressed layers (what a
// pull downloads, besides the manifest).
func imageSize(img v1.Image) (total, config int64, err error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, 0, err
	}
	total = m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	return total, m.Config.Size, nil
}

// writeLayout writes img as the only image of an OCI layout at out: into a
// new directory beside it, then renamed over a previous layout. It refuses
// to replace anything else.
func writeLayout(out string, img v1.Image, p v1.Platform) error {
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(out, "oci-layout")); err != nil {
			return fmt.Errorf("%s exists and is not an OCI layout: not replacing it", out)
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	lp, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendImage(img, layout.WithPlatform(p)); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
