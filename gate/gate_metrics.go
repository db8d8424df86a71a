package gate

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gateMetrics are the gate's Prometheus series, registered only when a
// Registerer is given.
type gateMetrics struct {
	verdicts   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	cache      *prometheus.CounterVec
	signatures prometheus.Counter
	stale      prometheus.Counter
	errors     prometheus.Counter
	answers    [4]prometheus.Counter // by Result.index
}

func newGateMetrics(reg prometheus.Registerer) *gateMetrics {
	m := &gateMetrics{
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "verdicts_total",
			Help: "Decisions made (not cache hits), by policy and result (allow, deny, warn).",
		}, []string{"policy", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "portcullis", Name: "verification_duration_seconds",
			Help:    "Time spent deciding, by step: discovery (finding signatures), crypto (verifying them), total.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"step"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "verdict_cache_lookups_total",
			Help: "Verdict cache lookups by result (hit, miss).",
		}, []string{"result"}),
		signatures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "signatures_examined_total",
			Help: "Signatures found and examined.",
		}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "stale_verdicts_served_total",
			Help: "Expired allow verdicts used because a new decision failed (staleIfError).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "decision_errors_total",
			Help: "Decisions that could not be made (upstream errors, timeouts): answered 503.",
		}),
	}
	answers := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "portcullis", Name: "manifest_answers_total",
		Help: "Manifest requests the gate answered as images, cache hits included, by result: allow, warn (served despite a warn-mode policy violation), deny, error (no decision: 503).",
	}, []string{"result"})
	for _, r := range Results {
		m.answers[r.index()] = answers.WithLabelValues(string(r))
	}
	if reg != nil {
		reg.MustRegister(m.verdicts, m.duration, m.cache, m.signatures, m.stale, m.errors, answers)
	}
	return m
}

func (m *gateMetrics) cacheLookup(hit bool) {
	if hit {
		m.cache.WithLabelValues("hit").Inc()
		return
	}
	m.cache.WithLabelValues("miss").Inc()
}

func (m *gateMetrics) step(step string, d time.Duration) {
	m.duration.WithLabelValues(step).Observe(d.Seconds())
}

func (m *gateMetrics) verdict(policy string, v *Verdict) {
	m.verdicts.WithLabelValues(policy, string(resultOf(v))).Inc()
}

// answer counts one manifest answer (the series exist from the start, so
// the hot path does no label lookup).
func (m *gateMetrics) answer(r Result) { m.answers[r.index()].Inc() }
