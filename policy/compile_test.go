package policy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

const realTrustedRoot = "/work/shared/realdata/trusted-root/trusted_root.json"

func TestLoadKeys(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "ed25519", "rsa2048"} {
		t.Run(kind, func(t *testing.T) {
			keyPEM := newKey(t, kind)
			p := mustLoad(t, y(
				"policies:",
				"  - name: p",
				"    images: [r.example/**]",
				"    authorities:",
				"      - name: file",
				"        key: {path: keys/cosign.pub}",
			), map[string]string{"keys/cosign.pub": keyPEM})
			k := p.Policies[0].Authorities[0].Key
			block, _ := pem.Decode([]byte(keyPEM))
			sum := sha256.Sum256(block.Bytes)
			if string(k.PEM) != keyPEM || k.Hint != base64.StdEncoding.EncodeToString(sum[:]) {
				t.Errorf("key = hint %q, PEM %q", k.Hint, k.PEM)
			}
			want, _ := x509.ParsePKIXPublicKey(block.Bytes)
			if eq, ok := k.Public.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(want) {
				t.Errorf("Public = %T %v", k.Public, k.Public)
			}
			switch k.Public.(type) {
			case *ecdsa.PublicKey, ed25519.PublicKey, *rsa.PublicKey:
			default:
				t.Errorf("Public is a %T", k.Public)
			}
		})
	}
}

func TestLoadEverything(t *testing.T) {
	keyPEM := newKey(t, "p256")
	src := y(
		"trustRoots:",
		"  - name: corp",
		"    trustedRootFile: roots/trusted_root.json",
		"  - name: mirror",
		"    tuf: {url: https://tuf.internal/, rootFile: root.json, cacheDir: cache}",
		"policies:",
		"  - name: acme-release",
		"    images: [\"Registry.Example/acme/**\", \"docker.io/library/nginx\"]",
		"    excludeImages: [\"registry.example/acme/sandbox/**\"]",
		"    mode: enforce",
		"    threshold: 2",
		"    matchRepository: true",
		"    authorities:",
		"      - name: release-key",
		"        key: {path: cosign.pub}",
		"        requireTlog: true",
		"        trustRoot: corp",
		"      - name: ci",
		"        trustRoot: mirror",
		"        keyless:",
		"          requireSCT: false",
		"          identities:",
		"            - issuer: https://token.actions.githubusercontent.com",
		"              subjectRegExp: ^https://github\\.com/acme/",
		"            - issuerRegExp: ^https://accounts\\.google\\.com$",
		"              subject: release@acme.example",
		"  - name: vendor",
		"    images: [registry.example/vendor/**]",
		"    allow: unsigned",
		"    mode: warn",
		"allowDigests: []",
		"default: deny",
	)
	p := mustLoad(t, src, map[string]string{
		"cosign.pub":              keyPEM,
		"roots/trusted_root.json": `{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`,
		"root.json":               `{"signed": {"_type": "root"}}`,
	})
	if len(p.Revision) != 64 || p.DefaultAllow || len(p.AllowDigests) != 0 {
		t.Errorf("policy = revision %q, default allow %v, digests %v", p.Revision, p.DefaultAllow, p.AllowDigests)
	}
	wantRoots := map[string]*TrustRoot{
		"corp": {Name: "corp",
			TrustedRootJSON: []byte(`{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`)},
		"mirror": {Name: "mirror", TUF: &TUF{URL: "https://tuf.internal/",
			RootJSON: []byte(`{"signed": {"_type": "root"}}`), CacheDir: "cache"}},
	}
	if !reflect.DeepEqual(p.TrustRoots, wantRoots) {
		t.Errorf("TrustRoots = %+v", p.TrustRoots)
	}
	acme := p.Policies[0]
	if acme.Name != "acme-release" || acme.Line != 7 || acme.Threshold != 2 || !acme.MatchRepository || acme.Mode != Enforce ||
		!reflect.DeepEqual(acme.Images, []string{"Registry.Example/acme/**", "docker.io/library/nginx"}) {
		t.Errorf("acme = %+v", acme)
	}
	key, ci := acme.Authorities[0], acme.Authorities[1]
	if key.Name != "release-key" || key.Key == nil || key.Keyless != nil || !key.RequireTlog || key.TrustRoot != "corp" {
		t.Errorf("release-key = %+v", key)
	}
	if ci.Key != nil || ci.Keyless == nil || !ci.RequireTlog || ci.TrustRoot != "mirror" || ci.Keyless.RequireSCT || len(ci.Keyless.Identities) != 2 {
		t.Errorf("ci = %+v", ci)
	}
	vendor := p.Policies[1]
	if !vendor.AllowUnsigned || vendor.Mode != Warn || vendor.Threshold != 1 || vendor.Authorities != nil {
		t.Errorf("vendor = %+v", vendor)
	}
	// mode: warn on an unsigned policy is harmless; matchRepository is
	// worth a warning (bundle signatures never pass it).
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].String(), "matchRepository: only legacy .sig signatures name the repository") {
		t.Errorf("Warnings = %v", p.Warnings)
	}
}

