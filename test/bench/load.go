package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// containerdAccept is the Accept header containerd sends for manifests.
const containerdAccept = "application/vnd.docker.distribution.manifest.v2+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, " +
	"application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.oci.image.index.v1+json, */*"

// loadSpec is the request a load sends over and over, and what a correct
// answer looks like.
type loadSpec struct {
	url        string
	accept     string
	wantDigest string // Docker-Content-Digest, when not empty
	wantSize   int64  // body length, when >= 0
}

// loader is a closed-loop load generator: one worker per keep-alive
// connection, each sending its next request when the previous one is read.
type loader struct {
	spec    loadSpec
	clients []*http.Client
}

func newLoader(spec loadSpec, connections int) *loader {
	l := &loader{spec: spec}
	for range connections {
		l.clients = append(l.clients, &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DisableCompression:  true,
			MaxIdleConnsPerHost: 1,
			MaxConnsPerHost:     1,
		}})
	}
	return l
}

func (l *loader) close() {
	for _, c := range l.clients {
		c.CloseIdleConnections()
	}
}

// loadResult is one run of a load.
type loadResult struct {
	elapsed   time.Duration
	latencies []time.Duration // sorted
}

func (r loadResult) requests() int { return len(r.latencies) }

func (r loadResult) rate() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

// percentile is the p-th percentile latency (nearest rank), in ms.
func (r loadResult) percentile(p float64) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies))*p/100+0.5) - 1
	i = min(max(i, 0), len(r.latencies)-1)
	return float64(r.latencies[i]) / float64(time.Millisecond)
}

// prime sends one request, so caches are warm before anything is timed.
func (l *loader) prime(ctx context.Context) error {
	req, err := l.request(ctx)
	if err != nil {
		return err
	}
	return l.once(l.clients[0], req)
}

// run sends requests on every connection for d. Any failed request fails
// the run.
func (l *loader) run(ctx context.Context, d time.Duration) (loadResult, error) {
	g, gctx := errgroup.WithContext(ctx)
	lats := make([][]time.Duration, len(l.clients))
	start := time.Now()
	deadline := start.Add(d)
	for i, c := range l.clients {
		g.Go(func() error {
			var err error
			lats[i], err = l.worker(gctx, c, deadline)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return loadResult{}, err
	}
	res := loadResult{elapsed: time.Since(start), latencies: slices.Concat(lats...)}
	slices.Sort(res.latencies)
	return res, nil
}

func (l *loader) worker(ctx context.Context, c *http.Client, deadline time.Time) ([]time.Duration, error) {
	req, err := l.request(ctx)
	if err != nil {
		return nil, err
	}
	lat := make([]time.Duration, 0, 1<<14)
	for {
		t0 := time.Now()
		if !t0.Before(deadline) {
			return lat, nil
		}
		if err := l.once(c, req); err != nil {
			return lat, err
		}
		lat = append(lat, time.Since(t0))
	}
}

func (l *loader) request(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.spec.url, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", l.spec.url, err)
	}
	if l.spec.accept != "" {
		req.Header.Set("Accept", l.spec.accept)
	}
	return req, nil
}

// once sends req and checks the answer.
func (l *loader) once(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", l.spec.url, err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: body: %w", l.spec.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", l.spec.url, resp.Status)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); l.spec.wantDigest != "" && got != l.spec.wantDigest {
		return fmt.Errorf("GET %s: Docker-Content-Digest %q, want %q", l.spec.url, got, l.spec.wantDigest)
	}
	if l.spec.wantSize >= 0 && n != l.spec.wantSize {
		return fmt.Errorf("GET %s: %d bytes, want %d", l.spec.url, n, l.spec.wantSize)
	}
	return nil
}
