package proxy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis-dev/portcullis/upstream"
)

// TestMetricLabelsAreBounded: whatever clients and upstreams send (made-up
// methods of 4 KiB, made-up status codes), every metric label takes its
// value from a fixed set, so /metrics cannot be grown without bound. The
// log line keeps the method, truncated.
func TestMetricLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.InfoLevel)
	up := newUpstreamServer(t)
	up.push(t, "acme/app", "v1", randomImage(t, 64, 1))
	var next atomic.Int32
	up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		w.WriteHeader(600 + int(next.Add(1))%400)
		return true
	})
	tp := newTestProxy(t, map[string]*upstreamServer{"registry.example": up},
		WithRegisterer(reg), upstream.WithRegisterer(reg), WithLogger(zap.New(core)), upstream.WithTagTTL(0))

	const n = 20
	for i := range n {
		method := fmt.Sprintf("M%04d", i) + strings.Repeat("X", 4<<10)
		req, err := http.NewRequestWithContext(context.Background(), method, tp.URL+"/v2/registry.example/acme/app/manifests/v1", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tp.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mustEqual(t, "status of a made-up method", resp.StatusCode, http.StatusMethodNotAllowed)
		// An upstream answering made-up status codes.
		resp, _ = tp.do(t, "GET", fmt.Sprintf("/v2/registry.example/acme/app/manifests/t%d", i), nil)
		mustEqual(t, "status of an upstream's made-up code", resp.StatusCode, http.StatusBadGateway)
	}

	allowed := map[string]map[string]bool{
		"route":  set(routeBase, routeManifest, routeBlob, routeTags, routeReferrers, routeUnknown),
		"method": set("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "other"),
		"cache":  set("tag", "manifest"),
		"result": set("hit", "miss"),
		"kind":   set("tag"),
	}
	codes := set("aborted", "error", "other", "1xx", "2xx", "3xx", "4xx", "5xx")
	for c := 100; c < 600; c++ {
		if http.StatusText(c) != "" {
			codes[fmt.Sprint(c)] = true
		}
	}
	allowed["code"] = codes
	allowed["registry"] = set("registry.example")

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			series++
			for _, l := range m.GetLabel() {
				want, ok := allowed[l.GetName()]
				if !ok {
					t.Errorf("%s: label %q has no fixed set in this test", mf.GetName(), l.GetName())
					continue
				}
				if v := l.GetValue(); !want[v] {
					t.Errorf("%s: label %s=%.40q is not from its fixed set", mf.GetName(), l.GetName(), v)
				}
			}
		}
	}
	if series > 30 {
		t.Errorf("%d series after %d odd requests, want a handful", series, 2*n)
	}

	// A line is logged once the handler returns, which may be after the
	// client has the whole response.
	for deadline := time.Now().Add(2 * time.Second); logs.FilterMessage("request").Len() < 2*n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	lines := logs.FilterMessage("request").All()
	odd := 0
	for _, e := range lines {
		m := e.ContextMap()["method"].(string)
		if len(m) > 16 {
			t.Fatalf("logged method of %d bytes, want at most 16", len(m))
		}
		if msg, _ := e.ContextMap()["error"].(string); len(msg) > 1024 {
			t.Fatalf("logged an error message of %d bytes", len(msg))
		}
		if strings.HasPrefix(m, "M0") {
			odd++
		}
	}
	mustEqual(t, "log lines naming the made-up method", odd, n)
}

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}
