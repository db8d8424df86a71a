//go:build e2e

package e2e

// The loopback RFC 3161 timestamp authority of tsa_test.go: `openssl ts
// -reply` behind an HTTP handler on 127.0.0.1, its credentials made here,
// and the trusted root and signing config cosign makes for it.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// tsaOpensslTimeout bounds one openssl command of the TSA.
const tsaOpensslTimeout = 20 * time.Second

// loopbackTSA is an RFC 3161 timestamp authority on 127.0.0.1: each POST
// body is a TimeStampReq, answered by `openssl ts -reply`.
type loopbackTSA struct {
	name    string
	url     string // http://127.0.0.1:PORT/
	dir     string
	openssl string
	// The files openssl and cosign read.
	cnf, key, leaf, chain string // chain: the root CA, which -chain adds to replies
	certChain             string // leaf then root, for the trusted root
	rootPEM               []byte

	mu      sync.Mutex
	log     []string    // one line per request, for the test log
	replies []time.Time // when each successful reply was written
	failed  int         // requests not answered with a timestamp
}

// startLoopbackTSA generates the TSA's keys and certificates and starts it;
// it stops when t ends.
func startLoopbackTSA(t *testing.T, openssl, name string) *loopbackTSA {
	t.Helper()
	a := &loopbackTSA{name: name, dir: t.TempDir(), openssl: openssl}
	a.writeCredentials(t)
	a.cnf = filepath.Join(a.dir, "openssl.cnf")
	writeFile(t, filepath.Join(a.dir, "serial"), "01\n")
	// The [tsa] section of openssl.cnf(5) / ts(1). ESSCertIDv2 with SHA-256
	// names the signing certificate; replies carry it (certReq) and the
	// root (-chain).
	writeFile(t, a.cnf, fmt.Sprintf(`[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
serial = %s
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5.6, 1.2.3.4.5.7
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 0
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`, filepath.Join(a.dir, "serial")))

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	a.url = srv.URL + "/"
	t.Logf("timestamp authority %s on %s (openssl ts -reply, files in %s)", name, a.url, a.dir)
	return a
}

// writeCredentials writes the TSA's key, its certificate, and the root CA
// that issued it, as PEM.
func (a *loopbackTSA) writeCredentials(t *testing.T) {
	t.Helper()
	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"portcullis e2e"}, CommonName: a.name + " root CA"},
		NotBefore:             now.Add(-2 * time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Go writes ExtKeyUsage as a non-critical extension; RFC 3161 2.3 wants
	// it critical, with timeStamping only (openssl and sigstore-go check
	// both), so the extension is written by hand.
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(2),
		Subject:         pkix.Name{Organization: []string{"portcullis e2e"}, CommonName: a.name},
		NotBefore:       now.Add(-time.Hour),
		NotAfter:        now.Add(12 * time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, rootCert, leafKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leafCert, err := x509.ParseCertificate(leafDER)
	if err != nil {
		t.Fatal(err)
	}
	critical := false
	for _, ext := range leafCert.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 37}) {
			critical = ext.Critical
		}
	}
	if !critical || !slices.Equal(leafCert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}) {
		t.Fatalf("TSA certificate: extended key usage %v (critical %v), want timeStamping only, critical", leafCert.ExtKeyUsage, critical)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	a.rootPEM = []byte(pemOf("CERTIFICATE", rootDER))
	a.key, a.leaf = filepath.Join(a.dir, "tsa.key"), filepath.Join(a.dir, "tsa.crt")
	a.chain, a.certChain = filepath.Join(a.dir, "chain.pem"), filepath.Join(a.dir, "cert-chain.pem")
	writeFile(t, a.key, pemOf("PRIVATE KEY", keyDER))
	if err := os.Chmod(a.key, 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, a.leaf, pemOf("CERTIFICATE", leafDER))
	writeFile(t, a.chain, string(a.rootPEM))
	writeFile(t, a.certChain, pemOf("CERTIFICATE", leafDER)+string(a.rootPEM))
}

