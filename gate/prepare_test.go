package gate

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/verify"
)

// waitFor polls cond for up to 10 s (a discovery started in the
// background), failing the test with what if it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// prepared starts finding p's signatures ahead and waits until it has
// asked the registry; the caller calls the release it returns.
func (f *gateFixture) prepared(t *testing.T, p *pushed) (release func()) {
	t.Helper()
	before := f.reader.referrers.Load()
	release = f.gate.PrepareManifest(context.Background(), f.repo, p.digest)
	waitFor(t, "the discovery started ahead", func() bool { return f.reader.referrers.Load() > before })
	return release
}

func (g *Gate) preparedCount() int {
	g.prep.mu.Lock()
	defer g.prep.mu.Unlock()
	return len(g.prep.m)
}

// TestPrepareDiscoversOnce: a manifest asked for by digest has its
// signatures found while its bytes are fetched (before the decision is
// asked), and the decision uses what was found: nothing is looked up twice.
func TestPrepareDiscoversOnce(t *testing.T) {
	forBothRegistries(t, func(t *testing.T, referrers bool) {
		f := newGateFixture(t, referrers)
		for _, p := range []*pushed{f.legacy, f.bundled, f.unsigned} {
			before := f.reader.referrers.Load()
			release := f.prepared(t, p)
			v := f.decide(t, p.digest.String(), p)
			release()
			if want := p != f.unsigned; v.Allowed() != want {
				t.Errorf("%s: allowed %v, want %v: %s", p.digest, v.Allowed(), want, v.Message())
			}
			if n := f.reader.referrers.Load() - before; n != 1 {
				t.Errorf("%s: %d referrers lookups, want 1 (the one started ahead)", p.digest, n)
			}
			if n := f.gate.preparedCount(); n != 0 {
				t.Errorf("%d discoveries still held after the request", n)
			}
		}
	})
}

// TestPrepareGrantsNothing: what was found ahead is claims; the decision
// checks them under the policy in force when it runs. A signature that
// verified under the old policy refuses under the new one, and one by
// another key refuses as it would have.
func TestPrepareGrantsNothing(t *testing.T) {
	f := newGateFixture(t, true)
	release := f.gate.PrepareManifest(context.Background(), f.repo, f.wrongKey.digest)
	if v := f.decide(t, f.wrongKey.digest.String(), f.wrongKey); v.Allowed() {
		t.Fatalf("signed by another key, prepared: allowed: %s", v.Message())
	}
	release()

	defer f.prepared(t, f.legacy)()
	// Reload to a policy trusting only a key that signed nothing.
	pem, err := newSignerPEM(t)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, f.dir, "cosign.pub", pem)
	f.gate.SetSnapshot(f.snapshot(t))
	if v := f.decide(t, f.legacy.digest.String(), f.legacy); v.Allowed() {
		t.Fatalf("found ahead under a policy since replaced: allowed: %s", v.Message())
	}
}

// TestPrepareAfterPurge: a discovery started before a purge is not used by
// a decision after it (it may have read what the purge was for).
func TestPrepareAfterPurge(t *testing.T) {
	f := newGateFixture(t, true)
	before := f.reader.referrers.Load()
	defer f.prepared(t, f.legacy)()
	if _, err := f.gate.Purge(context.Background(), nil, false); err != nil {
		t.Fatal(err)
	}
	if !f.decide(t, f.legacy.digest.String(), f.legacy).Allowed() {
		t.Fatal("legacy refused")
	}
	if n := f.reader.referrers.Load() - before; n != 2 {
		t.Errorf("%d referrers lookups, want 2: the decision after the purge looks again", n)
	}
}

