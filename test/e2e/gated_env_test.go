//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/portcullis-dev/portcullis/verify/signing"
)

// The gated tests run proxies with a policy file (the verification gate),
// each test its own proxy on its own ports, in front of the same upstreams as
// the shared (ungated) proxy. Under the test policy the fixtures in
// images_test.go (acme/app, acme/oci, acme/multi) are unsigned images that
// must be refused; the ones below are pushed and signed on first use.

// Signed fixtures and others only the gated tests use.
const (
	legacySignedImage = "registry.example/acme/signed-legacy:v1" // Docker schema 2 image, legacy .sig signature
	bundleSignedImage = "registry.example/acme/signed-bundle:v1" // OCI image, cosign v3 bundle referrer
	signedIndexImage  = "registry.example/acme/signed-multi:v1"  // OCI index whose digest is signed (legacy); children unsigned
	forgedImage       = "registry.example/acme/forged:v1"        // OCI image signed (legacy) by a key the policy does not trust
	vendorImage       = "registry.example/vendor/tool:v1"        // OCI image, unsigned; allowed by the vendor policy
	signedSeed        = imageSeed + 1
)

// gatedPolicy is the policy of the gated proxies: acme/** must be signed by
// the key in cosign.pub, vendor/** may be unsigned, the rest is refused.
const gatedPolicy = `policies:
  - name: acme-release
    images: ["registry.example/acme/**"]
    authorities:
      - name: release-key
        key: {path: cosign.pub}
  - name: vendor
    images: ["registry.example/vendor/**"]
    allow: unsigned
default: deny
`

// gatedConfig is what a gated proxy's config adds to the base config.
const gatedConfig = "policyFile: policy.yaml\n"

// signedSet is the signed fixtures, pushed once for all gated tests.
var signedSet struct {
	once     sync.Once
	pub      []byte // the release key's public key, PEM (cosign.pub)
	fixtures map[string]fixture
	err      error
}

// signedFixtures pushes and signs the gated tests' fixtures on first use and
// returns the release key's public key (PEM).
func (e *env) signedFixtures(t *testing.T) []byte {
	t.Helper()
	e.needProxy(t)
	signedSet.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		signedSet.pub, signedSet.fixtures, signedSet.err = pushSigned(ctx, e.upstreams["registry.example"].addr)
	})
	if signedSet.err != nil {
		t.Fatalf("signed fixtures: %v", signedSet.err)
	}
	return signedSet.pub
}

// gatedFixture returns a fixture of images_test.go or one of the signed set.
func (e *env) gatedFixture(t *testing.T, ref string) fixture {
	t.Helper()
	if f, ok := signedSet.fixtures[ref]; ok {
		return f
	}
	return e.fixture(t, ref)
}

