package fleet

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/portcullis-dev/portcullis/fleet/redistest"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/verifytest"
)

// countingReader counts signature discoveries (each asks for referrers
// once).
type countingReader struct {
	verify.Reader
	discoveries atomic.Int64
}

func (c *countingReader) Referrers(ctx context.Context, repo verify.Repository, d v1.Hash) (*v1.IndexManifest, error) {
	c.discoveries.Add(1)
	time.Sleep(50 * time.Millisecond) // a real upstream's round trip: the others arrive meanwhile
	return c.Reader.Referrers(ctx, repo, d)
}

// signedRegistry is a registry with acme/app:signed, signed with
// verifytest's ecdsa-p256 key, and the PEM of that key.
func signedRegistry(t *testing.T) (*verifytest.Registry, verify.Repository, v1.Descriptor, []byte) {
	t.Helper()
	tr := verifytest.NewRegistry(t, true, nil)
	key := verifytest.Keys()["ecdsa-p256"]
	repo := tr.Repo("acme/app")
	signed := tr.PushImage(repo, "signed")
	tr.PushLegacy(repo, signed.Digest, key.LegacyKeyLayer(t, tr.Host+"/acme/app", signed.Digest))
	pem, _ := cryptoutils.MarshalPublicKeyToPEM(key.Priv.Public())
	return tr, repo, signed, pem
}

// keySnapshot is the policy of a replica that trusts the key pem for
// tr's acme/ images, loaded from a directory of its own.
func keySnapshot(t *testing.T, tr *verifytest.Registry, pem []byte) *gate.Snapshot {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cosign.pub"), pem, 0o600); err != nil {
		t.Fatal(err)
	}
	pol := "policies:\n  - name: release\n    images: [\"" + tr.Host + "/acme/**\"]\n    authorities:\n      - name: release-key\n        key: {path: cosign.pub}\n"
	return policySnapshot(t, dir, pol)
}

