package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/test/proc"
	"github.com/portcullis-dev/portcullis/verify/signing"
)

// freeAddrs is two distinct 127.0.0.1 addresses whose ports were free a
// moment ago (proc.FreeAddrs).
func freeAddrs(t *testing.T) (string, string) {
	t.Helper()
	addrs, err := proc.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0], addrs[1]
}

// writePublicKey writes the public key of a new signer as name in dir:
// a key a policy can name whose signatures the test never needs.
func writePublicKey(t *testing.T, dir, name string) string {
	t.Helper()
	signer, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := signer.PublicKeyPEM()
	return writeFile(t, dir, name, string(pem))
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// running is a `portcullis serve` running in-process.
type running struct {
	addr, admin string
	cancel      context.CancelFunc
	done        chan error
}

func startServe(t *testing.T, configYAML string) *running {
	t.Helper()
	dir := t.TempDir()
	addr, admin := freeAddrs(t)
	r := &running{addr: addr, admin: admin, done: make(chan error, 1)}
	if !strings.Contains(configYAML, "shutdownDelay:") {
		configYAML = "shutdownDelay: 0s\n" + configYAML // tests stop at once unless they test the delay
	}
	cfg := writeFile(t, dir, "config.yaml", fmt.Sprintf("listen: %s\nadminListen: %s\n%s", r.addr, r.admin, configYAML))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- serve(ctx, cfg, "console") }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		select {
		case err := <-r.done:
			t.Fatalf("serve exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("serve never became ready")
	return nil
}

func TestServeBadConfigIsExit2(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.yaml", "listne: 127.0.0.1:1\nupstreams: []\n")
	err := serve(context.Background(), cfg, "json")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("err = %v, want exit code 2", err)
	}
	if !strings.Contains(err.Error(), "listne") {
		t.Fatalf("error does not name the field: %v", err)
	}
}

// TestServeWithoutPolicyIsExit2: a config with no policyFile does not
// start a proxy that would serve everything unverified; it is a config
// error (exit 2) naming the file, the line and the field, and the way out.
func TestServeWithoutPolicyIsExit2(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "config.yaml", "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\nupstreams: [{registry: registry.example}]\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a proxy that starts stops here
	defer cancel()
	err := serve(ctx, cfg, "json")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("err = %v, want exit code 2", err)
	}
	for _, want := range []string{cfg + ":1: ", `missing field "policyFile"`, `"unverified: true"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
}

// TestServeUnverified: "unverified: true" starts a plain mirror, warns so in
// the log, and /readyz, still 200, says the proxy is unverified.
func TestServeUnverified(t *testing.T) {
	r := startServe(t, "upstreams: [{registry: registry.example}]\nunverified: true\n")
	resp, err := http.Get("http://" + r.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "unverified: ") {
		t.Errorf("/readyz: %d %q, want 200 and a body starting %q", resp.StatusCode, body, "unverified: ")
	}

	dir := t.TempDir()
	cfg, err := config.Load(writeFile(t, dir, "config.yaml", "upstreams: [{registry: registry.example}]\nunverified: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	core, logged := observer.New(zap.WarnLevel)
	if w, err := wire(cfg, &gate.Loader{}, zap.New(core), prometheus.NewRegistry()); err != nil || w.gate != nil {
		t.Fatalf("wire: %+v, err %v; want no gate, no error", w, err)
	}
	if w := logged.FilterMessageSnippet("no signature is verified").All(); len(w) != 1 || w[0].Level != zap.WarnLevel {
		t.Errorf("warnings logged: %+v, want one saying no signature is verified", logged.All())
	}
}

// TestWireNeedsAChoice: a Config that names no policy file and does
// not say Unverified (config.Load refuses such a file) gets no proxy, and
// one that names a policy file enforces it whatever Unverified says.
func TestWireNeedsAChoice(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load(writeFile(t, dir, "config.yaml", "upstreams: [{registry: registry.example}]\nunverified: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Unverified = false
	if w, err := wire(cfg, &gate.Loader{}, zap.NewNop(), prometheus.NewRegistry()); err == nil || w != nil {
		t.Fatalf("wire without a choice: %+v, err %v; want an error", w, err)
	}
	cfg.Unverified = true
	cfg.PolicyFile = writeFile(t, dir, "policy.yaml", "policies: []\ndefault: deny\n")
	if w, err := wire(cfg, &gate.Loader{}, zap.NewNop(), prometheus.NewRegistry()); err != nil || w.gate == nil {
		t.Fatalf("wire with a policy file and Unverified: %+v, err %v; want the policy's gate", w, err)
	}
}

// TestGracefulShutdown: on shutdown an in-flight blob pull finishes.
func TestGracefulShutdown(t *testing.T) {
	up, ld, size, started := slowBlobUpstream(t, 300*time.Millisecond)

	r := startServe(t, fmt.Sprintf("upstreams:\n  - registry: registry.example\n    endpoint: %s\n    insecure: true\nunverified: true\n", up.URL))
	type result struct {
		n   int64
		err error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + r.addr + "/v2/registry.example/acme/app/blobs/" + ld.String())
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		res <- result{n, err}
	}()
	<-started
	r.cancel()
	got := <-res
	if got.err != nil || got.n != size {
		t.Fatalf("in-flight pull during shutdown: %d bytes, %v", got.n, got.err)
	}
	if err := <-r.done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
	r.done <- nil // for Cleanup
	// Once stopped, new connections are refused.
	if _, err := http.Get("http://" + r.addr + "/v2/"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

// TestClientCertificates: with clientCAFile set, a client without a
// certificate from that CA cannot talk to the proxy at all.
func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	serverCert, serverKey := newLeaf(t, ca, caKey, "127.0.0.1", false)
	clientCert, clientKey := newLeaf(t, ca, caKey, "node-1", true)
	writeFile(t, dir, "ca.pem", pemCert(ca))
	writeFile(t, dir, "server.pem", pemCert(serverCert))
	writeFile(t, dir, "server.key", pemKey(t, serverKey))
	up := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer up.Close()
	pw := writeFile(t, dir, "pw", "secret\n")
	r := startServe(t, fmt.Sprintf(`tls: {certFile: %s, keyFile: %s, clientCAFile: %s}
upstreams:
  - registry: registry.example
    endpoint: %s
    insecure: true
    auth: {username: bot, passwordFile: %s}
unverified: true
`, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem"), up.URL, pw))

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	client := func(certs []tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	if resp, err := client(nil).Get("https://" + r.addr + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %d", resp.StatusCode)
	}
	pair := tls.Certificate{Certificate: [][]byte{clientCert.Raw}, PrivateKey: clientKey}
	resp, err := client([]tls.Certificate{pair}).Get("https://" + r.addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func newLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, client bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.IPAddresses = []net.IP{net.ParseIP(cn)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func pemKey(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// TestUpstreamsFollowHosts: followHosts from the config reach the upstream client.
func TestUpstreamsFollowHosts(t *testing.T) {
	cfg, err := config.Parse([]byte("unverified: true\nupstreams:\n  - registry: r.example\n    followHosts: [storage.example, \"*.blob.example:8443\"]\n"), "config.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ups, err := upstreamConfigs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ups[0].FollowHosts, ","); got != "storage.example,*.blob.example:8443" {
		t.Fatalf("FollowHosts = %q", got)
	}
}

// slowBlobUpstream is a registry holding registry.example/acme/app:v1 (a
// one-layer image) whose blob GETs take d; started receives when one
// begins. It returns the URL, the layer's digest and size.
func slowBlobUpstream(t *testing.T, d time.Duration) (*httptest.Server, v1.Hash, int64, chan struct{}) {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	started := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == "GET" {
			select {
			case started <- struct{}{}:
			default:
			}
			time.Sleep(d)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	img, _ := random.Image(4096, 1)
	ref, _ := name.NewTag(strings.TrimPrefix(up.URL, "http://")+"/acme/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	return up, ld, size, started
}

// TestShutdownDelay: on SIGTERM /readyz turns 503 at once, a new
// connection is still served (told to close) for shutdownDelay, a pull in
// flight across the delay finishes, and then the listeners close.
func TestShutdownDelay(t *testing.T) {
	const delay = 700 * time.Millisecond
	up, ld, size, started := slowBlobUpstream(t, delay+500*time.Millisecond) // a pull in flight past the delay
	r := startServe(t, fmt.Sprintf("shutdownDelay: %s\nupstreams:\n  - registry: registry.example\n    endpoint: %s\n    insecure: true\nunverified: true\n", delay, up.URL))
	pulled := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + r.addr + "/v2/registry.example/acme/app/blobs/" + ld.String())
		if err != nil {
			pulled <- err
			return
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && (resp.StatusCode != 200 || n != size) {
			err = fmt.Errorf("status %d, %d of %d bytes", resp.StatusCode, n, size)
		}
		pulled <- err
	}()
	<-started
	stopped := time.Now()
	r.cancel()
	deadline := time.Now().Add(delay / 2)
	for {
		resp, err := http.Get("http://" + r.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 503 within %v of SIGTERM", delay/2)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + r.addr + "/v2/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a new connection during shutdownDelay: %v %v", resp, err)
	}
	resp.Body.Close()
	if !resp.Close {
		t.Error("an answer during shutdownDelay does not say Connection: close")
	}
	if err := <-pulled; err != nil {
		t.Fatalf("the pull in flight across shutdownDelay: %v", err)
	}
	if err := <-r.done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
	r.done <- nil // for Cleanup
	if took := time.Since(stopped); took < delay {
		t.Errorf("listeners closed %v after SIGTERM, before shutdownDelay %v", took, delay)
	}
	if _, err := http.Get("http://" + r.addr + "/v2/"); err == nil {
		t.Fatal("still serving after shutdownDelay")
	}
}
