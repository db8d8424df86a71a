package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
)

// loadSnapshot reads and compiles the policy file and its trust roots.
func loadSnapshot(path string) (*verify.Snapshot, error) {
	p, err := policy.Load(path)
	if err != nil {
		return nil, err
	}
	return verify.NewSnapshot(p, nil)
}

// policyReloader keeps the gate's policy current: it reloads on SIGHUP and
// when the policy file or any file it references changes (polled, which
// also sees a Kubernetes ConfigMap's symlink swap). A new policy is
// compiled first; a broken one is logged, counted and reported by /readyz
// as degraded, and the last good policy stays in force.
type policyReloader struct {
	path     string
	gate     *verify.Gate
	log      *zap.Logger
	failures prometheus.Counter
	reloads  prometheus.Counter
	problem  atomic.Pointer[string] // the current reload failure, nil when healthy
}

func newPolicyReloader(path string, gate *verify.Gate, log *zap.Logger, reg prometheus.Registerer) *policyReloader {
	r := &policyReloader{
		path: path, gate: gate, log: log,
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "policy_reload_failures_total",
			Help: "Policy reloads that failed; the last good policy stayed in force.",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "policy_reloads_total",
			Help: "Policy reloads that put a new revision in force.",
		}),
	}
	reg.MustRegister(r.failures, r.reloads)
	return r
}

// reload loads the policy again and puts it in force if its revision changed.
func (r *policyReloader) reload() {
	p, err := policy.Load(r.path)
	if err == nil && p.Revision == r.gate.Snapshot().Policy.Revision {
		r.healthy()
		return
	}
	var snap *verify.Snapshot
	if err == nil {
		snap, err = verify.NewSnapshot(p, nil)
	}
	if err != nil {
		msg := fmt.Sprintf("policy reload failed, the last good policy (revision %s) stays in force: %v",
			short(r.gate.Snapshot().Revision), err)
		if prev := r.problem.Swap(&msg); prev == nil || *prev != msg {
			r.failures.Inc()
			r.log.Error("policy reload failed", zap.String("policyFile", r.path), zap.Error(err))
		}
		return
	}
	r.gate.SetSnapshot(snap)
	r.reloads.Inc()
	r.healthy()
	logPolicy(r.log, "policy reloaded", r.path, snap)
}

func (r *policyReloader) healthy() { r.problem.Store(nil) }

// degraded is the reason /readyz reports degraded, or "".
func (r *policyReloader) degraded() string {
	if p := r.problem.Load(); p != nil {
		return *p
	}
	return ""
}

// run reloads every interval and on SIGHUP until ctx ends.
func (r *policyReloader) run(ctx context.Context, interval time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.log.Info("SIGHUP: reloading the policy")
			r.reload()
		case <-t.C:
			r.reload()
		}
	}
}

func logPolicy(log *zap.Logger, msg, path string, snap *verify.Snapshot) {
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
