package gate

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify/signing"
)

// warnPolicy enforces the release key on acme/app and, in warn mode, a
// key nobody signed with.
const warnPolicy = `policies:
  - name: acme-release
    images: ["HOST/acme/**"]
    authorities:
      - name: release-key
        key: {path: cosign.pub}
  - name: sbom-rollout
    mode: warn
    images: ["HOST/acme/**"]
    authorities:
      - name: other-key
        key: {path: other.pub}
`

func pattern(t *testing.T, s string) *policy.ImagePattern {
	t.Helper()
	p, err := policy.ParseImagePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestDecisionLogRecords: each decision is recorded once with who asked,
// the result, the policy, the reasons and who passed; a cached denial is
// not recorded again but says how long it is cached; a refused blob is
// recorded; a decision that failed is recorded as an error.
func TestDecisionLogRecords(t *testing.T) {
	log := NewDecisionLog(100)
	now := time.Now()
	clock := func() time.Time { return now }
	f := newGateFixture(t, true, WithDecisionLog(log), WithClock(clock), WithDenyTTL(30*time.Second))
	ctx := oci.WithRequest(context.Background(), oci.Request{ID: "req-1", Client: "10.0.0.7:5544"})
	ask := func(ref string, p *pushed) (*Verdict, error) {
		return f.gate.Manifest(ctx, &ManifestRequest{Repo: f.repo, Reference: ref, Digest: p.digest, Bytes: p.bytes})
	}
	if v, err := ask("legacy", f.legacy); err != nil || !v.Allowed() {
		t.Fatalf("legacy: %v %v", v, err)
	}
	v, err := ask("wrong", f.wrongKey)
	if err != nil || v.Allowed() {
		t.Fatalf("wrong: %v %v", v, err)
	}
	now = now.Add(3 * time.Second)
	v, _ = ask("wrong", f.wrongKey) // cached
	refusal := f.gate.refusal(v, nil).Error()
	if without := (&Gate{}).refusal(v, nil).Error(); strings.Contains(without, "portcullis why") {
		t.Errorf("a gate with no decision log says to ask it: %q", without)
	}
	for _, want := range []string{`refused by policy "acme-release"`, "(cached for 27s more)", "portcullis why " + f.repo.String() + "@" + f.wrongKey.digest.String()} {
		if !strings.Contains(refusal, want) {
			t.Errorf("refusal %q does not say %q", refusal, want)
		}
	}
	if _, err := f.gate.Blob(ctx, f.repo, f.unsigned.layers[0]); err != nil {
		t.Fatal(err)
	}
	f.reader.fail.Store(true)
	if _, err := ask("unsigned", f.unsigned); err == nil {
		t.Fatal("no error while the upstream fails")
	}

	recs := log.Query(Filter{})
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4 (allow, deny, blob deny, error): %+v", len(recs), recs)
	}
	errRec, blob, deny, allow := recs[0], recs[1], recs[2], recs[3]
	if allow.Result != ResultAllow || allow.Reference != "legacy" || !strings.Contains(allow.Identity, "release-key") ||
		allow.Client != "10.0.0.7:5544" || allow.RequestID != "req-1" || allow.Policy != "acme-release" || allow.Digest != f.legacy.digest.String() {
		t.Errorf("allow record %+v", allow)
	}
	if deny.Result != ResultDeny || deny.Policy != "acme-release" || len(deny.Violations) != 1 || len(deny.Violations[0].Reasons) == 0 ||
		!deny.CachedUntil.Equal(now.Add(27*time.Second)) {
		t.Errorf("deny record %+v", deny)
	}
	if blob.Result != ResultDeny || blob.Reference != "blob" || !strings.Contains(blob.Message, "references this blob") {
		t.Errorf("blob record %+v", blob)
	}
	if errRec.Result != ResultError || !strings.Contains(errRec.Message, "no decision") {
		t.Errorf("error record %+v", errRec)
	}
	if got := log.Query(Filter{Result: ResultDeny, Image: pattern(t, f.host+"/acme/*"), Limit: 1}); len(got) != 1 || got[0].Reference != "blob" {
		t.Errorf("filtered query: %+v", got)
	}
	if got := log.Query(Filter{Image: pattern(t, f.host+"/other/**")}); len(got) != 0 {
		t.Errorf("another image's query: %+v", got)
	}
	if got := log.Query(Filter{Since: now.Add(time.Second)}); len(got) != 0 {
		t.Errorf("since the future: %+v", got)
	}
}

