package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/store"
)

// newModelProxy wires the upstream client, the gate and the proxy exactly
// as serve does (from a config file, through wire), with the gate's clock
// given and the tag cache off (tags move in the model), and returns the
// proxy with a function that reloads the policy file.
//
// With storeDir, the proxy has a content store there.
func newModelProxy(t testing.TB, upstreamHost, policyFile string, now func() time.Time, staleIfError time.Duration, storeDir string) (http.Handler, *store.Store, func() error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	yaml := fmt.Sprintf(`policyFile: %s
defaultRegistry: %s
upstreams:
  - registry: %s
    endpoint: http://%s
    insecure: true
tagTTL: 0s
verdictTTL: %s
denyTTL: %s
verdictStaleIfError: %s
`, policyFile, modelRegistry, modelRegistry, upstreamHost, modelVerdictTTL, modelDenyTTL, staleIfError)
	if storeDir != "" {
		yaml += "cache: {dir: " + storeDir + ", maxStale: " + staleIfError.String() + "}\n"
	}
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	builder := &gate.Loader{}
	w, err := wire(cfg, builder, zap.NewNop(), prometheus.NewRegistry(), gate.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.close)
	reload := func() error {
		snap, err := builder.Load(policyFile)
		if err != nil {
			return err
		}
		w.gate.SetSnapshot(snap)
		return nil
	}
	return w.proxy, w.store, reload
}
