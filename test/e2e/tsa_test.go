//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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