// TestPrepareSkips: nothing is looked up ahead for a manifest whose allow
// is fresh, whose policy needs no signature, or that a request released
// before a decision took it; and no more than maxPrepared are held.
func TestPrepareSkips(t *testing.T) {
	f := newGateFixture(t, true)
	if !f.decide(t, f.legacy.digest.String(), f.legacy).Allowed() {
		t.Fatal("legacy refused")
	}
	before := f.reader.referrers.Load()
	f.gate.PrepareManifest(context.Background(), f.repo, f.legacy.digest)()
	if n := f.gate.preparedCount(); n != 0 || f.reader.referrers.Load() != before {
		t.Errorf("a fresh allow: %d held, %d lookups", n, f.reader.referrers.Load()-before)
	}

	// Released before any decision: dropped, and the decision looks itself.
	release := f.gate.PrepareManifest(context.Background(), f.repo, f.unsigned.digest)
	release()
	release() // a second call is harmless
	if n := f.gate.preparedCount(); n != 0 {
		t.Errorf("released: %d still held", n)
	}
	before = f.reader.referrers.Load()
	f.decide(t, f.unsigned.digest.String(), f.unsigned)
	if f.reader.referrers.Load() == before {
		t.Error("a discovery released before the decision was used by it")
	}

	writeTestFile(t, f.dir, "policy.yaml", "policies:\n  - name: open\n    images: [\""+f.host+"/acme/**\"]\n    allow: unsigned\n")
	f.gate.SetSnapshot(f.snapshot(t))
	before = f.reader.referrers.Load() + f.reader.manifests.Load()
	release = f.gate.PrepareManifest(context.Background(), f.repo, f.bundled.digest)
	if !f.decide(t, f.bundled.digest.String(), f.bundled).Allowed() {
		t.Fatal("allow: unsigned refused")
	}
	release()
	if n := f.reader.referrers.Load() + f.reader.manifests.Load() - before; n != 0 {
		t.Errorf("a policy that needs no signature: %d lookups ahead", n)
	}

	g := f.gate
	g.prep.mu.Lock()
	for i := range maxPrepared {
		g.prep.m[prepKey{repo: verify.Repository{Registry: "full", Name: strings.Repeat("a", i+1)}}] = &prepared{}
	}
	g.prep.mu.Unlock()
	g.PrepareManifest(context.Background(), f.repo, f.wrongKey.digest)()
	if n := g.preparedCount(); n != maxPrepared {
		t.Errorf("%d held, want the bound %d", n, maxPrepared)
	}
}

// TestPrepareHerd: concurrent requests for one manifest by digest share
// one discovery started ahead and one decision.
func TestPrepareHerd(t *testing.T) {
	f := newGateFixture(t, true)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			release := f.gate.PrepareManifest(context.Background(), f.repo, f.bundled.digest)
			defer release()
			v, err := f.gate.Manifest(context.Background(), &ManifestRequest{Repo: f.repo, Reference: f.bundled.digest.String(), Digest: f.bundled.digest, Bytes: f.bundled.bytes})
			if err != nil || !v.Allowed() {
				t.Errorf("herd: %v %v", v, err)
			}
		})
	}
	wg.Wait()
	if n := f.reader.referrers.Load(); n != 1 {
		t.Errorf("%d referrers lookups for 32 requests, want 1", n)
	}
	if n := f.gate.preparedCount(); n != 0 {
		t.Errorf("%d still held", n)
	}
}

// TestPrepareFollowsTheSource: a reload that moves where an image's
// signatures are read from (signaturesFrom) makes the decision read there,
// not use what was found ahead in the old place.
func TestPrepareFollowsTheSource(t *testing.T) {
	f := newGateFixture(t, true)
	defer f.prepared(t, f.legacy)()
	moved := strings.Replace(strings.ReplaceAll(keyPolicy, "HOST", f.host),
		"      - name: release-key\n", "      - name: release-key\n        signaturesFrom: "+f.host+"/signatures/app\n", 1)
	writeTestFile(t, f.dir, "policy.yaml", moved)
	f.gate.SetSnapshot(f.snapshot(t))
	v := f.decide(t, f.legacy.digest.String(), f.legacy)
	if v.Allowed() || !strings.Contains(v.Message(), "no signatures found") {
		t.Fatalf("signatures found ahead in acme/app, read from signatures/app since the reload: %s", v.Message())
	}
}
