package gate

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

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

// TestPrepareAcrossReload (found in review): requests that overlap keep a
// discovery held; one that ended before a reload and an upstream deletion
// of the signature is not what the decision after them reads. The image
// is signed by a key the first policy does not trust (denied, cached);
// its .sig is deleted upstream and the policy reloaded to trust that key:
// the decision reads afresh and finds no signature.
func TestPrepareAcrossReload(t *testing.T) {
	f := newGateFixture(t, true)
	signedWith, _ := f.signer.PublicKeyPEM()
	pem, err := newSignerPEM(t)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, f.dir, "cosign.pub", pem)
	f.gate.SetSnapshot(f.snapshot(t))
	if f.decide(t, f.legacy.digest.String(), f.legacy).Allowed() {
		t.Fatal("allowed under a policy trusting another key")
	}
	k := prepKey{f.repo, f.legacy.digest}
	held := func() *prepared { f.gate.prep.mu.Lock(); defer f.gate.prep.mu.Unlock(); return f.gate.prep.m[k] }
	// The denial is fresh: nothing is read ahead.
	before := f.reader.referrers.Load()
	relA := f.gate.PrepareManifest(context.Background(), f.repo, f.legacy.digest)
	if held() != nil || f.reader.referrers.Load() != before {
		t.Fatal("read ahead for a manifest whose denial is fresh")
	}
	relA()
	if _, err := f.gate.Purge(context.Background(), nil, true); err != nil { // the denial goes
		t.Fatal(err)
	}
	relA = f.prepared(t, f.legacy)
	waitFor(t, "the discovery ahead to end", func() bool { return held().finished() })
	relB := f.gate.PrepareManifest(context.Background(), f.repo, f.legacy.digest) // overlaps A
	relA()
	defer relB()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+f.host+"/v2/acme/app/manifests/"+legacyTag(f.legacy.digest), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("deleting the .sig upstream: %v %v", resp, err)
	}
	resp.Body.Close()
	writeTestFile(t, f.dir, "cosign.pub", string(signedWith))
	f.gate.SetSnapshot(f.snapshot(t))
	if v := f.decide(t, f.legacy.digest.String(), f.legacy); v.Allowed() {
		t.Fatalf("allowed on a signature deleted upstream before the reload: %s", v.Message())
	}
}

// TestPrepareTakes: a discovery ahead is taken only when it is what the
// decision would read now; each other case discovers afresh.
func TestPrepareTakes(t *testing.T) {
	f := newGateFixture(t, true)
	g := f.gate
	snap := g.Snapshot()
	req := &ManifestRequest{Repo: f.repo, Reference: f.unsigned.digest.String(), Digest: f.unsigned.digest, Bytes: f.unsigned.bytes}
	lim := g.o.limits
	attest := lim
	attest.Attestations = true
	other := f.repo
	other.Name = "signatures/app"
	for _, tc := range []struct {
		name string
		p    prepared
		want bool
	}{
		{"what it reads", prepared{src: f.repo, lim: lim}, true},
		{"another source", prepared{src: other, lim: lim}, false},
		{"other limits", prepared{src: f.repo, lim: attest}, false},
		{"another revision", prepared{src: f.repo, lim: lim, rev: "older"}, false},
		{"started too long ago", prepared{src: f.repo, lim: lim, started: g.o.now().Add(-2 * g.o.decisionTimeout)}, false},
		{"a purge since", prepared{src: f.repo, lim: lim, purges: g.purgeCount() + 1}, false},
		{"not needed", prepared{src: f.repo, lim: lim, err: errNotPrepared}, false},
		{"cancelled", prepared{src: f.repo, lim: lim, err: context.Canceled}, false},
		{"taken already", prepared{src: f.repo, lim: lim, taken: true}, false},
	} {
		p := tc.p
		p.done, p.cancel, p.refs, p.disc = make(chan struct{}), func() {}, 1, &verify.Discovery{}
		close(p.done)
		if p.rev == "" {
			p.rev = snap.Revision
		}
		if p.started.IsZero() {
			p.started = g.o.now()
		}
		if tc.name != "a purge since" {
			p.purges = g.purgeCount()
		}
		g.prep.mu.Lock()
		g.prep.m[prepKey{f.repo, f.unsigned.digest}] = &p
		g.prep.mu.Unlock()
		disc, ok, err := g.takePrepared(context.Background(), snap, req, f.repo, lim)
		if ok != tc.want || err != nil || (ok && disc != p.disc) {
			t.Errorf("%s: ok %v err %v, want ok %v", tc.name, ok, err, tc.want)
		}
		g.prep.mu.Lock()
		delete(g.prep.m, prepKey{f.repo, f.unsigned.digest})
		g.prep.mu.Unlock()
	}
}

// TestPrepareNotNeeded: a manifest a served referrers listing names is
// not read ahead (it may be signature material); judged as an image, its
// decision then reads for itself: a decision, not an error.
func TestPrepareNotNeeded(t *testing.T) {
	f := newGateFixture(t, true)
	ctx := context.Background()
	if !f.decide(t, "bundled", f.bundled).Allowed() {
		t.Fatal("bundled refused")
	}
	listing, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndexType,
		"manifests": []v1.Descriptor{{MediaType: types.MediaType(ociManifestType), Digest: f.unsigned.digest, Size: int64(len(f.unsigned.bytes))}}})
	if v, err := f.gate.Referrers(ctx, f.repo, f.bundled.digest, listing); err != nil || !v.Allowed() {
		t.Fatalf("the listing: %v %v", v, err)
	}
	release := f.gate.PrepareManifest(ctx, f.repo, f.unsigned.digest)
	defer release()
	k := prepKey{f.repo, f.unsigned.digest}
	waitFor(t, "the discovery ahead to end", func() bool {
		f.gate.prep.mu.Lock()
		defer f.gate.prep.mu.Unlock()
		return f.gate.prep.m[k].finished()
	})
	before := f.reader.referrers.Load()
	v, err := f.decideErr(ctx, f.unsigned.digest.String(), f.unsigned)
	if err != nil || v.Allowed() {
		t.Fatalf("want a refusal of an unsigned image a listing names: %v %v", v, err)
	}
	if f.reader.referrers.Load() == before {
		t.Error("judged as an image, it was not looked up")
	}
}

// TestPrepareOutlivesItsRequest: the request that started a discovery
// may end while the decision waits for it (its client left): the
// decision still uses it, and nothing is looked up twice.
func TestPrepareOutlivesItsRequest(t *testing.T) {
	f := newGateFixture(t, true)
	unblock := make(chan struct{})
	hold := func() { <-unblock }
	f.reader.during.Store(&hold)
	release := f.gate.PrepareManifest(context.Background(), f.repo, f.legacy.digest)
	type result struct {
		v   *Verdict
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f.decideErr(context.Background(), f.legacy.digest.String(), f.legacy)
		done <- result{v, err}
	}()
	k := prepKey{f.repo, f.legacy.digest}
	waitFor(t, "the decision to take the discovery", func() bool {
		f.gate.prep.mu.Lock()
		defer f.gate.prep.mu.Unlock()
		return f.gate.prep.m[k] != nil && f.gate.prep.m[k].taken
	})
	release()
	f.reader.during.Store(nil)
	close(unblock)
	r := <-done
	if r.err != nil || !r.v.Allowed() {
		t.Fatalf("decided after its request ended: %v %v", r.v, r.err)
	}
	if n := f.reader.referrers.Load(); n != 1 {
		t.Errorf("%d referrers lookups, want 1", n)
	}
}
