package main

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves /metrics, /healthz (the process is alive) and /readyz
// (the registry listener is up and not shutting down). When status returns
// a line ("degraded: ..." when a policy reload failed and the last good
// policy is in force, "unverified: ..." when the config says
// "unverified: true"), /readyz stays 200, since the proxy serves as
// configured, but answers that line instead of "ready".
func adminHandler(reg *prometheus.Registry, ready *atomic.Bool, status func() string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		if line := status(); line != "" {
			_, _ = w.Write([]byte(line + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
