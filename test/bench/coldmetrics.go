package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// upstreamTimes is portcullis_upstream_request_duration_seconds as one
// scrape of /metrics showed it: per route, the requests and their total
// seconds (to response headers, as Portcullis timed them).
type upstreamTimes map[string]struct{ n, seconds float64 }

const upstreamDuration = "portcullis_upstream_request_duration_seconds"

// scrapeUpstreamTimes reads the histogram's _count and _sum per route from
// Portcullis's admin /metrics.
func scrapeUpstreamTimes(ctx context.Context, c *http.Client, admin string) (upstreamTimes, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s/metrics: %w", admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s/metrics: %s", admin, resp.Status)
	}
	out := upstreamTimes{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		route, kind, v, ok := parseDurationLine(sc.Text())
		if !ok {
			continue
		}
		e := out[route]
		if kind == "_count" {
			e.n += v
		} else {
			e.seconds += v
		}
		out[route] = e
	}
	return out, sc.Err()
}

// parseDurationLine reads one `<upstreamDuration>_sum{...,route="r",...} v`
// (or _count) line of the text exposition format.
func parseDurationLine(line string) (route, kind string, v float64, ok bool) {
	rest, found := strings.CutPrefix(line, upstreamDuration)
	if !found {
		return "", "", 0, false
	}
	for _, k := range []string{"_count", "_sum"} {
		if labels, ok := strings.CutPrefix(rest, k+"{"); ok {
			kind, rest = k, labels
		}
	}
	labels, value, found := strings.Cut(rest, "} ")
	if kind == "" || !found {
		return "", "", 0, false
	}
	_, after, found := strings.Cut(labels, `route="`)
	if !found {
		return "", "", 0, false
	}
	route, _, _ = strings.Cut(after, `"`)
	v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	return route, kind, v, err == nil
}

// coldAllCase is the case of the figures over all timed first GETs.
const coldAllCase = "all timed first GETs"

// upstreamTimeMetrics are, per route (a row "upstream <route>"), the
// requests per first GET and their mean time as Portcullis timed them,
// between two scrapes around gets first GETs.
func upstreamTimeMetrics(before, after upstreamTimes, gets int) []Metric {
	var out []Metric
	for _, route := range slices.Sorted(maps.Keys(after)) {
		n := after[route].n - before[route].n
		if n <= 0 {
			continue
		}
		secs := after[route].seconds - before[route].seconds
		out = append(out,
			Metric{Phase: "cold", Case: coldAllCase, Target: "upstream " + route, Name: "requests_per_first_get", Unit: "req", Value: n / float64(gets)},
			Metric{Phase: "cold", Case: coldAllCase, Target: "upstream " + route, Name: "mean", Unit: "ms", Value: 1000 * secs / n})
	}
	return out
}

// scrapeMetric returns the value of one series of Portcullis's admin
// /metrics, named exactly as the exposition format writes it
// (`name{label="v"}`); 0 when it is not there yet.
func scrapeMetric(ctx context.Context, admin, series string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := noProxyClient().Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape %s/metrics: %w", admin, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, sc.Err()
}
