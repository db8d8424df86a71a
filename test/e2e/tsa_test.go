//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// Attestations with a verified signing time from an RFC 3161 timestamp: a
// key authority with a trustRoot whose only service is a timestamp
// authority, and attestation requirements with maxAge (policy/attestation.go,
// verify/attest.go).
//
// The timestamp authority is made of real parts, on loopback: `openssl ts
// -reply` (the machine's OpenSSL) behind a small HTTP handler, with a key
// and certificate chain generated here (a root CA and a leaf whose extended
// key usage is timeStamping, critical, as RFC 3161 and sigstore-go require).
// `cosign trusted-root create --tsa` makes the trusted root that lists it,
// `cosign signing-config create --tsa` the signing config that makes cosign
// v3 bundles carry its timestamps, and `--timestamp-server-url` makes the
// legacy .att layers carry them. Every cosign command is sealed from the
// network (cosignCLI); the test counts the requests the TSA answered.

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

// tsaAuthority and tsaAttestation are the names the test policies use.
const (
	tsaAuthority   = "scan-key"
	tsaAttestation = "scan"
)

// tsaPolicy requires of every image under registry.example/tsa/ a vuln
// attestation signed by the key in cosign.pub, no older than maxAge by the
// signing time the TSA in trusted_root.json vouches for.
func tsaPolicy(maxAge string) string {
	return fmt.Sprintf(`trustRoots:
  - name: loopback-tsa
    trustedRootFile: trusted_root.json
policies:
  - name: fresh-scan
    images: ["registry.example/tsa/**"]
    authorities:
      - name: %s
        key: {path: cosign.pub}
        trustRoot: loopback-tsa
        attestations:
          - name: %s
            predicateType: vuln
            maxAge: %s
default: deny
`, tsaAuthority, tsaAttestation, maxAge)
}

// startTSAProxy starts a proxy in front of e's upstreams with
// tsaPolicy(maxAge), trusting the key pub and the trusted root at trusted.
func startTSAProxy(t *testing.T, e *env, pub, trusted, maxAge string) *proxyProc {
	t.Helper()
	dir := t.TempDir()
	for src, dst := range map[string]string{pub: "cosign.pub", trusted: "trusted_root.json"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, dst), string(b))
	}
	writeFile(t, filepath.Join(dir, "policy.yaml"), tsaPolicy(maxAge))
	p := e.startProxyIn(t, dir, gatedConfig)
	t.Logf("proxy %s: policy with maxAge %s", p.addr, maxAge)
	return p
}

// tsaCase is one image, attested one way.
type tsaCase struct {
	repo   string // under registry.example/tsa/<run>/
	tool   string // cosign, cosign-v2
	bundle bool   // a v0.3 bundle referrer, else a legacy .att layer
	// stamp is the TSA cosign asks for a timestamp (nil: none); trusted
	// whether the policy's trusted root lists it.
	stamp   *loopbackTSA
	trusted bool
	args    func() []string // the format and timestamp flags of cosign attest
}

// timed reports whether the proxy should find a verified signing time.
func (c tsaCase) timed() bool { return c.stamp != nil && c.trusted }

// tsaDecision is a decision line with the signing time fields.
type tsaDecision struct {
	Msg               string `json:"msg"`
	Image             string `json:"image"`
	Digest            string `json:"digest"`
	Result            string `json:"result"`
	Message           string `json:"message"`
	Identity          string `json:"identity"`
	SignedAt          any    `json:"signedAt"`
	SigningTimeSource string `json:"signingTimeSource"`
}

// tsaDecisions are p's decision lines for image@digest so far.
func tsaDecisions(t *testing.T, p *proxyProc, image string, d v1.Hash) []tsaDecision {
	t.Helper()
	f, err := os.Open(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tsaDecision
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var l tsaDecision
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "decision" && l.Image == image && l.Digest == d.String() {
			out = append(out, l)
		}
	}
	return out
}

