package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/portcullis-dev/portcullis/policy"
)

// Sigstore's own conformance corpus (../realdata/sigstore-conformance):
// every case goes through the code the gate runs on a bundle (parseBundle,
// compileAuthority, materialMismatch, verifyEntity), with the trust root
// from StaticTrust and no network.

const (
	// The corpus's defaults for a case without identity or issuer files
	// (its README).
	conformanceSubject = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
	conformanceIssuer  = githubOIDC

	// The corpus's size at the commit we copied: a test that finds fewer
	// cases has lost some, rather than passed.
	conformanceCases     = 70
	conformanceFailCases = 49
)

// conformanceExceptions are the cases Portcullis decides otherwise than
// the corpus, each with why. A listed case that gives the corpus's answer
// fails the test, so the list cannot outlive its reason.
var conformanceExceptions = map[string]string{}

// conformanceCase is one folder of bundle-verify.
type conformanceCase struct {
	name string
	dir  string
	pass bool // accepted by the corpus (the name does not end in _fail)
}

// TestConformance: each case of bundle-verify is accepted or, for the 49
// named *_fail, refused, as every Sigstore client must.
func TestConformance(t *testing.T) {
	corpus := filepath.Join(realdata(t, "sigstore-conformance"), "bundle-verify")
	cases := readConformanceCases(t, corpus)
	fails := 0
	for _, c := range cases {
		if !c.pass {
			fails++
		}
	}
	if len(cases) != conformanceCases || fails != conformanceFailCases {
		t.Fatalf("%s: %d cases, %d of them _fail; want %d and %d", corpus, len(cases), fails, conformanceCases, conformanceFailCases)
	}
	for name := range conformanceExceptions {
		if !hasCase(cases, name) {
			t.Errorf("exception %q names no case of the corpus", name)
		}
	}
	defaultRoot := readFile(t, realdata(t, "trusted-root"), "trusted_root.json")
	artifact := readFile(t, corpus, "a.txt")

	requests := refuseNetwork(t)
	t.Run("bundle-verify", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				c.run(t, defaultRoot, artifact)
			})
		}
	})
	if n := requests.Load(); n != 0 {
		t.Errorf("%d HTTP requests during verification, want none", n)
	}
}

// readConformanceCases lists the case folders of the corpus (a.txt and
// README.md sit beside them).
func readConformanceCases(t *testing.T, corpus string) []conformanceCase {
	t.Helper()
	entries, err := os.ReadDir(corpus)
	if err != nil {
		t.Fatal(err)
	}
	var cases []conformanceCase
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		cases = append(cases, conformanceCase{name: e.Name(), dir: filepath.Join(corpus, e.Name()), pass: !strings.HasSuffix(e.Name(), "_fail")})
	}
	return cases
}

func hasCase(cases []conformanceCase, name string) bool {
	for _, c := range cases {
		if c.name == name {
			return true
		}
	}
	return false
}

// refuseNetwork makes http.DefaultTransport refuse and count requests
// until the test ends. Verification must need none: StaticTrust never
// fetches, and sigstore-go's Verify does no I/O. The swap is safe because
// the caller is not parallel with other top-level tests (only its own
// subtests, which run before the deferred restore).
func refuseNetwork(t *testing.T) *atomic.Int64 {
	t.Helper()
	n := new(atomic.Int64)
	saved := http.DefaultTransport
	http.DefaultTransport = refusingTransport{n}
	t.Cleanup(func() { http.DefaultTransport = saved })
	return n
}

type refusingTransport struct{ n *atomic.Int64 }

func (rt refusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.n.Add(1)
	return nil, errors.New("conformance test: no network (request to " + r.URL.String() + ")")
}