// policySnapshot writes pol as dir/policy.yaml and loads it.
func policySnapshot(t *testing.T, dir, pol string) *gate.Snapshot {
	t.Helper()
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := policyfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := gate.NewSnapshot(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// TestOneDecisionForTheFleet: three gates, each with its own reader and
// L1, share one Redis. Concurrent first requests for one digest on all
// three make one signature discovery, and all get the same verdict; the
// layers of a manifest one replica allowed are served by another (a
// non-sticky load balancer); a refused image is refused everywhere, also
// decided once (each request asked as the proxy asks by digest, with
// PrepareManifest first). The policy files sit at different paths with
// the same contents: the replicas agree on the revision.
func TestOneDecisionForTheFleet(t *testing.T) {
	srv := redistest.Start(t)
	tr, repo, signed, pem := signedRegistry(t)
	unsigned := tr.PushImage(repo, "unsigned")

	var gates []*gate.Gate
	var readers []*countingReader
	for i := range 3 {
		snap := keySnapshot(t, tr, pem)
		r := &countingReader{Reader: tr.Reader}
		st := replica(t, srv, testKey)
		g, err := gate.New(r, snap, gate.WithVerdictStore(st), gate.WithRegisterer(prometheus.NewRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && snap.Revision != gates[0].Snapshot().Revision {
			t.Fatalf("replica %d's revision %s differs from %s", i, snap.Revision, gates[0].Snapshot().Revision)
		}
		gates = append(gates, g)
		readers = append(readers, r)
	}
	discoveries := func() (n int64) {
		for _, r := range readers {
			n += r.discoveries.Swap(0)
		}
		return n
	}
	ask := func(g *gate.Gate, d v1.Descriptor) (*gate.Verdict, error) {
		// As the proxy asks for a manifest by digest: prepared, then decided.
		defer g.PrepareManifest(context.Background(), repo, d.Digest)()
		m, err := tr.Reader.Manifest(context.Background(), repo, d.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		return g.Manifest(context.Background(), &gate.ManifestRequest{Repo: repo, Reference: d.Digest.String(), Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes})
	}
	for _, tc := range []struct {
		name  string
		image v1.Descriptor
		allow bool
	}{{"signed", signed, true}, {"unsigned", unsigned, false}} {
		var wg sync.WaitGroup
		var wrong atomic.Int64
		for i := range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := ask(gates[i%3], tc.image)
				if err != nil || v.Allowed() != tc.allow {
					wrong.Add(1)
					t.Errorf("%s on replica %d: %v %v", tc.name, i%3, v, err)
				}
			}()
		}
		wg.Wait()
		if n := discoveries(); n != 1 {
			t.Errorf("%s: %d signature discoveries for 30 requests on 3 replicas, want 1", tc.name, n)
		}
	}
	// The layers of the manifest replica 0 allowed, asked of replica 2.
	m, _ := tr.Reader.Manifest(context.Background(), repo, signed.Digest.String())
	img, err := v1.ParseManifest(bytesReader(m.Bytes))
	if err != nil {
		t.Fatal(err)
	}
	fresh := replica(t, srv, testKey)
	g, err := gate.New(&countingReader{Reader: tr.Reader}, gates[0].Snapshot(), gate.WithVerdictStore(fresh), gate.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range append(img.Layers, img.Config) {
		if v, err := g.Blob(context.Background(), repo, l.Digest); err != nil || !v.Allowed() {
			t.Errorf("a layer of a manifest another replica allowed: %v %v", v, err)
		}
	}
	um, _ := tr.Reader.Manifest(context.Background(), repo, unsigned.Digest.String())
	uimg, _ := v1.ParseManifest(bytesReader(um.Bytes))
	if v, err := g.Blob(context.Background(), repo, uimg.Layers[0].Digest); err != nil || v.Allowed() {
		t.Errorf("a layer of the refused image: %v %v", v, err)
	}
	// Redis gone: a replica alone still allows a signed image on its own
	// signatures; an unsigned one is no decision (an allowed index listing
	// it elsewhere cannot be ruled out), never served.
	alone := tr.PushImage(repo, "alone")
	tr.PushLegacy(repo, alone.Digest, verifytest.Keys()["ecdsa-p256"].LegacyKeyLayer(t, tr.Host+"/acme/app", alone.Digest))
	lonely := tr.PushImage(repo, "lonely")
	srv.Stop()
	if v, err := ask(g, alone); err != nil || !v.Allowed() {
		t.Errorf("a signed image with Redis down: %v %v", v, err)
	}
	if v, err := ask(g, lonely); err == nil {
		t.Errorf("an unsigned image with Redis down: %v, want no decision", v)
	}
}

// lateLeaser is a replica's store whose next Lease, once before is set,
// first runs before (another replica decides): this replica's lookup
// missed, and by the time it asks for the lease the other's verdict is
// published and the lease released.
type lateLeaser struct {
	*Store
	before func()
}

func (l *lateLeaser) Lease(ctx context.Context, key string, ttl time.Duration) (bool, func(), error) {
	if f := l.before; f != nil {
		l.before = nil
		f()
	}
	return l.Store.Lease(ctx, key, ttl)
}

// leaseRace is two replicas over one Redis: a, and c whose store is late
// to take leases; first and second count their discoveries.
type leaseRace struct {
	req           *gate.ManifestRequest
	first, second *countingReader
	a, c          *gate.Gate
	late          *lateLeaser
}

func newLeaseRace(t *testing.T, opts ...gate.Option) *leaseRace {
	t.Helper()
	srv := redistest.Start(t)
	tr, repo, signed, pem := signedRegistry(t)
	snap := keySnapshot(t, tr, pem)
	m, err := tr.Reader.Manifest(context.Background(), repo, signed.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	f := &leaseRace{
		req:   &gate.ManifestRequest{Repo: repo, Reference: signed.Digest.String(), Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes},
		first: &countingReader{Reader: tr.Reader}, second: &countingReader{Reader: tr.Reader},
		late: &lateLeaser{Store: replica(t, srv, testKey)},
	}
	if f.a, err = gate.New(f.first, snap, append([]gate.Option{gate.WithVerdictStore(replica(t, srv, testKey)), gate.WithRegisterer(prometheus.NewRegistry())}, opts...)...); err != nil {
		t.Fatal(err)
	}
	if f.c, err = gate.New(f.second, snap, append([]gate.Option{gate.WithVerdictStore(f.late), gate.WithRegisterer(prometheus.NewRegistry())}, opts...)...); err != nil {
		t.Fatal(err)
	}
	return f
}

// firstDecides is a lateLeaser's before: replica a decides.
func (f *leaseRace) firstDecides(t *testing.T) func() {
	return func() {
		if v, err := f.a.Manifest(context.Background(), f.req); err != nil || !v.Allowed() {
			t.Errorf("the first replica: %v %v", v, err)
		}
	}
}

// TestLeaseAfterAnotherDecided: a replica that gets a decision's lease
// after another replica decided and released it uses the verdict now in
// Redis rather than decide again.
func TestLeaseAfterAnotherDecided(t *testing.T) {
	f := newLeaseRace(t)
	f.late.before = f.firstDecides(t)
	if v, err := f.c.Manifest(context.Background(), f.req); err != nil || !v.Allowed() {
		t.Fatalf("the late replica: %v %v", v, err)
	}
	if n := f.first.discoveries.Load() + f.second.discoveries.Load(); n != 1 {
		t.Fatalf("%d signature discoveries, want 1 (the late replica decided again)", n)
	}
}

// TestLeaseAfterAnotherRefreshed: the same race on a refresh, both
// replicas holding the stale verdict in memory: the late replica asks
// Redis, not its memory, for a verdict published meanwhile.
func TestLeaseAfterAnotherRefreshed(t *testing.T) {
	f := newLeaseRace(t, gate.WithVerdictTTL(300*time.Millisecond))
	for _, g := range []*gate.Gate{f.a, f.c} {
		if v, err := g.Manifest(context.Background(), f.req); err != nil || !v.Allowed() {
			t.Fatalf("warm-up: %v %v", v, err)
		}
	}
	time.Sleep(400 * time.Millisecond) // stale in both memories, not expired
	f.first.discoveries.Store(0)
	f.second.discoveries.Store(0)
	f.late.before = f.firstDecides(t)
	if v, err := f.c.Manifest(context.Background(), f.req); err != nil || !v.Allowed() {
		t.Fatalf("the late replica: %v %v", v, err)
	}
	if n := f.first.discoveries.Load() + f.second.discoveries.Load(); n != 1 {
		t.Fatalf("%d signature discoveries on the refresh, want 1 (the late replica decided again: its memory still held the old verdict)", n)
	}
}

// TestSourcedGrantFollowsReloadAcrossReplicas: replica A allows an image
// whose policy reads its signature from another repository
// (signaturesFrom); both replicas reload to a policy that reads the
// image's own repository only (where it is signed too). Asked for the
// source's .sig, replica B finds A's verdict of the older revision in
// Redis, decides it again, and refuses: the new verdict grants nothing in
// the source. Before the reload, B serves it on A's verdict.
func TestSourcedGrantFollowsReloadAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	tr := verifytest.NewRegistry(t, false, nil)
	key := verifytest.Keys()["ecdsa-p256"]
	app, sigs := tr.Repo("acme/app"), tr.Repo("signatures/app")
	img := tr.PushImage(app, "v1")
	tr.PushLegacy(sigs, img.Digest, key.LegacyKeyLayer(t, app.String(), img.Digest))
	tr.PushLegacy(app, img.Digest, key.LegacyKeyLayer(t, app.String(), img.Digest))
	pem, _ := cryptoutils.MarshalPublicKeyToPEM(key.Priv.Public())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cosign.pub"), pem, 0o600); err != nil {
		t.Fatal(err)
	}
	snapshot := func(sourced bool) *gate.Snapshot {
		t.Helper()
		from := ""
		if sourced {
			from = "        signaturesFrom: " + tr.Host + "/signatures/app\n"
		}
		return policySnapshot(t, dir, "policies:\n  - name: release\n    images: [\""+tr.Host+"/acme/**\"]\n    authorities:\n      - name: release-key\n"+from+"        key: {path: cosign.pub}\n")
	}
	var replicas [2]*gate.Gate
	for i := range replicas {
		g, err := gate.New(tr.Reader, snapshot(true), gate.WithVerdictStore(replica(t, srv, testKey)),
			gate.WithDenyTTL(0), gate.WithRegisterer(prometheus.NewRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = g
	}
	ask := func(g *gate.Gate, repo verify.Repository, ref string) *gate.Verdict {
		t.Helper()
		m, err := tr.Reader.Manifest(context.Background(), repo, ref)
		if err != nil {
			t.Fatal(err)
		}
		v, err := g.Manifest(context.Background(), &gate.ManifestRequest{Repo: repo, Reference: ref, Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	sigTag := verifytest.LegacyTag(img.Digest)
	if v := ask(replicas[0], app, "v1"); !v.Allowed() {
		t.Fatalf("replica A refused the image: %s", v.Message())
	}
	if v := ask(replicas[1], sigs, sigTag); !v.Allowed() {
		t.Fatalf("replica B refused the source's .sig of an image A allowed: %s", v.Message())
	}
	after := snapshot(false)
	for _, g := range replicas {
		g.SetSnapshot(after)
	}
	if v := ask(replicas[1], sigs, sigTag); v.Allowed() {
		t.Fatalf("after a reload to a policy that no longer reads from %s, replica B served its .sig: %s", sigs, v.Message())
	}
	if v := ask(replicas[1], app, "v1"); !v.Allowed() {
		t.Fatalf("the image, signed in its own repository, refused after the reload: %s", v.Message())
	}
}