// TestWarnEveryRequest: every request served despite a warn-mode
// violation is logged at WARN, counted and recorded, cache hits too, with
// the reasons under one fixed key; the summary aggregates them by image
// and policy.
func TestWarnEveryRequest(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	log := NewDecisionLog(100)
	f := newGateFixture(t, true, WithDecisionLog(log), WithLogger(zap.New(core)), WithRegisterer(reg))
	other, _ := newSignerPEM(t)
	writeTestFile(t, f.dir, "other.pub", other)
	writeTestFile(t, f.dir, "policy.yaml", strings.ReplaceAll(warnPolicy, "HOST", f.host))
	f.gate.SetSnapshot(f.snapshot(t))
	for i := range 3 {
		ctx := oci.WithRequest(context.Background(), oci.Request{ID: fmt.Sprint("r", i)})
		v, err := f.gate.Manifest(ctx, &ManifestRequest{Repo: f.repo, Reference: "legacy", Digest: f.legacy.digest, Bytes: f.legacy.bytes})
		if err != nil || !v.Allowed() {
			t.Fatalf("request %d: %v %v", i, v, err)
		}
	}
	warned := logs.FilterLevelExact(zap.WarnLevel).All()
	if len(warned) != 3 {
		t.Fatalf("%d WARN lines, want 3 (one per request): %v", len(warned), warned)
	}
	for _, e := range warned {
		m := e.ContextMap()
		vs, ok := m["violations"].([]any)
		if !ok || len(vs) != 1 || !strings.Contains(fmt.Sprint(vs[0]), "sbom-rollout") {
			t.Errorf("line %q: violations %v", e.Message, m["violations"])
		}
		for k := range m {
			if strings.HasPrefix(k, "warn.") {
				t.Errorf("line %q has a key named after a policy: %s", e.Message, k)
			}
		}
	}
	if n := testutil.ToFloat64(f.gate.metrics.answers[ResultWarn.index()]); n != 3 {
		t.Errorf("manifest_answers_total{result=warn} = %v, want 3", n)
	}
	recs := log.Query(Filter{Result: ResultWarn})
	if len(recs) != 3 {
		t.Fatalf("%d warn records, want 3", len(recs))
	}
	sum := log.Summary(Filter{Result: ResultWarn})
	if len(sum) != 1 || sum[0].Policy != "sbom-rollout" || sum[0].Count != 3 || sum[0].Image != f.repo.String() ||
		len(sum[0].Digests) != 1 || len(sum[0].Reasons) == 0 {
		t.Errorf("summary %+v", sum)
	}
}

// TestPurge: purging an image's verdicts makes its next request decide
// again, and leaves other images' verdicts; denials only leaves allows.
func TestPurge(t *testing.T) {
	f := newGateFixture(t, true)
	f.decide(t, "legacy", f.legacy)
	f.decide(t, "unsigned", f.unsigned)
	n, err := f.gate.Purge(context.Background(), nil, true)
	if err != nil || n != 1 {
		t.Fatalf("denials purged: %d %v, want 1", n, err)
	}
	before := f.reader.referrers.Load()
	f.decide(t, "legacy", f.legacy) // still cached
	if f.reader.referrers.Load() != before {
		t.Error("purging denials dropped an allow")
	}
	f.decide(t, "unsigned", f.unsigned) // decided again
	if f.reader.referrers.Load() == before {
		t.Error("a purged denial was reused")
	}
	if n, _ := f.gate.Purge(context.Background(), pattern(t, f.host+"/elsewhere/**"), false); n != 0 {
		t.Errorf("another pattern purged %d", n)
	}
	if n, _ := f.gate.Purge(context.Background(), pattern(t, f.host+"/acme/app"), false); n < 2 {
		t.Errorf("image purge dropped %d verdicts, want both", n)
	}
	if v, _ := f.gate.Blob(context.Background(), f.repo, f.legacy.layers[0]); v.Allowed() {
		t.Error("a purged allow still grants its layers")
	}
}