// TestShadowedUnsigned: an allow: unsigned policy inside an enforcing
// policy's images is reported (it has no effect there); one outside, or
// excluded from the enforcing policy, is not.
func TestShadowedUnsigned(t *testing.T) {
	p := mustLoad(t, y(
		"policies:",
		"  - name: acme",
		"    images: [r.example/acme/**]",
		"    excludeImages: [r.example/acme/public/**]",
		"    authorities: [{name: k, key: {path: cosign.pub}}]",
		"  - name: sandbox",
		"    images: [r.example/acme/sandbox/*]",
		"    allow: unsigned",
		"  - name: public",
		"    images: [r.example/acme/public/**]",
		"    allow: unsigned",
		"  - name: vendor",
		"    images: [r.example/vendor/**]",
		"    allow: unsigned",
	), map[string]string{"cosign.pub": newKey(t, "p256")})
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].String(), `policy.yaml:8: warning: policies[1].allow: has no effect on images policy "acme" also matches, such as r.example/acme/sandbox/x`) {
		t.Errorf("Warnings = %v", p.Warnings)
	}
}

func TestKeylessDefaults(t *testing.T) {
	p := mustLoad(t, y(
		"policies:",
		"  - name: p",
		"    images: [r.example/**]",
		"    authorities:",
		"      - name: ci",
		"        keyless: {identities: [{issuer: i, subject: s}]}",
		"      - name: key-tlog",
		"        key: {path: k.pub}",
		"        requireTlog: true",
		"      - name: key",
		"        key: {path: k2.pub}",
		"default: allow",
	), map[string]string{"k.pub": newKey(t, "ed25519"), "k2.pub": newKey(t, "ed25519")})
	as := p.Policies[0].Authorities
	if !as[0].RequireTlog || !as[0].Keyless.RequireSCT || as[0].TrustRoot != PublicGood ||
		as[1].TrustRoot != PublicGood || as[2].TrustRoot != "" || as[2].RequireTlog {
		t.Errorf("authorities = %+v %+v %+v", as[0], as[1], as[2])
	}
	if !reflect.DeepEqual(p.TrustRoots, map[string]*TrustRoot{PublicGood: {Name: PublicGood, TUF: &TUF{}}}) {
		t.Errorf("TrustRoots = %+v", p.TrustRoots)
	}
	if !p.DefaultAllow || len(p.Warnings) != 3 {
		t.Errorf("default allow %v, warnings %v", p.DefaultAllow, p.Warnings)
	}
}

func TestPublicGoodOverride(t *testing.T) {
	p := mustLoad(t, y(
		"trustRoots:",
		"  - name: public-good",
		"    tuf: {cacheDir: /var/cache/tuf}",
		"policies:",
		"  - name: p",
		"    images: [r.example/**]",
		"    authorities: [{name: ci, keyless: {identities: [{issuer: i, subject: s}]}}]",
	), nil)
	if got := p.TrustRoots[PublicGood].TUF; len(p.TrustRoots) != 1 || got.CacheDir != "var/cache/tuf" || got.URL != "" {
		t.Errorf("TrustRoots = %+v", p.TrustRoots)
	}
}

