//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/test/proc"
)

// Helpers of cosign_test.go: the real cosign CLIs (installed by `make tools`
// as .tools/bin/cosign and .tools/bin/cosign-v2), run offline, and proxies
// of their own with a policy that trusts a key cosign generated.

// cosignTimeout bounds one cosign command (they take about a second here).
const cosignTimeout = 2 * time.Minute

// cosignCLI is one pinned cosign binary and the sealed environment it runs
// in: its own HOME, TUF cache and Docker config in a temporary directory,
// the encrypted key's password empty, and every proxy variable pointing at a
// closed loopback port, so that a request anywhere but 127.0.0.1 (Rekor,
// Fulcio, the TUF CDN) fails at once instead of reaching the network.
type cosignCLI struct {
	tool    string // name in PATH: cosign, cosign-v2
	version string // the pinned version, as `cosign version --json` reports it
	bin     string
	dir     string   // its temporary files: HOME, caches, trusted root
	env     []string // the whole environment of every command
}

// needCosign finds tool in PATH and checks that it is the pinned version: a
// skip when it is missing or another version, a failure when CI=true.
func needCosign(t *testing.T, tool, version string) *cosignCLI {
	t.Helper()
	c := &cosignCLI{tool: tool, version: version, bin: needTool(t, tool), dir: t.TempDir()}
	c.env = cosignEnv(c.dir)
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	r := c.exec(t, "", nil, "version", "--json")
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &v) != nil {
		t.Fatalf("%s version --json: %v\nstdout:\n%s\nstderr:\n%s", c.bin, r.err, r.stdout, r.stderr)
	}
	if v.GitVersion != version {
		skipOrFail(t, fmt.Errorf("%s is cosign %s, want %s (run `make tools`)", c.bin, v.GitVersion, version))
	}
	return c
}

// cosignEnv is the environment of the cosign commands, with its state under
// dir. Variables that would change what cosign does (COSIGN_*, SIGSTORE_*,
// TUF_ROOT, proxies, Docker credentials) are dropped from the test's.
func cosignEnv(dir string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch uk := strings.ToUpper(k); {
		case strings.HasPrefix(uk, "COSIGN_"), strings.HasPrefix(uk, "SIGSTORE_"), strings.HasPrefix(uk, "XDG_"),
			uk == "TUF_ROOT", uk == "HOME", uk == "DOCKER_CONFIG", uk == "REGISTRY_AUTH_FILE",
			uk == "HTTP_PROXY", uk == "HTTPS_PROXY", uk == "ALL_PROXY", uk == "NO_PROXY":
			continue
		}
		out = append(out, kv)
	}
	home := filepath.Join(dir, "home")
	proxy := "http://" + nowhere
	return append(out,
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"TUF_ROOT="+filepath.Join(home, ".sigstore", "root"),
		"DOCKER_CONFIG="+filepath.Join(dir, "docker"),
		"REGISTRY_AUTH_FILE="+filepath.Join(dir, "docker", "auth.json"),
		"COSIGN_PASSWORD=",
		"HTTP_PROXY="+proxy, "HTTPS_PROXY="+proxy, "http_proxy="+proxy, "https_proxy="+proxy,
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost",
	)
}

// nowhere is the proxy of every cosign command: a closed loopback port
// (9, discard), so that a request that is not to 127.0.0.1 is refused at
// once. Go never proxies loopback addresses, so the registries and the proxy
// under test are reached directly.
const nowhere = "127.0.0.1:9"

// emptyTrustedRoot writes a Sigstore trusted root that trusts nothing (no
// CA, no log, no TSA) and returns its path: enough for key-based checks
// with --insecure-ignore-tlog, and it keeps cosign from fetching one.
func (c *cosignCLI) emptyTrustedRoot(t *testing.T) string {
	t.Helper()
	p := filepath.Join(c.dir, "empty_trusted_root.json")
	if err := os.WriteFile(p, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// exec runs one cosign command in dir ("" for the current directory), with
// extra added to c's environment, under cosignTimeout.
func (c *cosignCLI) exec(t *testing.T, dir string, extra []string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cosignTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), c.env...), extra...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", err, ctx.Err())
	}
	return cmdResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// run runs a cosign command that must succeed, logging the command line,
