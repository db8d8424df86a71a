package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus series. They are always collected; New
// registers them only when WithRegisterer is given.
//
// Every label takes its values from a fixed set, whatever clients and
// upstreams send, so that no request can add series:
//   - route: the route kinds (routeBase ... routeUnknown);
//   - method: methodLabel's list, anything else "other";
//   - code: statusLabel's (a known HTTP status, else its class or "other",
//     "aborted"), or "error" for an upstream call that got no answer;
//   - registry: a configured upstream's name;
//   - cache: "tag", "manifest"; result: "hit", "miss"; kind: "tag".
type metrics struct {
	requests         *prometheus.CounterVec
	requestDuration  *prometheus.HistogramVec
	bytesServed      *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	upstreamRequests *prometheus.CounterVec
	cache            *prometheus.CounterVec
	digestMismatch   *prometheus.CounterVec
	staleServed      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "http_requests_total",
			Help: "Client requests served, by route, method and status code (\"aborted\" when the connection was cut).",
		}, []string{"route", "method", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "portcullis", Name: "http_request_duration_seconds",
			Help:    "Time to serve a client request, by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		bytesServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "served_bytes_total",
			Help: "Body bytes sent to clients, by route.",
		}, []string{"route"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "portcullis", Name: "upstream_request_duration_seconds",
			Help:    "Time to an upstream's response headers, by registry and route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"registry", "route"}),
		upstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
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
	if reg != nil {
		reg.MustRegister(m.requests, m.requestDuration, m.bytesServed, m.upstreamDuration,
			m.upstreamRequests, m.cache, m.digestMismatch, m.staleServed)
	}
	return m
}

func (m *metrics) observeRequest(route, method string, code int, bytes int64, d time.Duration) {
	m.requests.WithLabelValues(route, methodLabel(method), statusLabel(code)).Inc()
	m.requestDuration.WithLabelValues(route).Observe(d.Seconds())
	if bytes > 0 {
		m.bytesServed.WithLabelValues(route).Add(float64(bytes))
	}
}

func (m *metrics) observeUpstream(registry, route string, code int, d time.Duration) {
	label := "error"
	if code != 0 {
		label = statusLabel(code)
	}
	m.upstreamRequests.WithLabelValues(registry, route, label).Inc()
	m.upstreamDuration.WithLabelValues(registry, route).Observe(d.Seconds())
}

func (m *metrics) cacheLookup(cache string, hit bool) {
	result := "miss"
	if hit {
		result = "hit"
	}
	m.cache.WithLabelValues(cache, result).Inc()
}

// methodLabel is the method as a metric label: one of the methods of RFC
// 9110 and PATCH, else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// statusLabel is a status code as a metric label: "aborted" for 0 (the
// connection was cut), the code itself when it is a known HTTP status, else
// its class ("5xx"), else "other". Upstreams may answer any three digits.
func statusLabel(code int) string {
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