// TestRealTrustedRoot reads a trusted root by its absolute name from
// os.DirFS("/"), as package internal/policyfile has Parse do.
func TestRealTrustedRoot(t *testing.T) {
	want, err := os.ReadFile(realTrustedRoot)
	if err != nil {
		t.Skipf("no real trusted root: %v", err)
	}
	p, err := Parse([]byte(y(
		"trustRoots: [{name: pg, trustedRootFile: "+realTrustedRoot+"}]",
		"policies:",
		"  - name: p",
		"    images: [r.example/**]",
		"    authorities: [{name: ci, trustRoot: pg, keyless: {identities: [{issuer: i, subject: s}]}}]",
	)), "/nowhere/policy.yaml", os.DirFS("/"))
	if err != nil {
		t.Fatal(err)
	}
	if tr := p.TrustRoots["pg"]; string(tr.TrustedRootJSON) != string(want) || tr.TUF != nil {
		t.Errorf("trust root = %+v", tr)
	}
}

func TestRevision(t *testing.T) {
	src := y(
		"trustRoots: [{name: corp, trustedRootFile: trusted_root.json}]",
		"policies:",
		"  - name: p",
		"    images: [r.example/**]",
		"    authorities: [{name: k, key: {path: k.pub}, requireTlog: true, trustRoot: corp}]",
	)
	files := map[string]string{
		"k.pub":             newKey(t, "p256"),
		"trusted_root.json": `{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`,
	}
	p := mustLoad(t, src, files)
	if again := mustLoad(t, src, files); again.Revision != p.Revision {
		t.Fatalf("revision %q then %q", p.Revision, again.Revision)
	}
	check := func(what string) {
		t.Helper()
		q := mustLoad(t, src, files)
		if q.Revision == p.Revision {
			t.Errorf("revision unchanged after %s", what)
		}
		p = q
	}
	files["k.pub"] = newKey(t, "p256")
	check("changing the key file")
	files["trusted_root.json"] += "\n"
	check("changing the trusted root")
	src += "# comment\n"
	check("changing the policy file")
}