// ServeHTTP answers one timestamp request. Requests are answered one at a
// time (openssl updates the serial file).
func (a *loopbackTSA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	line := fmt.Sprintf("%s %s (%s, User-Agent %q)", r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"))
	status, resp, why := a.reply(r)
	a.mu.Lock()
	if status == http.StatusOK {
		a.replies = append(a.replies, time.Now())
		line += fmt.Sprintf(" -> %d bytes in %v", len(resp), time.Since(start).Round(time.Millisecond))
	} else {
		a.failed++
		line += fmt.Sprintf(" -> %d: %s", status, why)
	}
	a.log = append(a.log, line)
	a.mu.Unlock()
	if status != http.StatusOK {
		http.Error(w, why, status)
		return
	}
	w.Header().Set("Content-Type", "application/timestamp-reply")
	w.Write(resp)
}

// reply runs openssl ts -reply on the request body.
func (a *loopbackTSA) reply(r *http.Request) (status int, resp []byte, why string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, nil, "POST a TimeStampReq"
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || len(body) == 0 {
		return http.StatusBadRequest, nil, fmt.Sprintf("reading the request: %v (%d bytes)", err, len(body))
	}
	a.mu.Lock()
	n := len(a.log) + 1
	a.mu.Unlock()
	dir, err := os.MkdirTemp(a.dir, fmt.Sprintf("request-%03d-", n))
	if err != nil {
		return http.StatusInternalServerError, nil, err.Error()
	}
	query, out := filepath.Join(dir, "query.tsq"), filepath.Join(dir, "reply.tsr")
	if err := os.WriteFile(query, body, 0o644); err != nil {
		return http.StatusInternalServerError, nil, err.Error()
	}
	ctx, cancel := context.WithTimeout(r.Context(), tsaOpensslTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.openssl, "ts", "-reply", "-config", a.cnf, "-queryfile", query,
		"-signer", a.leaf, "-inkey", a.key, "-chain", a.chain, "-out", out)
	cmd.WaitDelay = 2 * time.Second
	a.mu.Lock() // the serial file
	combined, err := cmd.CombinedOutput()
	a.mu.Unlock()
	if err != nil {
		return http.StatusInternalServerError, nil, fmt.Sprintf("openssl ts -reply: %v: %s", err, strings.TrimSpace(string(combined)))
	}
	// openssl writes a reply for a query it rejects too (status
	// rejection); those are failures here.
	text := exec.CommandContext(ctx, a.openssl, "ts", "-reply", "-in", out, "-text")
	text.WaitDelay = 2 * time.Second
	if info, err := text.CombinedOutput(); err != nil || !strings.Contains(string(info), "Status: Granted.") {
		return http.StatusInternalServerError, nil, fmt.Sprintf("openssl did not grant the request (%v):\n%s", err, info)
	}
	if resp, err = os.ReadFile(out); err != nil {
		return http.StatusInternalServerError, nil, err.Error()
	}
	return http.StatusOK, resp, ""
}

// answered is how many timestamps the TSA has issued.
func (a *loopbackTSA) answered() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.replies)
}

// lastReply is when it last issued one.
func (a *loopbackTSA) lastReply() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.replies) == 0 {
		return time.Time{}
	}
	return a.replies[len(a.replies)-1]
}

// failures is how many requests it did not answer with a timestamp.
func (a *loopbackTSA) failures() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failed
}

// requestLog is what it answered, one request a line.
func (a *loopbackTSA) requestLog() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.log, "\n")
}

// selfCheck timestamps a file with the openssl client and verifies the
// reply against the root CA: the TSA works before cosign uses it.
func (a *loopbackTSA) selfCheck(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	data, query := filepath.Join(dir, "data"), filepath.Join(dir, "query.tsq")
	writeFile(t, data, "portcullis loopback TSA self-check\n")
	rootFile := filepath.Join(dir, "root.pem")
	writeFile(t, rootFile, string(a.rootPEM))
	run(t, nil, a.openssl, "ts", "-query", "-data", data, "-sha256", "-cert", "-out", query)
	q, err := os.ReadFile(query)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, strings.NewReader(string(q)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/timestamp-query")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", a.url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/timestamp-reply" {
		t.Fatalf("POST %s: %s (%s): %s\n%s", a.url, resp.Status, resp.Header.Get("Content-Type"), body, a.requestLog())
	}
	reply := filepath.Join(dir, "reply.tsr")
	writeFile(t, reply, string(body))
	run(t, nil, a.openssl, "ts", "-verify", "-data", data, "-in", reply, "-CAfile", rootFile, "-untrusted", a.leaf)
	t.Logf("%s: openssl ts -query / -verify round trip OK", a.name)
}

