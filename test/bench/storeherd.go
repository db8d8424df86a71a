package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// storeHerdFleet is Portcullis with a content store, behind a counting
// proxy.
var storeHerdFleet = fleetSpec{proxies: []string{targetPortcullisStore}, counting: true}

// storeTagTTL is the tagTTL of Portcullis with a content store: short, so
// that the store-herd phase sees a tag re-checked after it.
const storeTagTTL = 2 * time.Second

// warmTagGets is how many GETs by tag the store-herd phase makes within
// tagTTL.
const warmTagGets = 100

// runStoreHerdPhase: -herd concurrent first GETs of one new blob (256 MiB)
// through Portcullis with a content store make one upstream GET, and the
// slowest client's time to the last byte is compared with one cold GET of
// another blob of the same size plus -herd concurrent warm GETs from the
// store, measured here. Every client's bytes are counted; the first four
// clients' are hashed too (hashing all would put 64 streams of SHA-256 on
// the proxy's cores).
func runStoreHerdPhase(ctx context.Context, b *bench, f *fleet) ([]Metric, error) {
	t := f.target(targetPortcullisStore)
	fix := b.fix
	n := b.cfg.herd
	c := noProxyClient()
	defer c.CloseIdleConnections()
	getTag := manifestGetter(c, t.base, fix.HerdBlobRepo, fix.HerdBlobTag, fix.HerdBlobManifest)
	if _, err := getTag(ctx); err != nil {
		return nil, fmt.Errorf("manifest of the herd blob image: %w", err)
	}
	// Warm tag pulls: within tagTTL, none reaches the upstream.
	resolved := time.Now()
	if err := f.counter.settle(ctx, 100*time.Millisecond); err != nil {
		return nil, err
	}
	f.counter.takeCalls()
	for range warmTagGets {
		if _, err := getTag(ctx); err != nil {
			return nil, fmt.Errorf("warm GET by tag: %w", err)
		}
	}
	if d := time.Since(resolved); d >= storeTagTTL {
		return nil, fmt.Errorf("%d warm GETs by tag took %s, past tagTTL (%s)", warmTagGets, d, storeTagTTL)
	}
	warmTag := len(f.counter.takeCalls())
	url := func(d string) string { return t.base + "/v2/" + fix.HerdBlobRepo + "/blobs/" + d }
	herdBlob, otherBlob := fix.HerdBlobs[0], fix.HerdBlobs[1]
	f.counter.take()

	// One cold GET, alone.
	oneCold, err := getBlob(ctx, c, url(otherBlob), otherBlob, fix.HerdBlobSize, false)
	if err != nil {
		return nil, fmt.Errorf("one cold GET: %w", err)
	}
	if err := waitStored(ctx, t, 1); err != nil {
		return nil, err
	}
	f.counter.take()

	cold, err := blobHerd(ctx, n, url(herdBlob), herdBlob, fix.HerdBlobSize)
	if err != nil {
		return nil, fmt.Errorf("%d concurrent cold GETs: %w", n, err)
	}
	gets := f.counter.take()[reqBlob]
	if err := waitStored(ctx, t, 2); err != nil {
		return nil, err
	}
	warm, err := blobHerd(ctx, n, url(herdBlob), herdBlob, fix.HerdBlobSize)
	if err != nil {
		return nil, fmt.Errorf("%d concurrent warm GETs: %w", n, err)
	}
	warmGets := f.counter.take()[reqBlob]

	// After tagTTL: one GET by tag re-checks the tag with one HEAD, and
	// nothing else.
	time.Sleep(time.Until(resolved.Add(storeTagTTL + 100*time.Millisecond)))
	if _, err := getTag(ctx); err != nil {
		return nil, fmt.Errorf("GET by tag after tagTTL: %w", err)
	}
	if err := f.counter.settle(ctx, 100*time.Millisecond); err != nil {
		return nil, err
	}
	after := f.counter.takeCalls()
	afterGets := 0
	for _, c := range after {
		if !c.head {
			afterGets++
		}
	}
	logf("store tags: %d warm GETs by tag within tagTTL -> %d upstream requests; one after tagTTL -> %d (%d not HEADs)",
		warmTagGets, warmTag, len(after), afterGets)

	slowCold, slowWarm := slices.Max(cold), slices.Max(warm)
	logf("store herd: %d concurrent cold GETs of %s -> %d upstream blob GETs, slowest %.0f ms; one cold GET %.0f ms; %d warm, slowest %.0f ms (%d upstream GETs)",
		n, formatSize(fix.HerdBlobSize), gets, slowCold, ms(oneCold), n, slowWarm, warmGets)
	caseName := fmt.Sprintf("%d concurrent GETs of one %s blob", n, formatSize(fix.HerdBlobSize))
	metric := func(name, unit string, v float64) Metric {
		return Metric{Phase: "store-herd", Case: caseName, Target: targetPortcullisStore, Name: name, Unit: unit, Value: v}
	}
	tagCase := fmt.Sprintf("GETs by tag, tagTTL %s", storeTagTTL)
	tagMetric := func(name string, v int) Metric {
		return Metric{Phase: "store-herd", Case: tagCase, Target: targetPortcullisStore, Name: name, Unit: "req", Value: float64(v)}
	}
	return []Metric{
		tagMetric(fmt.Sprintf("upstream_requests_%d_within_ttl", warmTagGets), warmTag),
		tagMetric("upstream_requests_one_after_ttl", len(after)),
		tagMetric("upstream_non_head_one_after_ttl", afterGets),
		metric("upstream_blob_gets_cold", "req", float64(gets)),
		metric("upstream_blob_gets_warm", "req", float64(warmGets)),
		metric("slowest_cold_ttlb", "ms", slowCold),
		metric("one_cold_get", "ms", ms(oneCold)),
		metric("slowest_warm_ttlb", "ms", slowWarm),
		metric("slowest_cold_over_cold_plus_warm", "x", slowCold/(ms(oneCold)+slowWarm)),
	}, nil
}

// blobHerd releases n GETs of a blob at once (a connection each, opened
// first) and returns each one's time to the last byte (ms).
func blobHerd(ctx context.Context, n int, url, digest string, size int64) ([]float64, error) {
	clients := make([]*http.Client, n)
	for i := range clients {
		clients[i] = noProxyClient()
		defer clients[i].CloseIdleConnections()
	}
	start := make(chan struct{})
	lat := make([]float64, n)
	var ready sync.WaitGroup
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range clients {
		ready.Add(1)
		g.Go(func() error {
			ready.Done()
			<-start
			d, err := getBlob(gctx, c, url, digest, size, i < 4)
			lat[i] = ms(d)
			return err
		})
	}
	ready.Wait()
	time.Sleep(10 * time.Millisecond)
	close(start)
	return lat, g.Wait()
}
