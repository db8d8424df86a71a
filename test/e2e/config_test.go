//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/test/proc"
)

// The binary's command line and deploy/config-example.yaml.

func TestVersion(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	if out := strings.TrimSpace(run(t, nil, e.binary, "version")); out == "" {
		t.Error("portcullis version printed nothing")
	}
}

func TestBadConfigExits2(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	dir := t.TempDir()
	for name, cfg := range map[string]string{
		"not yaml":         "listen: [\n",
		"unknown field":    "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\nupstreamz: []\n",
		"no upstreams":     "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\n",
		"http upstream":    "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\nupstreams:\n  - registry: r.example\n    endpoint: http://127.0.0.1:1\n",
		"missing file":     "",
		"unknown default":  "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\nupstreams:\n  - registry: r.example\n    endpoint: https://r.example\ndefaultRegistry: other.example\n",
		"auth, anonymous":  "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\nupstreams:\n  - registry: r.example\n    endpoint: https://r.example\n    auth: {username: u, passwordFile: pw}\n",
		"negative timeout": "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\nupstreams:\n  - registry: r.example\n    endpoint: https://r.example\nupstreamTimeout: -1s\n",
		"no policyFile":    "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\nupstreams:\n  - registry: r.example\n    endpoint: https://r.example\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
			writeFile(t, filepath.Join(dir, "pw"), "secret\n")
			if cfg != "" {
				writeFile(t, path, cfg)
			}
			r := runCmd(t.Context(), nil, e.binary, "serve", "--config", path)
			if code := exitCode(r.err); code != 2 {
				t.Errorf("portcullis serve with %s: exit %d (%v), want 2\nstderr:\n%s", name, code, r.err, r.stderr)
			}
		})
	}
}

// TestConfigExample starts the proxy with deploy/config-example.yaml as
// shipped, except for loopback listen addresses and a password file in a
// temporary directory, with the TLS files it names generated next to it and
// the example policy it names (deploy/policy-example.yaml, with a fresh key
// and a trusted root that trusts nothing), and checks mutual TLS on /v2/.
func TestConfigExample(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	dir := t.TempDir()
	addrs, err := proc.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	addr, admin := addrs[0], addrs[1]
	const pwPath = "/run/secrets/portcullis/registry-example-password"
	cfgPath := filepath.Join(dir, "config.yaml")
	render(t, "config-example.yaml", cfgPath,
		"listen: 0.0.0.0:5050", "listen: "+addr,
		"adminListen: 127.0.0.1:9090", "adminListen: "+admin,
		pwPath, filepath.Join(dir, "password"),
	)
	writeFile(t, filepath.Join(dir, "password"), "not-a-real-password\n")
	render(t, "policy-example.yaml", filepath.Join(dir, "policy-example.yaml"))
	writeFile(t, filepath.Join(dir, "example-cosign.pub"), examplePublicKey(t))
	writeFile(t, filepath.Join(dir, "example-trusted_root.json"), `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`+"\n")

	serverCA := newCA(t, "portcullis e2e server CA")
	clientCA := newCA(t, "portcullis e2e client CA")
	upstreamCA := newCA(t, "portcullis e2e upstream CA")
	serverCert, serverKey := serverCA.issue(t, "portcullis", false)
	writeFile(t, filepath.Join(dir, "tls.crt"), serverCert)
	writeFile(t, filepath.Join(dir, "tls.key"), serverKey)
	writeFile(t, filepath.Join(dir, "clients.pem"), clientCA.certPEM)
	writeFile(t, filepath.Join(dir, "ca.pem"), upstreamCA.certPEM)

	p, err := startProcess("portcullis (config-example.yaml)", filepath.Join(dir, "portcullis.log"), nil,
		e.binary, "serve", "--config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := checkProxyStop(p); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("---- portcullis (config-example.yaml) log ----\n%s", p.Log(0, 16000))
		}
	})
	if err := waitHTTP(p, "http://"+admin+"/healthz"); err != nil {
		t.Fatal(err)
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(serverCA.certPEM))
	clientCertPEM, clientKeyPEM := clientCA.issue(t, "node-1", true)
	clientCert, err := tls.X509KeyPair([]byte(clientCertPEM), []byte(clientKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	get := func(certs []tls.Certificate) (*http.Response, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs},
		}}
		resp, err := c.Get("https://" + addr + "/v2/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get([]tls.Certificate{clientCert})
	if err != nil {
		t.Fatalf("GET /v2/ with a client certificate: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/ with a client certificate: %s, want 200", resp.Status)
	}
	// clientCAFile set and allowAnonymousClients false: no certificate, no
	// service (a refused handshake or an error status).
	if resp, err := get(nil); err == nil && resp.StatusCode == http.StatusOK {
		t.Errorf("GET /v2/ without a client certificate: %s; want it refused", resp.Status)
	}
}

// examplePublicKey is a fresh ECDSA public key, PEM, for the key authority
// of policy-example.yaml.
func examplePublicKey(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// testCA is a throwaway certificate authority.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM string
}

func newCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue makes a leaf for 127.0.0.1 (server) or a client certificate, as PEM
// certificate and PEM key.
func (ca *testCA) issue(t *testing.T, cn string, client bool) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses = nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
}