// run verifies the case with each of its authorities and compares with
// the corpus's answer.
func (c conformanceCase) run(t *testing.T, defaultRoot, defaultArtifact []byte) {
	readme := strings.TrimSpace(string(c.optional(t, "README", nil)))
	got, why := c.verify(t, defaultRoot, defaultArtifact)
	if exc, ok := conformanceExceptions[c.name]; ok {
		if got == c.pass {
			t.Fatalf("listed as an exception (%s) but now gives the corpus's answer (accepted %v): remove it from conformanceExceptions", exc, got)
		}
		t.Skipf("known exception: %s (accepted %v: %s)", exc, got, why)
	}
	t.Logf("accepted %v: %s", got, why)
	if got != c.pass {
		t.Errorf("accepted %v, want %v\ncase README: %s\nresult: %s", got, c.pass, orNone(readme), why)
	}
}

// verify reports whether the gate's verification code accepts the case
// under every authority the case implies, and what it said: the first
// answer that is not the corpus's, else the last.
func (c conformanceCase) verify(t *testing.T, defaultRoot, defaultArtifact []byte) (bool, string) {
	// A trust root or key that cannot be loaded refuses: the policy
	// would not load.
	trust, err := StaticTrust(map[string][]byte{"case": c.optional(t, "trusted_root.json", defaultRoot)})
	if err != nil {
		return false, "StaticTrust: " + err.Error()
	}
	as, err := c.authorities(t)
	if err != nil {
		return false, "key.pub: " + err.Error()
	}
	bundle := readFile(t, c.dir, "bundle.sigstore.json")
	sum := sha256.Sum256(c.optional(t, "artifact", defaultArtifact))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	var got bool
	var why string
	for _, a := range as {
		got, why = verifyConformance(a, trust, bundle, digest)
		why = a.Name + ": " + why
		if got != c.pass {
			break
		}
	}
	return got, why
}

// verifyConformance is the gate's verification of a bundle for one
// authority, without the claims checks (the corpus signs blobs, not
// images): a parse error or a material mismatch refuses as Check would.
func verifyConformance(a *policy.Authority, trust TrustProvider, bundle []byte, digest string) (bool, string) {
	au, err := compileAuthority(a, trust)
	if err != nil {
		return false, "compileAuthority: " + err.Error()
	}
	s, _, err := parseBundle(bundle)
	if err != nil {
		return false, "parseBundle: " + err.Error()
	}
	if f := au.materialMismatch(s); !f.ok() {
		return false, "materialMismatch: " + string(f.class) + ": " + f.detail
	}
	if _, f := au.verifyEntity(s, digest); !f.ok() {
		return false, "verifyEntity: " + string(f.class) + ": " + f.detail
	}
	return true, "verified"
}

// authorities are the case's authorities, on the case's trust root: for
// its key.pub, one requiring a Rekor entry (every key case's root has a
// Rekor log and its bundle an entry) and one where the key alone decides,
// which must agree; else its identity and issuer (or the corpus's
// defaults), requiring a Rekor entry and an SCT as a keyless policy does
// by default.
func (c conformanceCase) authorities(t *testing.T) ([]*policy.Authority, error) {
	if pemKey := c.optional(t, "key.pub", nil); pemKey != nil {
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
		if err != nil {
			return nil, err
		}
		key := &policy.Key{PEM: pemKey, Public: pub}
		return []*policy.Authority{
			{Name: "key, requireTlog", Key: key, RequireTlog: true, TrustRoot: "case"},
			{Name: "key only", Key: key, TrustRoot: "case"},
		}, nil
	}
	id := policy.Identity{
		Issuer:  strings.TrimSpace(string(c.optional(t, "issuer", []byte(conformanceIssuer)))),
		Subject: strings.TrimSpace(string(c.optional(t, "identity", []byte(conformanceSubject)))),
	}
	return []*policy.Authority{{Name: "keyless", Keyless: &policy.Keyless{Identities: []policy.Identity{id}, RequireSCT: true},
		RequireTlog: true, TrustRoot: "case"}}, nil
}

// optional reads the case's file name, or returns def when it has none.
func (c conformanceCase) optional(t *testing.T, name string, def []byte) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, name))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return def
	case err != nil:
		t.Fatal(err)
	}
	return b
}
