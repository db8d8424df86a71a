package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/internal/yamlfile"
	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
	"github.com/portcullis-dev/portcullis/verify/tuftrust"
)

// Loader compiles policies into snapshots. It owns the TUF client of the
// policy's TUF trust roots, made again only when their settings change, so
// that a reload of an unrelated edit fetches nothing. The zero Loader is
// ready; a Reloader and the first Load share one.
type Loader struct {
	// Configured, when set, reports whether a registry is an upstream of
	// this proxy: a policy whose signaturesFrom names another is refused
	// (see SourceCheck).
	Configured func(registry string) bool

	tuf    *tuftrust.Provider
	tufKey string
}

// SourceCheck is the policy check that refuses an authority whose
// signaturesFrom names a registry that configured does not report: its
// signatures could never be read, so every image it guards would be
// refused for want of them. config lint runs it with policy.Lint, and a
// Loader with Configured on every policy file it loads.
func SourceCheck(configured func(registry string) bool) policy.Check {
	return func(p *policy.Policy) []policy.Problem {
		var out []policy.Problem
		for _, ip := range p.Policies {
			for _, a := range ip.Authorities {
				src := a.SignaturesFrom
				if src.Name == "" || configured(src.Registry) {
					continue
				}
				out = append(out, policy.Problem{Line: a.Line, Path: yamlfile.Join(a.Path, "signaturesFrom"), Severity: policy.Error,
					Message: fmt.Sprintf("authority %q (policy %q) reads signatures from %s, but %q is not an upstream registry of this proxy: they could never be read",
						a.Name, ip.Name, src, src.Registry)})
			}
		}
		return out
	}
}

// Load reads and compiles the policy file at path and its trust roots.
func (b *Loader) Load(path string) (*Snapshot, error) {
	p, err := b.parse(path)
	if err != nil {
		return nil, err
	}
	return b.Build(p)
}

// parse reads and compiles the policy file at path with the Loader's
// checks.
func (b *Loader) parse(path string) (*policy.Policy, error) {
	if b.Configured == nil {
		return policyfile.Load(path)
	}
	return policyfile.Load(path, SourceCheck(b.Configured))
}

// Build compiles a parsed policy and its trust roots into a Snapshot.
func (b *Loader) Build(p *policy.Policy) (*Snapshot, error) {
	sources, key := tufSources(p)
	switch {
	case len(sources) == 0:
		b.tuf, b.tufKey = nil, ""
	case b.tuf == nil || key != b.tufKey:
		b.tuf, b.tufKey = tuftrust.New(sources), key
	}
	var trust verify.TrustProvider
	if b.tuf != nil {
		trust = b.tuf
	}
	snap, err := NewSnapshot(p, trust)
	if err != nil {
		return nil, err
	}
	if b.tuf != nil {
		snap.Revision = p.Revision + "+tuf:" + b.tuf.Revision()
	}
	return snap, nil
}

// tufSources lists the policy's TUF trust roots, and a key that changes
// when any of their settings does.
func tufSources(p *policy.Policy) ([]tuftrust.Source, string) {
	var out []tuftrust.Source
	h := sha256.New()
	for name, tr := range p.TrustRoots {
		if tr.TUF == nil {
			continue
		}
		out = append(out, tuftrust.Source{Name: name, URL: tr.TUF.URL, Root: tr.TUF.RootJSON, CacheDir: tr.TUF.CacheDir})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for _, s := range out {
		fmt.Fprintf(h, "%q %q %q %d:", s.Name, s.URL, s.CacheDir, len(s.Root))
		h.Write(s.Root)
	}
	return out, hex.EncodeToString(h.Sum(nil))
}

// Reloader keeps a Gate's policy current: it reloads when told (SIGHUP, in
// serve) and when the policy file or any file it references changes
// (polled, which also sees a Kubernetes ConfigMap's symlink swap). A new policy is
// compiled first; a broken one is logged, counted and reported by /readyz
// as degraded, and the last good policy stays in force.
type Reloader struct {
	path     string
	builder  *Loader
	gate     *Gate
	log      *zap.Logger
	failures prometheus.Counter
	reloads  prometheus.Counter
	ok       prometheus.Gauge
	problem  atomic.Pointer[string] // the current reload failure, nil when healthy
	pending  atomic.Pointer[string] // the trust roots not loaded yet, nil when none
	kick     chan struct{}          // look at the file now
	announce func(revision string)  // told of each new revision in force (nil: no one)
}

// NewReloader returns the Reloader of g's policy file at path, loading
// with builder (the Loader that made g's first Snapshot), logging to log
// and counting reloads and failures in reg.
func NewReloader(path string, builder *Loader, g *Gate, log *zap.Logger, reg prometheus.Registerer) *Reloader {
	r := &Reloader{
		path: path, builder: builder, gate: g, log: log,
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "policy_reload_failures_total",
			Help: "Policy reloads that failed; the last good policy stayed in force.",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "policy_reloads_total",
			Help: "Policy reloads that put a new revision in force.",
		}),
		ok: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "portcullis", Name: "policy_ok",
			Help: "1 when the policy in force is the policy file's, 0 while a broken file is kept out (the last good policy stays in force).",
		}),
	}
	r.kick = make(chan struct{}, 1)
	r.ok.Set(1)
	reg.MustRegister(r.failures, r.reloads, r.ok)
	r.notePending()
	return r
}

