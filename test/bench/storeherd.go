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
	if _, err := manifestGetter(c, t.base, fix.HerdBlobRepo, fix.HerdBlobTag, fix.HerdBlobManifest)(ctx); err != nil {
		return nil, fmt.Errorf("manifest of the herd blob image: %w", err)
	}
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
	slowCold, slowWarm := slices.Max(cold), slices.Max(warm)
	logf("store herd: %d concurrent cold GETs of %s -> %d upstream blob GETs, slowest %.0f ms; one cold GET %.0f ms; %d warm, slowest %.0f ms (%d upstream GETs)",
		n, formatSize(fix.HerdBlobSize), gets, slowCold, ms(oneCold), n, slowWarm, warmGets)
	caseName := fmt.Sprintf("%d concurrent GETs of one %s blob", n, formatSize(fix.HerdBlobSize))
	metric := func(name, unit string, v float64) Metric {
		return Metric{Phase: "store-herd", Case: caseName, Target: targetPortcullisStore, Name: name, Unit: unit, Value: v}
	}
	return []Metric{
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
