package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// herdFleet is Portcullis alone, behind a counting proxy.
var herdFleet = fleetSpec{proxies: []string{targetPortcullis}, counting: true}

// runHerdPhase sends -herd concurrent first GETs (one connection each,
// released together) of one fresh signed digest through Portcullis, per
// trial, and counts the requests that reached the upstream by kind. One
// signature discovery is one referrers lookup (the API, then the fallback
// tag when the upstream has no API) and one .sig tag request.
func runHerdPhase(ctx context.Context, b *bench, f *fleet) ([]Metric, error) {
	pc := f.target(targetPortcullis)
	n := b.cfg.herd
	clients := make([]*http.Client, n)
	for i := range clients {
		clients[i] = noProxyClient()
		defer clients[i].CloseIdleConnections()
	}
	// Open every connection (and Portcullis's to the upstream) first, so
	// the herd is the requests, not the TCP handshakes.
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range clients {
		g.Go(func() error { return getOK(gctx, c, pc.base+"/v2/") })
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("open connections: %w", err)
	}
	if _, err := manifestGetter(clients[0], pc.base, b.fix.Repo, b.fix.ManifestDigest, b.fix.ManifestDigest)(ctx); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	f.counter.take()

	type acc struct {
		counts            map[string][]float64
		discoveries, lats []float64
	}
	byFormat := map[string]*acc{}
	for trial, im := range b.fix.Herd {
		ds, err := herdOnce(ctx, clients, pc.base, im)
		if err != nil {
			return nil, fmt.Errorf("trial %d (%s): %w", trial+1, im.Format, err)
		}
		got := f.counter.take()
		logf("herd trial %d (%s): %d concurrent first GETs -> upstream %v; p50 %.1f ms, max %.1f ms",
			trial+1, im.Format, n, got, median(ds), percentileOf(ds, 100))
		a := byFormat[im.Format]
		if a == nil {
			a = &acc{counts: map[string][]float64{}}
			byFormat[im.Format] = a
		}
		for _, k := range requestKinds {
			a.counts[k] = append(a.counts[k], float64(got[k]))
		}
		// A discovery lists referrers once and reads the .sig tag once:
		// more of either means more than one discovery ran.
		a.discoveries = append(a.discoveries, float64(max(got[reqReferrers], got[reqSigTag])))
		a.lats = append(a.lats, ds...)
	}
	var out []Metric
	for _, format := range signedFormats {
		a := byFormat[format]
		if a == nil {
			continue
		}
		caseName := fmt.Sprintf("%d concurrent first GETs of one digest, %s", n, formatName(format))
		metric := func(name, unit string, xs []float64) Metric {
			return Metric{Phase: "herd", Case: caseName, Target: targetPortcullis, Name: name, Unit: unit,
				Value: median(xs), Samples: xs}
		}
		out = append(out, metric("discoveries", "n", a.discoveries))
		total := make([]float64, len(a.discoveries))
		for _, k := range requestKinds {
			out = append(out, metric("upstream_"+k, "req", a.counts[k]))
			for i, v := range a.counts[k] {
				total[i] += v
			}
		}
		out = append(out,
			metric("upstream_total", "req", total),
			Metric{Phase: "herd", Case: caseName, Target: targetPortcullis, Name: "p50", Unit: "ms", Value: median(a.lats)},
			Metric{Phase: "herd", Case: caseName, Target: targetPortcullis, Name: "p99", Unit: "ms", Value: percentileOf(a.lats, 99)},
			Metric{Phase: "herd", Case: caseName, Target: targetPortcullis, Name: "trials", Unit: "n", Value: float64(len(a.discoveries))},
		)
	}
	return out, nil
}

// herdOnce releases one GET of im per client at once and returns their
// latencies (ms). Every one must be served.
func herdOnce(ctx context.Context, clients []*http.Client, base string, im signedImage) ([]float64, error) {
	start := make(chan struct{})
	lat := make([]float64, len(clients))
	var ready sync.WaitGroup
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range clients {
		ready.Add(1)
		get := manifestGetter(c, base, im.Repo, im.Digest, im.Digest)
		g.Go(func() error {
			ready.Done()
			<-start
			d, err := get(gctx)
			lat[i] = ms(d)
			return err
		})
	}
	ready.Wait()
	time.Sleep(10 * time.Millisecond) // let every goroutine reach the barrier
	close(start)
	return lat, g.Wait()
}
