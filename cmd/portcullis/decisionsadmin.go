package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/policy"
)

// decisionsAdmin serves the gate's decision log and verdict purges on the
// admin listener:
//
//	GET  /decisions?image=<glob>&digest=<digest>&result=deny&since=10m&limit=100
//	GET  /decisions/summary?result=warn&since=24h
//	POST /cache/verdicts/purge?image=<glob>   (logged with the caller's address)
//
// image is a policy image pattern ("ghcr.io/acme/**"); since a duration
// back from now or an RFC 3339 time; records come newest first.
type decisionsAdmin struct {
	log  *gate.DecisionLog
	gate *gate.Gate
	zap  *zap.Logger
}

// maxDecisionsAnswer bounds one /decisions answer when no limit is given.
const maxDecisionsAnswer = 1000

func (a *decisionsAdmin) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /decisions", func(w http.ResponseWriter, r *http.Request) {
		f, err := decisionFilter(r.URL.Query(), time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, a.log.Query(f))
	})
	mux.HandleFunc("GET /decisions/summary", func(w http.ResponseWriter, r *http.Request) {
		f, err := decisionFilter(r.URL.Query(), time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, a.log.Summary(f))
	})
	mux.HandleFunc("POST /cache/verdicts/purge", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var pattern *policy.ImagePattern
		if s := q.Get("image"); s != "" {
			p, err := policy.ParseImagePattern(s)
			if err != nil {
				http.Error(w, "image: "+err.Error(), http.StatusBadRequest)
				return
			}
			pattern = &p
		} else if q.Get("all") != "true" {
			http.Error(w, "image: want an image pattern such as ghcr.io/acme/** (or all=true to drop every verdict)", http.StatusBadRequest)
			return
		}
		n, err := a.gate.Purge(r.Context(), pattern, false)
		if err != nil {
			a.zap.Warn("verdict purge incomplete", zap.String("remote", r.RemoteAddr), zap.String("image", pattern.String()), zap.Error(err))
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		a.zap.Info("verdicts purged", zap.String("remote", r.RemoteAddr), zap.String("image", pattern.String()), zap.Int("verdicts", n))
		writeJSON(w, purgeResult{Image: pattern.String(), Verdicts: n})
	})
}

// purgeResult is the answer of POST /cache/verdicts/purge.
type purgeResult struct {
	Image    string `json:"image"` // the normalised pattern ("" for all)
	Verdicts int    `json:"verdicts"`
}

// decisionFilter reads a /decisions query.
func decisionFilter(q url.Values, now time.Time) (gate.Filter, error) {
	f := gate.Filter{Limit: maxDecisionsAnswer, Digest: q.Get("digest")}
	if s := q.Get("image"); s != "" {
		p, err := policy.ParseImagePattern(s)
		if err != nil {
			return f, fmt.Errorf("image: %w", err)
		}
		f.Image = &p
	}
	if s := q.Get("result"); s != "" {
		if !slices.Contains(gate.Results, gate.Result(s)) {
			return f, fmt.Errorf("result: want one of %v, got %q", gate.Results, s)
		}
		f.Result = gate.Result(s)
	}
	if s := q.Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			f.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			f.Since = t
		} else {
			return f, fmt.Errorf("since: want a duration such as 10m or an RFC 3339 time, got %q", s)
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return f, fmt.Errorf("limit: want a positive number, got %q", s)
		}
		f.Limit = n
	}
	return f, nil
}