// Reload loads the policy again and puts it in force if its revision
// changed; a policy that does not load leaves the last good one in force.
func (r *Reloader) Reload() {
	defer r.notePending()
	p, err := r.builder.parse(r.path)
	if err == nil && p.Revision == r.gate.Snapshot().Policy.Revision {
		r.healthy()
		return
	}
	var snap *Snapshot
	if err == nil {
		snap, err = r.builder.Build(p)
	}
	if err != nil {
		msg := fmt.Sprintf("policy reload failed, the last good policy (revision %s) stays in force: %v",
			short(r.gate.Snapshot().Revision), err)
		r.ok.Set(0)
		if prev := r.problem.Swap(&msg); prev == nil || *prev != msg {
			r.failures.Inc()
			r.log.Error("policy reload failed", zap.String("policyFile", r.path), zap.Error(err))
		}
		return
	}
	r.gate.SetSnapshot(snap)
	r.reloads.Inc()
	r.healthy()
	LogSnapshot(r.log, "policy reloaded", r.path, snap)
	if r.announce != nil {
		r.announce(snap.Revision)
	}
}

// Kick makes Run look at the policy file now (another replica announced
// a new revision); it does not wait.
func (r *Reloader) Kick() {
	select {
	case r.kick <- struct{}{}:
	default: // one is pending already
	}
}

// AnnounceWith makes every reload that puts a new revision in force call
// fn with it (serve: tell the other replicas). Call it before Run.
func (r *Reloader) AnnounceWith(fn func(revision string)) { r.announce = fn }

// healthy records that the policy in force is the file's, and logs the
// recovery when a reload had failed.
func (r *Reloader) healthy() {
	if prev := r.problem.Swap(nil); prev != nil {
		r.log.Info("policy reload recovered: the policy file loads again", zap.String("policyFile", r.path),
			zap.String("revision", short(r.gate.Snapshot().Revision)))
	}
	r.ok.Set(1)
}

// Degraded is why the policy in force is not the file's (the last reload
// failed) and which trust roots are not loaded yet, or "" (what /readyz
// reports).
func (r *Reloader) Degraded() string {
	var why []string
	if p := r.problem.Load(); p != nil {
		why = append(why, *p)
	}
	if p := r.pending.Load(); p != nil {
		why = append(why, *p)
	}
	return strings.Join(why, "; ")
}

// notePending records which trust roots are not loaded yet (for Degraded,
// which runs on other goroutines than the Loader's).
func (r *Reloader) notePending() {
	var pending []string
	if r.builder.tuf != nil {
		pending = r.builder.tuf.Pending()
	}
	if len(pending) == 0 {
		if r.pending.Swap(nil) != nil {
			r.log.Info("every trust root is loaded")
		}
		return
	}
	msg := strings.Join(pending, "; ") + " (images that need it get 503 until it loads)"
	if prev := r.pending.Swap(&msg); prev == nil || *prev != msg {
		r.log.Warn("trust roots not loaded yet: retrying", zap.Strings("pending", pending))
	}
}

// RefreshTUF asks the TUF repositories for a new trusted root and, when one
// came, puts a snapshot with it (and a new revision) in force.
func (r *Reloader) RefreshTUF() {
	tuf := r.builder.tuf
	if tuf == nil {
		return
	}
	before := tuf.Revision()
	if err := tuf.Refresh(); err != nil {
		r.log.Warn("TUF refresh failed: keeping the last good trusted roots", zap.Error(err))
	}
	defer r.notePending()
	if tuf.Revision() == before {
		return
	}
	snap, err := r.builder.Build(r.gate.Snapshot().Policy)
	if err != nil {
		r.log.Error("new TUF trusted root unusable: keeping the last good one", zap.Error(err))
		return
	}
	r.gate.SetSnapshot(snap)
	r.reloads.Inc()
	LogSnapshot(r.log, "TUF trusted root refreshed", r.path, snap)
}

// Run reloads every interval and whenever hup receives (serve sends
// SIGHUP there), and refreshes TUF roots every tufInterval, until ctx ends.
func (r *Reloader) Run(ctx context.Context, interval, tufInterval time.Duration, hup <-chan os.Signal) {
	t := time.NewTicker(interval)
	defer t.Stop()
	tt := time.NewTicker(tufInterval)
	defer tt.Stop()
	pt := time.NewTicker(min(pendingRetry, tufInterval)) // while a trust root is not loaded yet
	defer pt.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			n, err := r.gate.Purge(ctx, nil, true)
			if err != nil {
				r.log.Error("SIGHUP: cannot drop cached denials", zap.Error(err))
			}
			r.log.Info("SIGHUP: reloading the policy; cached denials dropped", zap.Int("denials", n))
			r.Reload()
		case <-t.C:
			r.Reload()
		case <-r.kick:
			r.Reload()
		case <-tt.C:
			r.RefreshTUF()
		case <-pt.C:
			if r.pending.Load() != nil {
				r.RefreshTUF()
			}
		}
	}
}

// pendingRetry is how often a trust root not loaded yet is tried again.
const pendingRetry = 15 * time.Second

// LogSnapshot logs that snap (from the policy file at path) is in force,
// and the policy's lint warnings.
func LogSnapshot(log *zap.Logger, msg, path string, snap *Snapshot) {
	log.Info(msg, zap.String("policyFile", path), zap.String("revision", short(snap.Revision)),
		zap.Int("policies", len(snap.Policy.Policies)))
	for _, w := range snap.Policy.Warnings {
		log.Warn("policy warning", zap.String("problem", w.String()))
	}
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
