package store

import "github.com/prometheus/client_golang/prometheus"

// metrics are the store's Prometheus series. They are always collected;
// Open registers them only when WithRegisterer is given.
//
// Every label takes its values from a fixed set:
//   - kind: "blob", "manifest", "tag" (lookups; commits also "material",
//     "link"; stale answers "tag", "material");
//   - result: "hit", "miss", "joined" (a request read a fetch in progress);
//   - cause: the cause* constants of a discarded fetch;
//   - source: "store", "upstream".
type metrics struct {
	lookups    *prometheus.CounterVec
	commits    *prometheus.CounterVec
	discarded  *prometheus.CounterVec
	served     *prometheus.CounterVec
	stale      *prometheus.CounterVec
	evictions  prometheus.Counter
	diskErrors prometheus.Counter
	usage      prometheus.Gauge
	filling    prometheus.Gauge
	limit      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "store_lookups_total",
			Help: "Content store lookups, by kind (blob, manifest, tag) and result (hit, miss, joined: read a fetch in progress).",
		}, []string{"kind", "result"}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "store_commits_total",
			Help: "Verified objects written to the content store, by kind.",
		}, []string{"kind"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "store_discarded_fetches_total",
			Help: "Blob fetches into the content store that were discarded, by cause (upstream_error, truncated, digest_mismatch, too_large, disk_error, in_flight_limit: fetches in progress held half the limit, the blob was served without being kept).",
		}, []string{"cause"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "store_blob_bytes_total",
			Help: "Blob bytes served to clients through the content store, by source (store: from disk; upstream: fetched for it).",
		}, []string{"source"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "store_stale_answers_total",
			Help: "Answers from the content store because the upstream could not answer, by kind (tag, manifest).",
		}, []string{"kind"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "store_evictions_total",
			Help: "Objects evicted from the content store to stay under its size limit.",
		}),
		diskErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "portcullis", Name: "store_disk_errors_total",
			Help: "Writes to the content store that failed (disk full or failing); the content was served from the upstream.",
		}),
		usage: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "portcullis", Name: "store_bytes",
			Help: "Bytes stored in the content store.",
		}),
		filling: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "portcullis", Name: "store_filling_bytes",
			Help: "Bytes reserved in the content store's tmp/ by blob fetches in progress (their sizes); counted with store_bytes against the limit.",
		}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "portcullis", Name: "store_limit_bytes",
			Help: "The content store's size limit (cache.maxSize).",
		}),
	}
	// Every series exists from the start (their label sets are fixed), so
	// none appears later and dashboards see zeros rather than gaps.
	for _, k := range []string{"blob", "manifest", "tag"} {
		for _, r := range []string{"hit", "miss", "joined"} {
			m.lookups.WithLabelValues(k, r)
		}
	}
	for _, k := range []kind{kindBlob, kindManifest, kindTag, kindMaterial, kindLink} {
		m.commits.WithLabelValues(k.String())
	}
	for _, c := range []string{causeUpstream, causeTruncated, causeMismatch, causeTooLarge, causeDisk, causeBusy} {
		m.discarded.WithLabelValues(c)
	}
	for _, src := range []string{"store", "upstream"} {
		m.served.WithLabelValues(src)
	}
	for _, k := range []string{"tag", "material"} {
		m.stale.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(m.lookups, m.commits, m.discarded, m.served, m.stale, m.evictions, m.diskErrors, m.usage, m.filling, m.limit)
	}
	return m
}
