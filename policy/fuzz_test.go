package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// keeps the promises Policy makes.
func FuzzParse(f *testing.F) {
	files := fstest.MapFS{}
	for name, src := range map[string]string{
		"k.pub":             "keys/ed25519.pub",
		"trusted_root.json": "roots/trusted_root.json",
		"root.json":         "roots/root.json",
	} {
		data, err := os.ReadFile(filepath.Join("testdata", src))
		if err != nil {
			f.Fatal(err)
		}
		files[name] = &fstest.MapFile{Data: data}
	}
	seeds, _ := filepath.Glob("testdata/lint/*.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(y(
		"trustRoots: [{name: c, trustedRootFile: trusted_root.json}, {name: m, tuf: {url: 'https://t.example/', rootFile: root.json}}]",
		"policies:",
		"  - {name: p, images: ['r.example/**'], threshold: 2, authorities: [{name: k, key: {path: k.pub}}, {name: c, trustRoot: c, keyless: {identities: [{issuer: i, subjectRegExp: ^s}]}}]}",
		"  - {name: u, images: ['docker.io/nginx'], allow: unsigned, mode: warn}",
		"default: allow",
	)))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml", files)
		if err != nil {
			if p != nil {
				t.Errorf("got a Policy with error %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Errorf("problem %q does not start with the file name", line)
				}
			}
			return
		}
		if len(p.Revision) != 64 {
			t.Errorf("revision %q", p.Revision)
		}
		for _, ip := range p.Policies {
			checkCompiled(t, p, ip)
		}
		pl := p.For("r.example/a/b", "sha256:00")
		pl.Decide(nil)
	})
}

// checkCompiled checks the promises of one compiled policy.
func checkCompiled(t *testing.T, p *Policy, ip *ImagePolicy) {
	if ip.Name == "" || len(ip.images) != len(ip.Images) || len(ip.Images) == 0 {
		t.Errorf("policy %+v", ip)
	}
	if ip.AllowUnsigned != (len(ip.Authorities) == 0) {
		t.Errorf("policy %q: unsigned %v with %d authorities", ip.Name, ip.AllowUnsigned, len(ip.Authorities))
	}
	if !ip.AllowUnsigned && (ip.Threshold < 1 || ip.Threshold > len(ip.Authorities)) {
		t.Errorf("policy %q: threshold %d of %d", ip.Name, ip.Threshold, len(ip.Authorities))
	}
	for _, a := range ip.Authorities {
		if (a.Key == nil) == (a.Keyless == nil) || a.Name == "" {
			t.Errorf("authority %+v", a)
		}
		if a.Key != nil && (a.Key.Public == nil || a.Key.Hint == "") {
			t.Errorf("authority %q: key %+v", a.Name, a.Key)
		}
		if a.TrustRoot != "" && p.TrustRoots[a.TrustRoot] == nil {
			t.Errorf("authority %q: trust root %q not in %v", a.Name, a.TrustRoot, p.TrustRoots)
		}
	}
}
