package upstream

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Call kinds: the "route" label of the upstream metrics, one per kind of
// upstream request.
const (
	callManifest  = "manifest"
	callBlob      = "blob"
	callTags      = "tags"
	callReferrers = "referrers"
)

// metrics are the Client's Prometheus series. They are always collected;
// New registers them only when WithRegisterer is given.
//
// Every label takes its values from a fixed set, whatever upstreams send:
//   - registry: a configured upstream's name;
//   - route: the call kinds (callManifest ... callReferrers);
//   - code: StatusLabel's, or "error" for a call that got no answer;
//   - cache: "tag", "manifest"; result: "hit", "miss"; kind: "tag".
type metrics struct {
	duration       *prometheus.HistogramVec
	requests       *prometheus.CounterVec
	cache          *prometheus.CounterVec
	digestMismatch *prometheus.CounterVec
	staleServed    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "portcullis", Name: "upstream_request_duration_seconds",
			Help:    "Time to an upstream's response headers, by registry and route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"registry", "route"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "upstream_requests_total",
			Help: "Requests sent to upstream registries, by registry, route and status code (\"error\" when none came).",
		}, []string{"registry", "route", "code"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "cache_lookups_total",
			Help: "In-memory cache lookups, by cache (tag, manifest) and result (hit, miss).",
		}, []string{"cache", "result"}),
		digestMismatch: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "digest_mismatches_total",
			Help: "Upstream content whose bytes did not hash to the expected digest, by registry and route.",
		}, []string{"registry", "route"}),
		staleServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "stale_served_total",
			Help: "Cached entries used past their TTL because the upstream could not answer, by kind.",
		}, []string{"kind"}),
	}
	for _, cache := range []string{"tag", "manifest"} { // every series from the start
		for _, result := range []string{"hit", "miss"} {
			m.cache.WithLabelValues(cache, result)
		}
	}
	if reg != nil {
		reg.MustRegister(m.duration, m.requests, m.cache, m.digestMismatch, m.staleServed)
	}
	return m
}

func (m *metrics) observe(registry, route string, code int, d time.Duration) {
	label := "error"
	if code != 0 {
		label = StatusLabel(code)
	}
	m.requests.WithLabelValues(registry, route, label).Inc()
	m.duration.WithLabelValues(registry, route).Observe(d.Seconds())
}

func (m *metrics) cacheLookup(cache string, hit bool) {
	result := "miss"
	if hit {
		result = "hit"
	}
	m.cache.WithLabelValues(cache, result).Inc()
}

// StatusLabel is a status code as a metric label: "aborted" for 0 (the
// connection was cut), the code itself when it is a known HTTP status, else
// its class ("5xx"), else "other". Upstreams may answer any three digits.
func StatusLabel(code int) string {
	switch {
	case code == 0:
		return "aborted"
	case http.StatusText(code) != "":
		return strconv.Itoa(code)
	case code >= 100 && code < 600:
		return strconv.Itoa(code/100) + "xx"
	}
	return "other"
}
