package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
)

// recordingGate denies what its deny set names and records what it was asked.
type recordingGate struct {
	mu      sync.Mutex
	asked   []string
	deny    map[string]bool // digests
	broken  bool
	digests map[string][]byte
}

func (g *recordingGate) CheckManifest(_ context.Context, repo Repository, _ string, m *oci.Manifest) (bool, []Repository, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, "manifest "+repo.String()+"@"+m.Digest.String())
	if g.digests == nil {
		g.digests = map[string][]byte{}
	}
	g.digests[m.Digest.String()] = m.Bytes
	err := g.verdict(m.Digest)
	return err == nil, nil, err
}

func (g *recordingGate) CheckBlob(_ context.Context, repo Repository, d v1.Hash) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, "blob "+repo.String()+"@"+d.String())
	return 0, g.verdict(d)
}

func (g *recordingGate) CheckReferrers(_ context.Context, repo Repository, d v1.Hash, _ []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked = append(g.asked, "referrers "+repo.String()+"@"+d.String())
	return g.verdict(d)
}

func (g *recordingGate) verdict(d v1.Hash) error {
	if g.broken {
		return errors.New("signature store unreachable")
	}
	if g.deny[d.String()] {
		return &DeniedError{Message: "image " + d.String() + " is not signed", Detail: map[string]any{"policy": "test"}}
	}
	return nil
}

func TestGate(t *testing.T) {
	g := &recordingGate{}
	f := newFixture(t, WithGate(g))
	g.deny = map[string]bool{f.appDigest: true, f.layerHex: true}

	for _, method := range []string{"GET", "HEAD"} {
		for _, ref := range []string{"v1", f.appDigest} {
			resp, body := f.proxy.do(t, method, "/v2/registry.example/acme/app/manifests/"+ref, nil)
			mustEqual(t, method+" "+ref+" status", resp.StatusCode, 403)
			if resp.Header.Get("Docker-Content-Digest") != "" {
				t.Fatal("a refusal carries Docker-Content-Digest")
			}
			if method == "HEAD" {
				mustEqual(t, "HEAD body", string(body), "")
				continue
			}
			var e struct {
				Errors []struct {
					Code, Message string
					Detail        map[string]any
				}
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, "code", e.Errors[0].Code, "DENIED")
			mustEqual(t, "message", e.Errors[0].Message, "image "+f.appDigest+" is not signed")
			mustEqual(t, "detail", e.Errors[0].Detail["policy"], "test")
		}
	}
	blobs := f.reg.count("GET", "/v2/acme/app/blobs/"+f.layerHex)
	resp, _ := f.proxy.do(t, "GET", "/v2/registry.example/acme/app/blobs/"+f.layerHex, nil)
	mustEqual(t, "denied blob", resp.StatusCode, 403)
	mustEqual(t, "upstream blob GETs for a denied blob", f.reg.count("GET", "/v2/acme/app/blobs/"+f.layerHex)-blobs, 0)

	// The gate sees the exact bytes that are served, with their digest.
	mustEqual(t, "gate saw the manifest bytes", g.digests[f.appDigest], f.app)
	if !strings.Contains(strings.Join(g.asked, "\n"), "manifest registry.example/acme/app@"+f.appDigest) {
		t.Fatalf("gate was asked: %v", g.asked)
	}

	// A gate that cannot decide: 503, never an allow.
	g.mu.Lock()
	g.deny, g.broken = nil, true
	g.mu.Unlock()
	resp, body := f.proxy.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", nil)
	mustEqual(t, "undecided status", resp.StatusCode, 503)
	mustEqual(t, "undecided code", errorCode(t, body), "UNAVAILABLE")

	g.mu.Lock()
	g.broken = false
	g.mu.Unlock()
	resp, body = f.proxy.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", nil)
	mustEqual(t, "allowed status", resp.StatusCode, 200)
	mustEqual(t, "allowed body", body, f.app)
}