// TestPurgeDuringDecision: a verdict decided while a purge runs is
// answered but not stored, an allow as much as a denial (the decision may
// have read the signature the purge was meant to forget), and such a
// denial does not say it is cached.
func TestPurgeDuringDecision(t *testing.T) {
	f := newGateFixture(t, true)
	for _, p := range []*pushed{f.legacy, f.unsigned} {
		purge := func() {
			if _, err := f.gate.Purge(context.Background(), nil, false); err != nil {
				t.Error(err)
			}
		}
		f.reader.during.Store(&purge)
		if v := f.decide(t, p.digest.String(), p); v.CachedFor != 0 || strings.Contains(v.Message(), "cached for") {
			t.Errorf("a denial that was not stored says it is cached: %q", v.Message())
		}
		f.reader.during.Store(nil)
		before := f.reader.referrers.Load()
		f.decide(t, p.digest.String(), p)
		if f.reader.referrers.Load() == before {
			t.Errorf("%s: a verdict decided across a purge was stored", p.digest)
		}
		before = f.reader.referrers.Load()
		f.decide(t, p.digest.String(), p)
		if f.reader.referrers.Load() != before {
			t.Errorf("%s: a verdict decided after the purge was not stored", p.digest)
		}
	}
}

// TestSIGHUPDropsDenials: a SIGHUP with no file changed drops the cached
// denials (a signature pushed after a refusal is seen at once).
func TestSIGHUPDropsDenials(t *testing.T) {
	f := newGateFixture(t, true)
	f.decide(t, "unsigned", f.unsigned)
	r := NewReloader(f.policyFile, &Loader{}, f.gate, zap.NewNop(), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal)
	done := make(chan struct{})
	go func() { r.Run(ctx, time.Hour, time.Hour, hup); close(done) }()
	hup <- os.Interrupt // any signal value: serve sends SIGHUP
	hup <- os.Interrupt // the first was handled once this one is taken
	cancel()
	<-done
	before := f.reader.referrers.Load()
	f.decide(t, "unsigned", f.unsigned)
	if f.reader.referrers.Load() == before {
		t.Error("a denial cached before SIGHUP was reused")
	}
}

// newSignerPEM is the public key of a new signer that signs nothing.
func newSignerPEM(t *testing.T) (string, error) {
	t.Helper()
	s, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := s.PublicKeyPEM()
	return string(pem), err
}

// TestDecisionLogBounds: the log keeps its last n records, and refused
// blobs, which any client can ask for by the thousand, go to a ring of
// their own and never push decisions out.
func TestDecisionLogBounds(t *testing.T) {
	l := NewDecisionLog(3)
	t0 := time.Now()
	for i := range 5 {
		l.Add(Record{Time: t0.Add(time.Duration(i) * time.Second), Image: "r.example/app", Digest: fmt.Sprint("d", i), Result: ResultDeny})
	}
	for i := range 500 {
		l.Add(Record{Time: t0.Add(time.Hour + time.Duration(i)), Image: "r.example/app", Reference: BlobReference, Result: ResultDeny})
	}
	all := l.Query(Filter{})
	if len(all) != 3+100 {
		t.Fatalf("%d records, want the last 3 decisions and the last 100 blobs", len(all))
	}
	var digests []string
	for _, r := range all {
		if r.Reference != BlobReference {
			digests = append(digests, r.Digest)
		}
	}
	if fmt.Sprint(digests) != "[d4 d3 d2]" {
		t.Errorf("decisions kept %v, want the newest three, newest first", digests)
	}
	if got := l.Query(Filter{Limit: 2}); len(got) != 2 || got[0].Reference != BlobReference {
		t.Errorf("limit 2: %+v", got)
	}
}

// TestRecordBounded: a record of a refusal with many failing policies and
// long reasons stays within its bounds (about 4 KiB), and says what it
// left out.
func TestRecordBounded(t *testing.T) {
	var vs []FailureDetail
	for i := range 40 {
		d := FailureDetail{Policy: fmt.Sprintf("p%d", i), Mode: "enforce"}
		for range 50 {
			d.Reasons = append(d.Reasons, strings.Repeat("x", 5000))
		}
		vs = append(vs, d)
	}
	b, err := json.Marshal(Record{Violations: boundedViolations(vs), Message: truncate(strings.Repeat("m", 5000), maxRecordText)})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 4<<10+1<<10 {
		t.Errorf("a record is %d bytes as JSON, want about 4 KiB at most", len(b))
	}
	if !strings.Contains(string(b), "more reasons not recorded") {
		t.Error("the record does not say it left reasons out")
	}
	short := []FailureDetail{{Policy: "p", Mode: "enforce", Reasons: []string{"a: no signatures found"}}}
	if got := boundedViolations(short); len(got) != 1 || len(got[0].Reasons) != 1 || got[0].Reasons[0] != short[0].Reasons[0] {
		t.Errorf("a short record changed: %+v", got)
	}
}
