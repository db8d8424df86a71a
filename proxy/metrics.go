package proxy

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/upstream"
)

// metrics are the proxy's Prometheus series. They are always collected; New
// registers them only when WithRegisterer is given.
//
// Every label takes its values from a fixed set, whatever clients and
// upstreams send, so that no request can add series:
//   - route: the route kinds (routeBase ... routeUnknown);
//   - method: methodLabel's list, anything else "other";
//   - code: upstream.StatusLabel's (a known HTTP status, else its class or
//     "other", "aborted").
//
// The upstream client has its own series (upstream requests, caches,
// digest mismatches): see package upstream.
type metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	bytesServed     *prometheus.CounterVec
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
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.requestDuration, m.bytesServed)
	}
	return m
}

func (m *metrics) observeRequest(route, method string, code int, bytes int64, d time.Duration) {
	m.requests.WithLabelValues(route, methodLabel(method), upstream.StatusLabel(code)).Inc()
	m.requestDuration.WithLabelValues(route).Observe(d.Seconds())
	if bytes > 0 {
		m.bytesServed.WithLabelValues(route).Add(float64(bytes))
	}
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
