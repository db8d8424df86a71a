package gate

import (
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis-dev/portcullis/upstream"
)

// TestPolicyReload: a good change takes effect at once; a broken file is
// counted and reported, and the last good policy stays in force.
func TestPolicyReload(t *testing.T) {
	dir := t.TempDir()
	path := writeTestFile(t, dir, "policy.yaml", "policies:\n  - name: a\n    images: [\"r.example/**\"]\n    allow: unsigned\n")
	builder := &Loader{}
	snap, err := builder.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(unusedUpstream(t), snap)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	r := NewReloader(path, builder, g, zap.New(core), prometheus.NewRegistry())
	first := g.Snapshot().Revision
	if testutil.ToFloat64(r.ok) != 1 {
		t.Fatal("portcullis_policy_ok is not 1 at start")
	}

	r.Reload() // unchanged
	if g.Snapshot().Revision != first || r.Degraded() != "" || testutil.ToFloat64(r.reloads) != 0 {
		t.Fatal("an unchanged file was reloaded")
	}
	writeTestFile(t, dir, "policy.yaml", "policies:\n  - name: b\n    images: [\"r.example/**\"]\n    allow: unsigned\n")
	r.Reload()
	second := g.Snapshot().Revision
	if second == first || testutil.ToFloat64(r.reloads) != 1 {
		t.Fatal("a changed file did not take effect")
	}
	writeTestFile(t, dir, "policy.yaml", "policies:\n  - name: c\n    imagez: []\n")
	r.Reload()
	r.Reload() // the same failure is counted once
	if g.Snapshot().Revision != second {
		t.Fatal("a broken file replaced the last good policy")
	}
	if !strings.Contains(r.Degraded(), "imagez") || testutil.ToFloat64(r.failures) != 1 || testutil.ToFloat64(r.ok) != 0 {
		t.Fatalf("degraded %q, failures %v, policy_ok %v", r.Degraded(), testutil.ToFloat64(r.failures), testutil.ToFloat64(r.ok))
	}
	writeTestFile(t, dir, "policy.yaml", "policies:\n  - name: b\n    images: [\"r.example/**\"]\n    allow: unsigned\n")
	r.Reload()
	if r.Degraded() != "" || testutil.ToFloat64(r.ok) != 1 {
		t.Fatal("still degraded after the file was fixed")
	}
	if n := logs.FilterMessageSnippet("recovered").Len(); n != 1 {
		t.Errorf("%d log lines say the reload recovered, want 1", n)
	}
}

// unusedUpstream is an upstream client for gates whose tests read nothing
// upstream: its one registry is on a port nothing listens on.
func unusedUpstream(t *testing.T) *upstream.Client {
	t.Helper()
	c, err := upstream.New([]upstream.Config{{Registry: "r.example", Endpoint: &url.URL{Scheme: "http", Host: "127.0.0.1:9"}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