// TestRevisionIsWhereverMounted: replicas that mount the same policy and
// key at other directories agree on the revision; one byte of the key
// changes it.
func TestRevisionIsWhereverMounted(t *testing.T) {
	src := y("policies: [{name: p, images: [r.example/**], authorities: [{name: k, key: {path: keys/k.pub}}]}]")
	key := newKey(t, "ed25519") // any 32 bytes are an Ed25519 key
	fromDisk := func(dir string) *Policy {
		t.Helper()
		p, err := Parse([]byte(src), filepath.ToSlash(filepath.Join(dir, "policy.yaml")), os.DirFS("/"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		writeFile(t, filepath.Join(dir, "keys/k.pub"), key)
	}
	if ra, rb := fromDisk(a).Revision, fromDisk(b).Revision; ra != rb {
		t.Errorf("revisions %q and %q for the same files in two directories", ra, rb)
	}
	i := strings.Index(key, "\n") + 20 // base64 of the key, past the DER header
	c := byte('A')
	if key[i] == c {
		c = 'B'
	}
	writeFile(t, filepath.Join(b, "keys/k.pub"), key[:i]+string(c)+key[i+1:])
	if fromDisk(a).Revision == fromDisk(b).Revision {
		t.Errorf("revision unchanged by a changed key byte")
	}
}

func TestRevisionFraming(t *testing.T) {
	a := revision([]byte("x"), map[string][]byte{"a.key.path": []byte("bc"), "b.key.path": []byte("d")})
	b := revision([]byte("x"), map[string][]byte{"a.key.path": []byte("b"), "b.key.path": []byte("cd")})
	c := revision([]byte("x"), map[string][]byte{"a.key.path": []byte("b"), "b.key.path": []byte("cd")})
	if a == b || b != c || strings.ToLower(a) != a || len(a) != 64 {
		t.Errorf("revisions %q %q %q", a, b, c)
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := load(t, y(
		"policies:",
		"  - name: p",
		"    images: [nginx]",
		"    mode: enforse",
		"    authorities: [{name: k, key: {path: missing.pub}}]",
		"default: allow",
	), nil)
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v (%T), want a *LoadError", err, err)
	}
	want := []string{
		`policy.yaml:3: policies[0].images[0]: "nginx" does not start with a registry; for Docker Hub write "docker.io/library/nginx"`,
		`policy.yaml:4: policies[0].mode: want "enforce" or "warn", got "enforse" (did you mean "enforce"?)`,
		`policy.yaml:5: policies[0].authorities[0].key.path: cannot read "missing.pub": file does not exist`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) || len(le.Problems) != len(want) {
		t.Fatalf("got %d problems:\n%v", len(lines), err)
	}
	for i, line := range lines {
		if line != want[i] {
			t.Errorf("problem %d = %q, want %q", i, line, want[i])
		}
	}
}

// TestResolveNames: names are relative to the policy file's directory in
// files, or to its root with a leading "/", and never lead out of it.
func TestResolveNames(t *testing.T) {
	key := newKey(t, "ed25519")
	files := mapFS(map[string]string{"conf/k.pub": key, "keys/k.pub": key})
	for _, name := range []string{"k.pub", "./k.pub", "../keys/k.pub", "/keys/k.pub", "/../keys/k.pub"} {
		src := y("policies: [{name: p, images: [r.example/x], authorities: [{name: k, key: {path: " + name + "}}]}]")
		if _, err := Parse([]byte(src), "conf/policy.yaml", files); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := Parse([]byte(src), "/conf/policy.yaml", files); err != nil {
			t.Errorf("%s beside /conf/policy.yaml: %v", name, err)
		}
	}
	src := y("policies: [{name: p, images: [r.example/x], authorities: [{name: k, key: {path: ../k.pub}}]}]",
		"trustRoots: [{name: t, tuf: {cacheDir: ../cache}}]")
	_, err := Parse([]byte(src), "", files)
	for _, want := range []string{
		`policy:1: policies[0].authorities[0].key.path: cannot read "../k.pub": leads out of the files given to the policy (to "../k.pub")`,
		`policy:2: trustRoots[0].tuf.cacheDir: "../cache" leads out of the files given to the policy (to "../cache")`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %s", err, want)
		}
	}
	src = y("policies: [{name: p, images: [r.example/x], authorities: [{name: k, key: {path: k.pub}}]}]")
	if _, err := Parse([]byte(src), "", nil); err == nil || !strings.HasSuffix(err.Error(), `cannot read "k.pub": no files were given to read it from`) {
		t.Errorf("nil files: err = %v", err)
	}
	if _, err = Parse([]byte("policies: 1\n"), "", nil); err == nil || !strings.HasPrefix(err.Error(), "policy:1: policies: want a list") {
		t.Errorf("err = %v", err)
	}
}

// TestFileChecks: only regular files are read, and no more than the limits.
func TestFileChecks(t *testing.T) {
	files := fstest.MapFS{
		"big.pub":   {Data: make([]byte, maxKeyBytes+1)},
		"dir/x.pub": {Data: []byte("x")},
		"pipe.pub":  {Mode: fs.ModeNamedPipe},
	}
	for name, want := range map[string]string{
		"big.pub":  "larger than 65536 bytes",
		"dir":      "not a regular file",
		"pipe.pub": "not a regular file",
	} {
		src := y("policies: [{name: p, images: [r.example/x], authorities: [{name: k, key: {path: " + name + "}}]}]")
		if _, err := Parse([]byte(src), "policy.yaml", files); err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", name, err, want)
		}
	}
}

// TestPseudoPolicyNamesAreReserved: a policy may not take a name the proxy
// uses for verdicts no policy made.
func TestPseudoPolicyNamesAreReserved(t *testing.T) {
	_, err := load(t, y(
		"policies:",
		"  - name: portcullis:default-deny",
		"    images: [r.example/**]",
		"    allow: unsigned",
	), nil)
	if err == nil || !strings.Contains(err.Error(), `policy.yaml:2: policies[0].name: names starting with "portcullis:" are the proxy's own`) {
		t.Fatalf("err = %v", err)
	}
}