// waitTSADecision waits up to 5s for p's n-th (1-based) decision on
// image@digest.
func waitTSADecision(t *testing.T, p *proxyProc, image string, d v1.Hash, n int) tsaDecision {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ds := tsaDecisions(t, p, image, d); len(ds) >= n {
			return ds[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision %d on %s@%s in %s", n, image, d, p.LogPath())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedAttestation is one attestation cosign pushed: its RFC 3161
// timestamps and the bytes they may cover.
type storedAttestation struct {
	where      string
	timestamps [][]byte
	signature  []byte // the DSSE signature (what sigstore-go checks a timestamp over)
	envelope   []byte // legacy only: the whole DSSE envelope, the layer (what cosign's verifiers check it over)
}

// tsaStored reads back what cosign pushed for repo@d on the upstream at
// addr: the bundle referrers of the sha256-<hex> fallback index, or the
// layers of the sha256-<hex>.att tag.
func tsaStored(t *testing.T, addr, repo string, d v1.Hash, bundle bool) []storedAttestation {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	tag := "sha256-" + d.Hex
	if !bundle {
		tag += ".att"
	}
	ref, err := name.ParseReference(addr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var manifests []name.Reference
	if bundle {
		idx, err := remote.Index(ref, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s (the referrers fallback index): %v", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, desc := range im.Manifests {
			manifests = append(manifests, ref.Context().Digest(desc.Digest.String()))
		}
	} else {
		manifests = []name.Reference{ref}
	}
	type envelope struct {
		Signatures []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	}
	var out []storedAttestation
	for _, mref := range manifests {
		img, err := remote.Image(mref, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s: %v", mref, err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range m.Layers {
			layer, err := img.LayerByDigest(l.Digest)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := layer.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			sa := storedAttestation{where: fmt.Sprintf("%s layer %d (%s)", mref, i, l.MediaType)}
			var env envelope
			if bundle {
				var bdl struct {
					VerificationMaterial struct {
						TimestampVerificationData struct {
							RFC3161Timestamps []struct {
								SignedTimestamp []byte `json:"signedTimestamp"`
							} `json:"rfc3161Timestamps"`
						} `json:"timestampVerificationData"`
					} `json:"verificationMaterial"`
					DSSEEnvelope envelope `json:"dsseEnvelope"`
				}
				if err := json.Unmarshal(b, &bdl); err != nil {
					t.Fatalf("%s: not a bundle: %v", sa.where, err)
				}
				for _, ts := range bdl.VerificationMaterial.TimestampVerificationData.RFC3161Timestamps {
					sa.timestamps = append(sa.timestamps, ts.SignedTimestamp)
				}
				env = bdl.DSSEEnvelope
			} else {
				if err := json.Unmarshal(b, &env); err != nil {
					t.Fatalf("%s: not a DSSE envelope: %v", sa.where, err)
				}
				sa.envelope = b
				if ann := l.Annotations["dev.sigstore.cosign/rfc3161timestamp"]; ann != "" {
					var ts struct {
						SignedRFC3161Timestamp []byte `json:"SignedRFC3161Timestamp"`
					}
					if err := json.Unmarshal([]byte(ann), &ts); err != nil {
						t.Fatalf("%s: rfc3161timestamp annotation %q: %v", sa.where, ann, err)
					}
					sa.timestamps = append(sa.timestamps, ts.SignedRFC3161Timestamp)
				}
			}
			if len(env.Signatures) > 0 {
				if sa.signature, err = base64.StdEncoding.DecodeString(env.Signatures[0].Sig); err != nil {
					t.Fatalf("%s: DSSE signature: %v", sa.where, err)
				}
			}
			out = append(out, sa)
		}
	}
	return out
}

// TestTSAAttestMaxAge: attestations timestamped by a loopback TSA pass a
// key authority's maxAge while young, are refused ("older than") once
// older, and attestations without a timestamp from a trusted TSA are
// refused ("no verified signing time") whatever their age. A verdict resting
// on maxAge is not cached past the age.
func TestTSAAttestMaxAge(t *testing.T) {
	e := setup(t)
	e.needProxy(t)
	began := time.Now()
	openssl := needTool(t, "openssl")
	v3 := needCosign(t, "cosign", "v3.1.3")
	v2 := needCosign(t, "cosign-v2", "v2.6.5")
	clis := map[string]*cosignCLI{"cosign": v3, "cosign-v2": v2}

	tsa := startLoopbackTSA(t, openssl, "loopback-tsa")
	rogue := startLoopbackTSA(t, openssl, "rogue-tsa") // not in the policy's trusted root
	tsa.selfCheck(t)
	validFrom := time.Now().Add(-time.Hour)
	trusted := tsa.trustedRoot(t, v3, validFrom)
	sc := tsa.signingConfig(t, v3, validFrom)
	rogueTrusted := rogue.trustedRoot(t, v3, validFrom) // for cosign only
	rogueSC := rogue.signingConfig(t, v3, validFrom)
	key := v3.generateKeyPair(t, "scan") // cosign v2 reads v3's keys
	pred := filepath.Join(t.TempDir(), "vuln.json")
	writeFile(t, pred, tsaVulnPredicate)

	// The offline flags of cosignVersions, and the timestamp flags. With a
	// signing config (no log in it), cosign v3 needs no --tlog-upload=false.
	v3Legacy := []string{"--new-bundle-format=false", "--use-signing-config=false", "--tlog-upload=false"}
	cases := []tsaCase{
		{repo: "v3-bundle", tool: "cosign", bundle: true, stamp: tsa, trusted: true,
			args: func() []string { return []string{"--signing-config", sc, "--trusted-root", trusted} }},
		{repo: "v3-legacy", tool: "cosign", stamp: tsa, trusted: true,
			args: func() []string { return append(slices.Clone(v3Legacy), "--timestamp-server-url", tsa.url) }},
		{repo: "v2-legacy", tool: "cosign-v2", stamp: tsa, trusted: true, // timestamps the whole envelope, not the signature

			args: func() []string { return []string{"--tlog-upload=false", "--timestamp-server-url", tsa.url} }},
		{repo: "v2-bundle", tool: "cosign-v2", bundle: true, stamp: tsa, trusted: true,
			args: func() []string {
				return []string{"--new-bundle-format", "--signing-config", sc, "--trusted-root", trusted}
			}},
		// No timestamp at all.
		{repo: "v3-bundle-untimed", tool: "cosign", bundle: true,
			args: func() []string { return []string{"--use-signing-config=false", "--tlog-upload=false"} }},
		{repo: "v2-legacy-untimed", tool: "cosign-v2",
			args: func() []string { return []string{"--tlog-upload=false"} }},
		// A timestamp from a TSA the policy's trusted root does not list
		// (cosign v3 checks it after signing with a root that does).
		{repo: "v3-bundle-rogue", tool: "cosign", bundle: true, stamp: rogue,
			args: func() []string { return []string{"--signing-config", rogueSC, "--trusted-root", rogueTrusted} }},
		{repo: "v2-legacy-rogue", tool: "cosign-v2", stamp: rogue,
			args: func() []string { return []string{"--tlog-upload=false", "--timestamp-server-url", rogue.url} }},
	}
	upstream := e.upstreams["registry.example"].addr
	// The repositories are new to each run (-count=2 shares the upstream;
	// cosign adds to the attestations a digest already has).
	base := "tsa/" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/"
	digests := make([]v1.Hash, len(cases))
	// When cosign attested each image: the TSA's time must fall inside.
	signedFrom, signedTo := make([]time.Time, len(cases)), make([]time.Time, len(cases))

	// A proxy with maxAge 1h, started before anything is signed.
	young := startTSAProxy(t, e, key.pub, trusted, "1h")

	for i, c := range cases {
		repo := base + c.repo
		digests[i] = cosignImage(t, upstream, "registry.example/"+repo, "v1")
		before := map[*loopbackTSA]int{tsa: tsa.answered(), rogue: rogue.answered()}
		args := append([]string{"attest", "--key", key.priv, "--type", "vuln", "--predicate", pred, "--allow-http-registry", "-y"}, c.args()...)
		signedFrom[i] = time.Now()
		clis[c.tool].run(t, "", nil, append(args, upstream+"/"+repo+"@"+digests[i].String())...)
		signedTo[i] = time.Now()
		for _, a := range []*loopbackTSA{tsa, rogue} {
			want := 0
			if a == c.stamp {
				want = 1
			}
			if got := a.answered() - before[a]; got != want {
				t.Errorf("%s: %s issued %d timestamps during cosign attest, want %d; its requests:\n%s", c.repo, a.name, got, want, a.requestLog())
			}
		}
		// What cosign pushed: the timestamp, and what it covers.
		for _, sa := range tsaStored(t, upstream, repo, digests[i], c.bundle) {
			if c.stamp == nil {
				if len(sa.timestamps) != 0 {
					t.Errorf("%s: %s carries %d timestamps; cosign was given no TSA", c.repo, sa.where, len(sa.timestamps))
				}
				t.Logf("%s: %s: no timestamp, as asked", c.repo, sa.where)
				continue
			}
			if len(sa.timestamps) != 1 {
				t.Errorf("%s: %s carries %d RFC 3161 timestamps, want 1", c.repo, sa.where, len(sa.timestamps))
				continue
			}
			overSig := c.stamp.verifyToken(t, sa.timestamps[0], sa.signature)
			covers := "the DSSE signature"
			switch {
			case overSig != nil && sa.envelope != nil:
				if overEnv := c.stamp.verifyToken(t, sa.timestamps[0], sa.envelope); overEnv == nil {
					covers = "the whole DSSE envelope (the layer), not the signature"
				} else {
					t.Errorf("%s: %s: the timestamp covers neither the DSSE signature (%v) nor the envelope (%v)", c.repo, sa.where, overSig, overEnv)
				}
			case overSig != nil:
				t.Errorf("%s: %s: the timestamp does not cover the DSSE signature: %v", c.repo, sa.where, overSig)
			}
			t.Logf("%s: %s: one RFC 3161 timestamp from %s (openssl ts -verify: over %s)", c.repo, sa.where, c.stamp.name, covers)
		}
	}
	t.Logf("timestamp requests to %s:\n%s\nto %s:\n%s", tsa.name, cosignIndent(tsa.requestLog()), rogue.name, cosignIndent(rogue.requestLog()))
	for _, a := range []*loopbackTSA{tsa, rogue} {
		if n := a.failures(); n > 0 {
			t.Errorf("%s failed %d requests:\n%s", a.name, n, a.requestLog())
		}
	}
	if t.Failed() {
		return
	}
	attested := time.Now()

	// signedWithin checks that a signing time the proxy reports (RFC 3339)
	// is when cosign attested case i, by the TSA's clock (this one, to the
	// second).
	signedWithin := func(t *testing.T, what string, i int, ts string) {
		t.Helper()
		at, err := time.Parse(time.RFC3339Nano, ts)
		from, to := signedFrom[i].Add(-time.Second).Truncate(time.Second), signedTo[i].Add(time.Second)
		if err != nil || at.Before(from) || at.After(to) {
			t.Errorf("%s: signed at %q (%v); cosign attested between %s and %s", what, ts, err,
				signedFrom[i].UTC().Format(time.RFC3339Nano), signedTo[i].UTC().Format(time.RFC3339Nano))
		}
	}

	// check GETs every image through p (all first: the proxy flushes its
	// log every second), then checks each answer: a timed image served
	// (young) or refused as older than maxAge, the others refused for want
	// of a verified signing time.
	check := func(t *testing.T, p *proxyProc, maxAge string, young bool) {
		t.Helper()
		responses := make([]httpResult, len(cases))
		for i, c := range cases {
			responses[i] = registryGet(t, http.MethodGet, p.addr, manifestPath("registry.example/"+base+c.repo+":v1", ""))
		}
		needs := fmt.Sprintf("needs attestation %q (vuln) from authority %q: found 1, ", tsaAttestation, tsaAuthority)
		const noTime = "no verified signing time"
		for i, c := range cases {
			t.Run(c.repo, func(t *testing.T) {
				image := "registry.example/" + base + c.repo
				r := responses[i]
				what := fmt.Sprintf("GET %s:v1 (maxAge %s)", image, maxAge)
				d := waitTSADecision(t, p, image, digests[i], 1)
				switch {
				case c.timed() && young:
					if r.status != http.StatusOK || sha256Digest(r.body) != digests[i].String() {
						t.Fatalf("%s: %d, body hashes to %s; want 200 with %s\n%s", what, r.status, sha256Digest(r.body), digests[i], r.body)
					}
					signedAt, _ := d.SignedAt.(string)
					if d.Result != "allow" || !strings.Contains(d.Identity, "attestation") || d.SigningTimeSource != "TimestampAuthority" {
						t.Errorf("%s: decision %+v, want allow on the attestation, signed at a time from the TSA", what, d)
					}
					signedWithin(t, what, i, signedAt)
					cosignPull(t, p.addr+"/"+image+":v1") // manifest, config and layers
					t.Logf("%s: served; signed at %s (%s); %s", what, signedAt, d.SigningTimeSource, d.Identity)
				case c.timed():
					prefix := needs + "older than " + maxAge + ": signed "
					msg := wantDenied(t, what, r, prefix)
					if _, rest, ok := strings.Cut(msg, prefix); ok {
						ts, _, _ := strings.Cut(rest, " ")
						signedWithin(t, what, i, ts)
					}
					if d.Result != "deny" {
						t.Errorf("%s: decision %+v, want deny", what, d)
					}
					t.Logf("%s: refused: %s", what, msg)
				default:
					msg := wantDenied(t, what, r, needs+noTime)
					if d.Result != "deny" {
						t.Errorf("%s: decision %+v, want deny", what, d)
					}
					t.Logf("%s: refused: %s", what, msg)
				}
			})
		}
	}

	t.Run("maxAge-1h", func(t *testing.T) {
		check(t, young, "1h", true)
		// cosign too verifies the timestamped bundle through the proxy with
		// the same trusted root (the TSA, no log).
		v3.run(t, "", nil, "verify-attestation", "--key", key.pub, "--type", "vuln", "--trusted-root", trusted,
			"--insecure-ignore-tlog=true", "--allow-http-registry", "--use-signed-timestamps",
			young.addr+"/registry.example/"+base+"v3-bundle@"+digests[0].String())
	})

	t.Run("maxAge-2s", func(t *testing.T) {
		// A fresh proxy (no verdict cached), once every timestamp is more
		// than 2s old: 3s after the TSA's last reply.
		if wait := time.Until(tsa.lastReply().Add(3 * time.Second)); wait > 0 {
			t.Logf("waiting %v for the timestamps to age", wait.Round(time.Millisecond))
			time.Sleep(wait)
		}
		check(t, startTSAProxy(t, e, key.pub, trusted, "2s"), "2s", false)
	})

	// What cosign itself makes of the legacy timestamps (cosign v3.1.3
	// verify-attestation with the policy's trusted root; cosign v2.6.5
	// panics when a timestamp fails to verify): it reads a legacy
	// attestation's timestamp as covering the whole envelope, so it accepts
	// cosign v2's and refuses its own (v3.1.3 writes it over the
	// signature) and the rogue TSA's.
	t.Run("cosign-verify-legacy", func(t *testing.T) {
		for i, c := range cases {
			if c.bundle || c.stamp == nil {
				continue
			}
			r := v3.exec(t, "", nil, "verify-attestation", "--key", key.pub, "--type", "vuln", "--trusted-root", trusted,
				"--insecure-ignore-tlog=true", "--allow-http-registry", "--use-signed-timestamps",
				upstream+"/"+base+c.repo+"@"+digests[i].String())
			switch {
			case c.repo == "v2-legacy" && r.err != nil:
				t.Errorf("cosign verify-attestation --use-signed-timestamps of %s: %v\n%s", c.repo, r.err, r.stderr)
			case c.repo == "v2-legacy-rogue" && r.err == nil:
				t.Errorf("cosign verify-attestation --use-signed-timestamps of %s passed; its TSA is not in the trusted root", c.repo)
			}
			verdict := "verified"
			if r.err != nil {
				verdict = "refused: " + strings.TrimSpace(r.stderr)
			}
			t.Logf("cosign verify-attestation --use-signed-timestamps of %s: %s", c.repo, verdict)
		}
	})

	// A verdict resting on maxAge is cached no longer than the age: a
	// proxy with maxAge 6s serves a just-attested image (then from its
	// cache), and refuses it once older, without a restart.
	t.Run("cached-allow-expires", func(t *testing.T) {
		const maxAge = 6 * time.Second
		p := startTSAProxy(t, e, key.pub, trusted, maxAge.String())
		repo := base + "expiring"
		image := "registry.example/" + repo
		d := cosignImage(t, upstream, image, "v1")
		before := tsa.answered()
		v3.run(t, "", nil, "attest", "--key", key.priv, "--type", "vuln", "--predicate", pred, "--allow-http-registry", "-y",
			"--signing-config", sc, "--trusted-root", trusted, upstream+"/"+repo+"@"+d.String())
		if tsa.answered() != before+1 {
			t.Fatalf("cosign attest asked %s for %d timestamps, want 1", tsa.name, tsa.answered()-before)
		}
		stamped := tsa.lastReply()
		get := func() httpResult { return registryGet(t, http.MethodGet, p.addr, manifestPath(image+":v1", "")) }
		r := get()
		if age := time.Since(stamped); age > maxAge-2*time.Second {
			t.Skipf("the first pull came %v after the timestamp, too close to maxAge %v to tell a cached verdict from a new one", age, maxAge)
		}
		if r.status != http.StatusOK || sha256Digest(r.body) != d.String() {
			t.Fatalf("GET %s:v1 %v after its timestamp: %d, want 200 with %s\n%s", image, time.Since(stamped).Round(time.Millisecond), r.status, d, r.body)
		}
		if r := get(); r.status != http.StatusOK {
			t.Errorf("GET %s:v1 again: %d, want 200\n%s", image, r.status, r.body)
		}
		// The TSA's time has one-second precision: wait until the
		// attestation is surely older than maxAge.
		time.Sleep(time.Until(stamped.Add(maxAge + 1500*time.Millisecond)))
		what := fmt.Sprintf("GET %s:v1 %v after its timestamp", image, time.Since(stamped).Round(time.Millisecond))
		msg := wantDenied(t, what, get(), fmt.Sprintf("found 1, older than %s: signed ", maxAge))
		t.Logf("%s: refused: %s", what, msg)
		// Two decisions: the allow (the second GET was answered from the
		// cache) and, once the age passed, the deny.
		waitTSADecision(t, p, image, d, 2)
		ds := tsaDecisions(t, p, image, d)
		if len(ds) != 2 || ds[0].Result != "allow" || ds[1].Result != "deny" {
			t.Errorf("decisions on %s@%s: %+v; want an allow, then a deny", image, d, ds)
		}
		for i, l := range ds {
			t.Logf("decision %d: %s (signed at %v): %s", i+1, l.Result, l.SignedAt, l.Message)
		}
	})
	t.Logf("attested %d images in %v; checks took %v", len(cases), attested.Sub(began).Round(time.Millisecond), time.Since(attested).Round(time.Millisecond))
}