// verifyToken reports whether the RFC 3161 reply der verifies (openssl ts
// -verify against the root CA) over data.
func (a *loopbackTSA) verifyToken(t *testing.T, der, data []byte) error {
	t.Helper()
	dir := t.TempDir()
	in, df, rootFile := filepath.Join(dir, "reply.tsr"), filepath.Join(dir, "data"), filepath.Join(dir, "root.pem")
	writeFile(t, in, string(der))
	writeFile(t, df, string(data))
	writeFile(t, rootFile, string(a.rootPEM))
	r := runCmd(t.Context(), nil, a.openssl, "ts", "-verify", "-data", df, "-in", in, "-CAfile", rootFile, "-untrusted", a.leaf)
	if r.err != nil {
		return fmt.Errorf("%v: %s", r.err, strings.TrimSpace(r.stdout+r.stderr))
	}
	return nil
}

// trustedRoot writes a trusted_root.json listing only a (with cosign
// trusted-root create) and checks it with sigstore-go: one timestamp
// authority, no CA, no log.
func (a *loopbackTSA) trustedRoot(t *testing.T, c *cosignCLI, start time.Time) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "trusted_root.json")
	c.run(t, "", nil, "trusted-root", "create",
		"--tsa=url="+a.url+",certificate-chain="+a.certChain+",start-time="+start.UTC().Format(time.RFC3339),
		"--out", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		MediaType string            `json:"mediaType"`
		TSAs      []json.RawMessage `json:"timestampAuthorities"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.MediaType != "application/vnd.dev.sigstore.trustedroot+json;version=0.1" || len(doc.TSAs) != 1 {
		t.Fatalf("cosign trusted-root create wrote (%v):\n%s", err, b)
	}
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		t.Fatalf("sigstore-go reads %s: %v\n%s", out, err, b)
	}
	if n := len(tr.TimestampingAuthorities()); n != 1 || len(tr.FulcioCertificateAuthorities()) != 0 || len(tr.RekorLogs()) != 0 || len(tr.CTLogs()) != 0 {
		t.Fatalf("%s: %d TSAs, %d CAs, %d Rekor logs, %d CT logs; want the TSA only:\n%s", out, n,
			len(tr.FulcioCertificateAuthorities()), len(tr.RekorLogs()), len(tr.CTLogs()), b)
	}
	t.Logf("trusted root %s:\n%s", out, cosignIndent(string(b)))
	return out
}

// signingConfig writes a signing config whose only service is a (cosign
// signing-config create --tsa ... --tsa-config=EXACT:1).
func (a *loopbackTSA) signingConfig(t *testing.T, c *cosignCLI, start time.Time) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "signing_config.json")
	c.run(t, "", nil, "signing-config", "create",
		"--tsa=url="+a.url+",api-version=1,start-time="+start.UTC().Format(time.RFC3339)+",operator=portcullis-e2e",
		"--tsa-config=EXACT:1", "--out", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), a.url) {
		t.Fatalf("cosign signing-config create wrote no TSA %s:\n%s", a.url, b)
	}
	t.Logf("signing config %s:\n%s", out, cosignIndent(string(b)))
	return out
}

// tsaVulnPredicate is the vuln predicate every image is attested with
// (cosign decodes it into its own struct).
const tsaVulnPredicate = `{"invocation": {"uri": "https://example.com/ci/run/7", "event_id": "7", "builder.id": "https://example.com/builder@v1"},
 "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.50.0", "version": "0.50.0",
  "db": {"uri": "https://example.com/trivy-db", "version": "2"},
  "result": {"criticalCount": 0, "findings": []}},
 "metadata": {"scanStartedOn": "2026-01-01T00:00:00Z", "scanFinishedOn": "2026-01-01T00:01:00Z"}}
`