// pushSigned builds the signed set, pushes it to the upstream at addr (the
// upstream of registry.example: the proxy is read-only) and signs it. It
// returns the release key (PEM) and the fixtures.
func pushSigned(ctx context.Context, addr string) ([]byte, map[string]fixture, error) {
	release, err := signing.NewSigner()
	if err != nil {
		return nil, nil, err
	}
	forger, err := signing.NewSigner()
	if err != nil {
		return nil, nil, err
	}
	rng := rand.New(rand.NewSource(signedSeed))
	src := func() random.Option { return random.WithSource(rand.NewSource(rng.Int63())) }

	objs := map[string]any{}
	if objs[legacySignedImage], err = dockerImage(src()); err != nil {
		return nil, nil, err
	}
	for _, ref := range []string{bundleSignedImage, forgedImage, vendorImage} {
		if objs[ref], err = ociImageOf("linux", runtime.GOARCH, src(), src()); err != nil {
			return nil, nil, err
		}
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	arches := []string{"amd64", "arm64"}
	if !slices.Contains(arches, runtime.GOARCH) {
		arches = append(arches, runtime.GOARCH)
	}
	for _, arch := range arches {
		img, err := ociImageOf("linux", arch, src())
		if err != nil {
			return nil, nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	objs[signedIndexImage] = idx

	fixtures := map[string]fixture{}
	for ref, obj := range objs {
		f, err := describe(ref, obj)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", ref, err)
		}
		fixtures[ref] = f
		_, rest := registryOf(ref)
		if err := pushTo(ctx, addr, rest, obj); err != nil {
			return nil, nil, fmt.Errorf("push %s to %s: %w", ref, addr, err)
		}
	}

	opt := remote.WithContext(ctx)
	for ref, sign := range map[string]func(name.Repository, fixture) error{
		legacySignedImage: func(r name.Repository, f fixture) error { return release.SignLegacy(r, f.digest, opt) },
		signedIndexImage:  func(r name.Repository, f fixture) error { return release.SignLegacy(r, f.digest, opt) },
		forgedImage:       func(r name.Repository, f fixture) error { return forger.SignLegacy(r, f.digest, opt) },
		bundleSignedImage: func(r name.Repository, f fixture) error {
			subject := v1.Descriptor{MediaType: f.mediaType, Digest: f.digest, Size: int64(len(f.raw))}
			return release.SignBundle(r, subject, opt)
		},
	} {
		_, rest := registryOf(ref)
		repoName, _, _ := strings.Cut(rest, ":")
		repo, err := name.NewRepository(addr+"/"+repoName, name.Insecure)
		if err != nil {
			return nil, nil, err
		}
		if err := sign(repo, fixtures[ref]); err != nil {
			return nil, nil, fmt.Errorf("signing %s: %w", ref, err)
		}
	}
	pub, err := release.PublicKeyPEM()
	return pub, fixtures, err
}

// startGatedProxy starts a proxy with the test policy (policy.yaml and
// cosign.pub next to its config, in a directory of the test's own) and
// stops it when the test ends; an unclean exit or a data race fails the
// test. It logs JSON, so audit lines can be read back (auditLines).
func (e *env) startGatedProxy(t *testing.T) *proxyProc {
	t.Helper()
	pub := e.signedFixtures(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cosign.pub"), string(pub))
	writeFile(t, filepath.Join(dir, "policy.yaml"), gatedPolicy)
	return e.startProxyIn(t, dir, gatedConfig)
}

// startProxyIn starts a proxy whose config is the base config plus extra,
// written into dir (which holds the files extra names), for the rest of the
// test.
func (e *env) startProxyIn(t *testing.T, dir, extra string) *proxyProc {
	t.Helper()
	p, err := e.launchProxy("portcullis ("+t.Name()+")", dir, extra, "json")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("proxy for %s on %s (admin %s), config %s", t.Name(), p.addr, p.adminAddr, p.configPath)
	t.Cleanup(func() {
		if err := checkProxyStop(p.process); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("---- %s log (%s) ----\n%s", p.Name(), p.LogPath(), p.Log(0, 32000))
		}
	})
	return p
}

// auditLine is one "decision" line of the proxy's JSON log.
type auditLine struct {
	Level    string `json:"level"`
	Logger   string `json:"logger"`
	Msg      string `json:"msg"`
	Image    string `json:"image"`
	Digest   string `json:"digest"`
	Revision string `json:"revision"`
	Result   string `json:"result"`
	Cause    string `json:"cause"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
	Identity string `json:"identity"`
	Duration any    `json:"duration"` // seconds, as zap's JSON encoder writes it
}

// auditLines returns the decision lines the proxy has logged so far.
func (p *proxyProc) auditLines(t *testing.T) []auditLine {
	t.Helper()
	f, err := os.Open(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []auditLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var l auditLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "decision" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", p.LogPath(), err)
	}
	return out
}

// waitAudit returns the first decision line for image@digest, waiting up to
// 5s for it (it is written before the response, but a client may report
// before the file is read).
func (p *proxyProc) waitAudit(t *testing.T, image, digest string) auditLine {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range p.auditLines(t) {
			if l.Image == image && l.Digest == digest {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision line for %s@%s in %s; decisions:\n%+v", image, digest, p.LogPath(), p.auditLines(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logContains reports whether the proxy's log holds s, waiting up to 5s
// for it: the proxy buffers its log and flushes it every second.
func (p *proxyProc) logContains(s string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if strings.Contains(p.Log(0, 1<<30), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventuallyAudit reports whether a decision line satisfying ok appears
// within 5s (the log is flushed every second).
func (p *proxyProc) eventuallyAudit(t *testing.T, ok func(auditLine) bool) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if slices.ContainsFunc(p.auditLines(t), ok) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ociErrorBody is an OCI distribution error response.
type ociErrorBody struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

// httpResult is a response read to the end.
type httpResult struct {
	status int
	header http.Header
	body   []byte
}

// registryGet sends method to http://addr+path (path starts with /v2/) with
// the Accept headers of a real puller, and reads the response.
func registryGet(t *testing.T, method, addr, path string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range dockerAccept {
		req.Header.Add("Accept", a)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: b}
}

// manifestPath is /v2/<registry>/<repo>/manifests/<reference> for an image
// reference "registry/repo:tag", with the tag replaced by reference if not "".
func manifestPath(ref, reference string) string {
	repo, tag, _ := strings.Cut(ref, ":")
	if reference == "" {
		reference = tag
	}
	return "/v2/" + repo + "/manifests/" + reference
}

// blobPath is /v2/<registry>/<repo>/blobs/<digest> for the repository of ref.
func blobPath(ref string, d v1.Hash) string {
	repo, _, _ := strings.Cut(ref, ":")
	return "/v2/" + repo + "/blobs/" + d.String()
}

// repoOf is "registry/repo" of "registry/repo:tag", as policies and audit
// lines name images.
func repoOf(ref string) string {
	repo, _, _ := strings.Cut(ref, ":")
	return repo
}

// wantDenied checks that r is 403 with an OCI error body whose code is
// DENIED and whose message contains each of parts; it returns the message.
func wantDenied(t *testing.T, what string, r httpResult, parts ...string) string {
	t.Helper()
	if r.status != http.StatusForbidden {
		t.Errorf("%s: status %d, want 403\n%s", what, r.status, r.body)
		return ""
	}
	if got := r.header.Get("Docker-Content-Digest"); got != "" {
		t.Errorf("%s: refusal carries Docker-Content-Digest %q", what, got)
	}
	var oe ociErrorBody
	if err := json.Unmarshal(r.body, &oe); err != nil || len(oe.Errors) == 0 {
		t.Errorf("%s: body is not an OCI error (%v):\n%s", what, err, r.body)
		return ""
	}
	msg := oe.Errors[0].Message
	if oe.Errors[0].Code != "DENIED" {
		t.Errorf("%s: error code %q, want DENIED (message %q)", what, oe.Errors[0].Code, msg)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("%s: message lacks %q:\n%s", what, p, msg)
		}
	}
	return msg
}

// writeAtomic replaces path with content in one rename, so that a proxy
// polling the file never reads half of it.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fails runs a client command that must fail, and returns its result.
func fails(t *testing.T, env []string, bin string, args ...string) cmdResult {
	t.Helper()
	line := bin + " " + strings.Join(args, " ")
	t.Logf("$ %s   (must fail)", line)
	r := runCmd(t.Context(), env, bin, args...)
	if r.err == nil {
		t.Fatalf("%s succeeded; want it refused\nstdout:\n%s\nstderr:\n%s", line, r.stdout, r.stderr)
	}
	t.Logf("failed as it should (%v); stderr:\n%s", r.err, strings.TrimSpace(r.stderr))
	return r
}
