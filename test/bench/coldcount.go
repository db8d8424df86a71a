package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// settleIdle is how long the counting proxy must be quiet after a counted
// first GET before its requests are taken: what the GET set off and the
// client did not wait for (a lookup that lost a race) is still its cost.
const settleIdle = 20 * time.Millisecond

// coldCount is what the counted pass saw of one case's first GETs.
type coldCount struct {
	total, seq, critical, busy, lat, conns []float64
	kinds                                  map[string][]float64
}

// countCold GETs every first GET of plan again, through Portcullis's twin
// behind the counting proxy (fresh caches, so each is as cold as in the
// timed pass), one at a time, and reports per case the upstream requests
// per first GET: in all (including any the GET set off but did not wait
// for), by kind (in the table's note), and how many ran one after another
// before the answer (sequential: the round trips on the critical path).
// upstream_busy is how long at least one upstream request was in flight
// before the answer, counted_p50 the GET's latency through the extra hop:
// their difference is about Portcullis's own time.
func countCold(ctx context.Context, b *bench, f *fleet, plan []coldGet) ([]Metric, error) {
	pc := f.target(targetPortcullisCounted)
	client := noProxyClient()
	defer client.CloseIdleConnections()
	// The same warm-up as the timed pass.
	if err := warmUp(ctx, manifestGetter(client, pc.base, b.fix.Repo, b.fix.ManifestDigest, b.fix.ManifestDigest)); err != nil {
		return nil, fmt.Errorf("counted pass: %w", err)
	}
	if err := f.counter.settle(ctx, settleIdle); err != nil {
		return nil, err
	}
	f.counter.takeCalls()
	f.counter.takeConns()
	counts := map[string]*coldCount{}
	for _, g := range plan {
		d, err := manifestGetter(client, pc.base, g.im.Repo, g.ref(), g.im.Digest)(ctx)
		answered := time.Now()
		if err != nil {
			return nil, fmt.Errorf("counted cold GET of %s by %s (%s): %w", g.im.Repo, g.by, g.im.Format, err)
		}
		if err := f.counter.settle(ctx, settleIdle); err != nil {
			return nil, err
		}
		c := counts[g.caseName()]
		if c == nil {
			c = &coldCount{kinds: map[string][]float64{}}
			counts[g.caseName()] = c
		}
		c.add(f.counter.takeCalls(), answered, d, f.counter.takeConns())
	}
	var out []Metric
	for by, format := range coldCases() {
		if c := counts[coldCase(by, format)]; c != nil {
			logf("cold by %s, %s: %.0f upstream requests per first GET (max %.0f), %.0f sequential (max %.0f), %.1f new connections (mean); counted p50 %.2f ms, upstream busy %.2f ms",
				by, format, median(c.total), slices.Max(c.total), median(c.seq), slices.Max(c.seq), mean(c.conns), median(c.lat), median(c.busy))
			out = append(out, c.metrics(coldCase(by, format))...)
		}
	}
	return out, nil
}

// add records one counted first GET: the calls it set off, when it was
// answered, its latency and the upstream connections it opened.
func (c *coldCount) add(calls []call, answered time.Time, d time.Duration, conns int) {
	var before []call // the calls the answer waited for
	for _, x := range calls {
		if !x.end.After(answered) {
			before = append(before, x)
		}
	}
	c.total = append(c.total, float64(len(calls)))
	c.critical = append(c.critical, float64(len(before)))
	c.seq = append(c.seq, float64(sequential(before)))
	c.busy = append(c.busy, ms(busy(before)))
	c.lat = append(c.lat, ms(d))
	c.conns = append(c.conns, float64(conns))
	byKind := countKinds(calls)
	for _, k := range requestKinds {
		c.kinds[k] = append(c.kinds[k], float64(byKind[k]))
	}
}

// metrics are the medians of one case (new connections: the mean, as
// most GETs open none), on the portcullis row of its table.
func (c *coldCount) metrics(caseName string) []Metric {
	metric := func(name, unit string, v float64, xs []float64) Metric {
		return Metric{Phase: "cold", Case: caseName, Target: targetPortcullis, Name: name, Unit: unit, Value: v, Samples: xs}
	}
	total := metric("upstream_requests", "req", median(c.total), c.total)
	total.Note = c.note()
	return []Metric{total,
		metric("upstream_sequential", "req", median(c.seq), c.seq),
		metric("upstream_blob_requests", "req", median(c.kinds[reqBlob]), c.kinds[reqBlob]),
		metric("upstream_new_conns", "conn (mean)", mean(c.conns), c.conns),
		metric("upstream_busy", "ms", median(c.busy), c.busy),
		metric("counted_p50", "ms", median(c.lat), c.lat),
	}
}

// note is the breakdown printed under the table: requests by kind, and
// the spread the medians hide.
func (c *coldCount) note() string {
	var kinds []string
	for _, k := range requestKinds {
		kinds = append(kinds, fmt.Sprintf("%s %.0f", k, median(c.kinds[k])))
	}
	return fmt.Sprintf("upstream requests per first GET, median over %d GETs through the counted twin: %s "+
		"(other: /v2/ pings and anything else); per GET, min-max: %.0f-%.0f in all, %.0f-%.0f before the answer, "+
		"%.0f-%.0f of those one after another",
		len(c.total), strings.Join(kinds, ", "),
		slices.Min(c.total), slices.Max(c.total),
		slices.Min(c.critical), slices.Max(c.critical),
		slices.Min(c.seq), slices.Max(c.seq))
}
