package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/store"
)

// adminHandler serves /metrics, /healthz (the process is alive) and /readyz
// (the registry listener is up and not shutting down). When status returns
// a line ("degraded: ..." when a policy reload failed and the last good
// policy is in force, "unverified: ..." when the config says
// "unverified: true"), /readyz stays 200, since the proxy serves as
// configured, but answers that line instead of "ready".
//
// With a content store (cache not nil) it also serves the cache
// endpoints the "portcullis cache" subcommands call with --admin; with a
// gate (decisions not nil), the decision log and verdict purges.
func adminHandler(reg *prometheus.Registry, ready *atomic.Bool, status func() string, cache *cacheAdmin, decisions *decisionsAdmin) http.Handler {
	mux := http.NewServeMux()
	if cache != nil {
		cache.routes(mux)
	}
	if decisions != nil {
		decisions.routes(mux)
	}
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

// cacheAdmin serves the content store's operations on the admin listener:
// GET /cache/entries, POST /cache/prune?olderThan=720h, POST /cache/verify
// and POST /cache/warm (a JSON {"images": [...]}, answered as a stream of
// JSON lines). Each POST is logged with the caller's address.
type cacheAdmin struct {
	store *store.Store
	// warm pulls one image through this proxy's registry listener.
	warm func(ctx context.Context, image string, progress func(string)) warmResult
	log  *zap.Logger
}

// maxWarmImages bounds one warm request.
const maxWarmImages = 10000

func (a *cacheAdmin) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /cache/entries", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, a.store.List())
	})
	mux.HandleFunc("POST /cache/prune", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("olderThan"))
		if err != nil || d <= 0 {
			http.Error(w, "olderThan: want a positive duration such as 720h", http.StatusBadRequest)
			return
		}
		a.log.Info("cache prune", zap.String("remote", r.RemoteAddr), zap.Duration("olderThan", d))
		var res pruneResult
		res.Objects, res.Bytes = a.store.Prune(d)
		writeJSON(w, res)
	})
	mux.HandleFunc("POST /cache/verify", func(w http.ResponseWriter, r *http.Request) {
		a.log.Info("cache verify", zap.String("remote", r.RemoteAddr))
		res, err := a.store.Verify(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, res)
	})
	mux.HandleFunc("POST /cache/warm", func(w http.ResponseWriter, r *http.Request) {
		var req warmRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4<<20)).Decode(&req); err != nil || len(req.Images) == 0 || len(req.Images) > maxWarmImages {
			http.Error(w, fmt.Sprintf(`want {"images": [...]} with 1 to %d images`, maxWarmImages), http.StatusBadRequest)
			return
		}
		a.log.Info("cache warm", zap.String("remote", r.RemoteAddr), zap.Int("images", len(req.Images)))
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		flush := func() {
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		for _, image := range req.Images {
			res := a.warm(r.Context(), image, func(line string) { _ = enc.Encode(warmEvent{Progress: line}); flush() })
			_ = enc.Encode(warmEvent{Result: &res})
			flush()
		}
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
