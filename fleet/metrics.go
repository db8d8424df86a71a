package fleet

import "github.com/prometheus/client_golang/prometheus"

// Operations and rejection reasons: the fixed label values of the fleet
// metrics.
const (
	opGet     = "get"
	opPut     = "put"
	opGrants  = "grants"
	opLease   = "lease"
	opAwait   = "await"
	opPurge   = "purge"
	opPublish = "publish"
	opPing    = "ping"
	opRecord  = "record"
	opQuery   = "query"
	opTag     = "tag"

	rejectSeal    = "hmac"      // the HMAC did not match
	rejectKey     = "wrong-key" // a verdict of another key, revision or kind
	rejectDecode  = "malformed" // not a value a replica writes
	rejectExpired = "expired"   // past its own expiry (a replayed value)
	rejectPurged  = "purged"    // decided before a purge that selects it
	rejectLease   = "lease"     // a lease this replica did not seal
	rejectSize    = "oversize"  // larger than any value a replica writes (maxValue)
)

var (
	ops     = []string{opGet, opPut, opGrants, opLease, opAwait, opPurge, opPublish, opPing, opRecord, opQuery, opTag}
	rejects = []string{rejectSeal, rejectKey, rejectDecode, rejectExpired, rejectPurged, rejectLease, rejectSize}
)

type metrics struct {
	errors   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	hits     prometheus.Counter // verdicts learned from Redis (L1 missed)
	waited   prometheus.Counter // decisions another replica made while this one waited
	up       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Subsystem: "redis", Name: "errors_total",
			Help: "Redis operations that failed or timed out (the replica went on alone), by operation.",
		}, []string{"op"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Subsystem: "redis", Name: "rejected_total",
			Help: "Values read from Redis and ignored, never trusted, by reason (hmac, wrong-key, malformed, expired, purged, lease, oversize).",
		}, []string{"reason"}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Subsystem: "redis", Name: "verdict_hits_total",
			Help: "Verdicts found in Redis that this replica had not in memory.",
		}),
		waited: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Subsystem: "redis", Name: "decisions_awaited_total",
			Help: "Decisions another replica made while this one waited on its lease.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "portcullis", Subsystem: "redis", Name: "up",
			Help: "1 while Redis answers, 0 while the replica is on its own.",
		}),
	}
	for _, op := range ops {
		m.errors.WithLabelValues(op)
	}
	for _, r := range rejects {
		m.rejected.WithLabelValues(r)
	}
	reg.MustRegister(m.errors, m.rejected, m.hits, m.waited, m.up)
	return m
}