// how long it took and what it wrote to stderr; it returns stdout.
func (c *cosignCLI) run(t *testing.T, dir string, extra []string, args ...string) string {
	t.Helper()
	line := c.commandLine(extra, args)
	start := time.Now()
	r := c.exec(t, dir, extra, args...)
	if r.err != nil {
		t.Fatalf("$ %s\nfailed after %v: %v\nstdout:\n%s\nstderr:\n%s", line, time.Since(start).Round(time.Millisecond), r.err, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "proxyconnect") || strings.Contains(r.stderr, nowhere+":") {
		t.Errorf("$ %s\ntried to reach the network (through the proxy at %s that refuses all):\n%s", line, nowhere, r.stderr)
	}
	t.Logf("$ %s   (%v)\n%s", line, time.Since(start).Round(time.Millisecond), cosignIndent(r.stderr))
	return r.stdout
}

// commandLine is how a command is logged.
func (c *cosignCLI) commandLine(extra, args []string) string {
	return strings.TrimSpace(strings.Join(extra, " ") + " " + c.tool + " " + strings.Join(args, " "))
}

func cosignIndent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// cosignKey is a key pair from `cosign generate-key-pair`.
type cosignKey struct{ priv, pub string }

// generateKeyPair writes cosign.key and cosign.pub (empty password) into a
// new directory named name.
func (c *cosignCLI) generateKeyPair(t *testing.T, name string) cosignKey {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c.run(t, dir, nil, "generate-key-pair")
	k := cosignKey{priv: filepath.Join(dir, "cosign.key"), pub: filepath.Join(dir, "cosign.pub")}
	for _, p := range []string{k.priv, k.pub} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("generate-key-pair: %v", err)
		}
	}
	return k
}

// startCosignReferrersRegistry starts go-containerregistry's registry with the
// referrers API on (distribution v3.1.2, the other upstream, has none, so
// cosign keeps bundles there under the sha256-<hex> fallback tag). It lives
// in the test process and stops when t ends.
func startCosignReferrersRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// cosignImage pushes a small random image (Docker schema 2, one layer)
// seeded from its name, image:tag, to the registry at addr as repo:tag, where
// repo is image without its first segment (the registry name), and returns
// its digest.
func cosignImage(t *testing.T, addr, image, tag string) v1.Hash {
	t.Helper()
	_, repo := registryOf(image)
	h := fnv.New64a()
	io.WriteString(h, image+":"+tag)
	img, err := random.Image(1024, 1, random.WithSource(rand.NewSource(int64(h.Sum64()))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	if err := pushTo(ctx, addr, repo+":"+tag, img); err != nil {
		t.Fatalf("push %s:%s to %s: %v", repo, tag, addr, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// cosignPull pulls ref (host:port/registry/repo:tag, plain HTTP) with
// go-containerregistry: the manifest, then the config and every layer, each
// checked against its digest.
func cosignPull(t *testing.T, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		t.Errorf("pull %s: %v", ref, err)
		return
	}
	m, err := img.Manifest()
	if err != nil {
		t.Errorf("pull %s: %v", ref, err)
		return
	}
	if _, err := img.RawConfigFile(); err != nil { // checked against m.Config.Digest
		t.Errorf("pull %s: config %s: %v", ref, m.Config.Digest, err)
	}
	for _, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err == nil {
			var rc io.ReadCloser
			if rc, err = l.Compressed(); err == nil { // verifies the digest at EOF
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
		}
		if err != nil {
			t.Errorf("pull %s: layer %s: %v", ref, d.Digest, err)
		}
	}
}

// cosignProxy is a `portcullis serve` with a policy that trusts one cosign
// key, in front of the upstreams it was given.
type cosignProxy struct {
	*process
	admin      string
	configPath string
}

// cosignPolicy requires every image under interop/ of registry.example and
// referrers.example to be signed by the key in cosign.pub, and refuses the
// rest.
const cosignPolicy = `policies:
  - name: cosign-key
    images: ["registry.example/interop/**", "referrers.example/interop/**"]
    authorities:
      - name: cosign-cli-key
        key: {path: cosign.pub}
default: deny
`

// startCosignProxy starts e's portcullis binary with cosignPolicy, trusting
// the public key at pub, in front of upstreams (registry name -> host:port,
// plain HTTP). It logs JSON into its own directory and is stopped when the
// test ends; an unclean exit or a data race fails the test.
func startCosignProxy(t *testing.T, e *env, pub string, upstreams map[string]string) *cosignProxy {
	t.Helper()
	dir := t.TempDir()
	pem, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := proc.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	addr, admin := addrs[0], addrs[1]
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "listen: %s\nadminListen: %s\nshutdownDelay: 0s\nupstreams:\n", addr, admin)
	for _, reg := range []string{"registry.example", "referrers.example"} {
		if up, ok := upstreams[reg]; ok {
			fmt.Fprintf(&cfg, "  - registry: %s\n    endpoint: http://%s\n    insecure: true\n", reg, up)
		}
	}
	cfg.WriteString("defaultRegistry: registry.example\nupstreamTimeout: 20s\nshutdownTimeout: 5s\npolicyFile: policy.yaml\n")
	files := map[string]string{"cosign.pub": string(pem), "policy.yaml": cosignPolicy, "portcullis.yaml": cfg.String()}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "portcullis.yaml")
	p, err := startProcess("portcullis ("+t.Name()+")", filepath.Join(dir, "portcullis.log"), nil,
		e.binary, "serve", "--config", cfgPath, "--log-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = addr
	cp := &cosignProxy{process: p, admin: admin, configPath: cfgPath}
	t.Cleanup(func() {
		if err := checkProxyStop(p); err != nil {
			t.Error(err)
		}
	})
	if err := waitHTTP(p, "http://"+admin+"/readyz"); err != nil {
		t.Fatal(err)
	}
	t.Logf("proxy on %s (admin %s), config %s:\n%s", addr, admin, cfgPath, cosignIndent(cfg.String()))
	return cp
}

// logOnFailure makes t, if it fails, log what the proxy wrote during it.
func (p *cosignProxy) logOnFailure(t *testing.T) {
	from := p.LogSize()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- %s log during this test (%s) ----\n%s", p.Name(), p.LogPath(), p.Log(from, 32000))
		}
	})
}

