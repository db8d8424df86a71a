package main

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/verify"
)

// newModelProxy wires the proxy and the gate as serve does, with the
// gate's clock given and the tag cache off (tags move in the model), and
// returns it with a function that reloads the policy file.
func newModelProxy(t testing.TB, upstreamHost, policyFile string, now func() time.Time, staleIfError time.Duration) (http.Handler, func() error) {
	t.Helper()
	ups := []proxy.Upstream{{Registry: modelRegistry, Endpoint: &url.URL{Scheme: "http", Host: upstreamHost}}}
	adapter := &gate.Late{}
	p, err := proxy.New(ups, proxy.WithGate(adapter), proxy.WithDefaultRegistry(modelRegistry), proxy.WithTagTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	builder := &snapshotBuilder{}
	snap, err := builder.load(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	g, err := verify.NewGate(gate.Reader{P: p}, snap, verify.WithClock(now),
		verify.WithVerdictTTL(modelVerdictTTL), verify.WithDenyTTL(modelDenyTTL), verify.WithStaleIfError(staleIfError))
	if err != nil {
		t.Fatal(err)
	}
	adapter.Bind(g)
	reload := func() error {
		snap, err := builder.load(policyFile)
		if err != nil {
			return err
		}
		g.SetSnapshot(snap)
		return nil
	}
	return p, reload
}
