package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/upstream"
)

// TestPolicyReload: a good change takes effect at once; a broken file is
// counted and reported, and the last good policy stays in force.
func TestPolicyReload(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "policy.yaml", "policies:\n  - name: a\n    images: [\"r.example/**\"]\n    allow: unsigned\n")
	builder := &snapshotBuilder{}
	snap, err := builder.load(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(unusedUpstream(t), snap)
	if err != nil {
		t.Fatal(err)
	}
	r := newPolicyReloader(path, builder, g, zap.NewNop(), prometheus.NewRegistry())
	first := g.Snapshot().Revision

	r.reload() // unchanged
	if g.Snapshot().Revision != first || r.degraded() != "" || testutil.ToFloat64(r.reloads) != 0 {
		t.Fatal("an unchanged file was reloaded")
	}
	writeFile(t, dir, "policy.yaml", "policies:\n  - name: b\n    images: [\"r.example/**\"]\n    allow: unsigned\n")
	r.reload()
	second := g.Snapshot().Revision
	if second == first || testutil.ToFloat64(r.reloads) != 1 {
		t.Fatal("a changed file did not take effect")
	}
	writeFile(t, dir, "policy.yaml", "policies:\n  - name: c\n    imagez: []\n")
	r.reload()
	r.reload() // the same failure is counted once
	if g.Snapshot().Revision != second {
		t.Fatal("a broken file replaced the last good policy")
	}
	if !strings.Contains(r.degraded(), "imagez") || testutil.ToFloat64(r.failures) != 1 {
		t.Fatalf("degraded %q, failures %v", r.degraded(), testutil.ToFloat64(r.failures))
	}
	writeFile(t, dir, "policy.yaml", "policies:\n  - name: b\n    images: [\"r.example/**\"]\n    allow: unsigned\n")
	r.reload()
	if r.degraded() != "" {
		t.Fatal("still degraded after the file was fixed")
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