// cosignDecision is one "decision" line of the proxy's JSON log.
type cosignDecision struct {
	Msg     string `json:"msg"`
	Image   string `json:"image"`
	Digest  string `json:"digest"`
	Result  string `json:"result"`
	Cause   string `json:"cause"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// decisions returns the decision lines logged for image@digest so far (for
// every digest of image if d is the zero Hash).
func (p *cosignProxy) decisions(t *testing.T, image string, d v1.Hash) []cosignDecision {
	t.Helper()
	f, err := os.Open(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []cosignDecision
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var l cosignDecision
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "decision" && l.Image == image &&
			(d == v1.Hash{} || l.Digest == d.String()) {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", p.LogPath(), err)
	}
	return out
}

// waitDecision returns the first decision logged for image@digest, waiting
// up to 5s for it.
func (p *cosignProxy) waitDecision(t *testing.T, image string, d v1.Hash) cosignDecision {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ds := p.decisions(t, image, d); len(ds) > 0 {
			return ds[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision logged for %s@%s in %s", image, d, p.LogPath())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cosignAccept is what pullers accept for a manifest.
var cosignAccept = []string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}

// cosignResponse is a manifest response read to the end.
type cosignResponse struct {
	status int
	header http.Header
	body   []byte
}

// cosignGetManifest sends GET http://addr/v2/<repo>/manifests/<reference>.
func cosignGetManifest(t *testing.T, addr, repo, reference string) cosignResponse {
	t.Helper()
	url := "http://" + addr + "/v2/" + repo + "/manifests/" + reference
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cosignAccept {
		req.Header.Add("Accept", a)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return cosignResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// cosignDenied checks that r is a 403 with an OCI error body whose first
// code is DENIED and returns its message ("" after reporting an error).
func cosignDenied(t *testing.T, what string, r cosignResponse) string {
	t.Helper()
	if r.status != http.StatusForbidden {
		t.Errorf("%s: status %d, want 403 DENIED\n%s", what, r.status, r.body)
		return ""
	}
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Errors) == 0 {
		t.Errorf("%s: 403 without an OCI error body (%v):\n%s", what, err, r.body)
		return ""
	}
	if body.Errors[0].Code != "DENIED" {
		t.Errorf("%s: error code %q, want DENIED: %s", what, body.Errors[0].Code, r.body)
	}
	if body.Errors[0].Message == "" {
		t.Errorf("%s: DENIED without a message", what)
	}
	return body.Errors[0].Message
}

// cosignVerifyResult is one image of `portcullis verify -o json`.
type cosignVerifyResult struct {
	Image    string `json:"image"`
	Digest   string `json:"digest"`
	Decision string `json:"decision"`
	Cause    string `json:"cause"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
}

// cosignPortcullisVerify runs `portcullis verify --config cfg -o json images...`
// and returns its exit code and results.
func cosignPortcullisVerify(t *testing.T, e *env, cfg string, images ...string) (int, []cosignVerifyResult) {
	t.Helper()
	args := append([]string{"verify", "--config", cfg, "-o", "json"}, images...)
	line := "portcullis " + strings.Join(args, " ")
	r := runCmd(t.Context(), nil, e.binary, args...)
	code := 0
	if r.err != nil {
		if code = exitCode(r.err); code < 0 {
			t.Fatalf("$ %s: %v\nstderr:\n%s", line, r.err, r.stderr)
		}
	}
	var out []cosignVerifyResult
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("$ %s: exit %d, output is not JSON (%v):\nstdout:\n%s\nstderr:\n%s", line, code, err, r.stdout, r.stderr)
	}
	t.Logf("$ %s   (exit %d)\n%s", line, code, cosignIndent(r.stdout))
	return code, out
}
