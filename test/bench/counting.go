package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kinds of upstream requests the counting proxy tells apart.
const (
	reqReferrers    = "referrers"     // GET /v2/<name>/referrers/<digest> (the OCI API)
	reqReferrersTag = "referrers_tag" // the referrers fallback tag, manifests/sha256-<hex>
	reqSigTag       = "sig_tag"       // the legacy signature tag, manifests/sha256-<hex>.sig
	reqManifest     = "manifest"      // any other manifest (the image, signature manifests)
	reqBlob         = "blob"
	reqOther        = "other"
)

var requestKinds = []string{reqReferrers, reqReferrersTag, reqSigTag, reqManifest, reqBlob, reqOther}

var fallbackTagRE = regexp.MustCompile(`/manifests/sha(256|512)-[0-9a-f]+$`)

// classify names the kind of a registry request path.
func classify(path string) string {
	switch {
	case strings.Contains(path, "/referrers/"):
		return reqReferrers
	case strings.HasSuffix(path, ".sig"):
		return reqSigTag
	case fallbackTagRE.MatchString(path):
		return reqReferrersTag
	case strings.Contains(path, "/manifests/"):
		return reqManifest
	case strings.Contains(path, "/blobs/"):
		return reqBlob
	}
	return reqOther
}

// call is one request that passed the counting proxy: its kind, and when
// it arrived and when its response had been copied back.
type call struct {
	kind       string
	head       bool // a HEAD
	start, end time.Time
}

// countingProxy is a reverse proxy, in the harness's process, that records
// the requests passing through it: their kind and their timing.
type countingProxy struct {
	url   string
	srv   *http.Server
	trace bool // log every request with its duration

	mu       sync.Mutex
	calls    []call
	inflight int
	lastEnd  time.Time
	conns    int // connections accepted since the last takeConns
}

func startCountingProxy(upstream string, trace bool) (*countingProxy, error) {
	target, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("counting proxy: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("counting proxy: %w", err)
	}
	c := &countingProxy{url: "http://" + ln.Addr().String(), trace: trace}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 64
	t.DisableCompression = true
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport: t,
	}
	c.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.mu.Lock()
			c.inflight++
			c.mu.Unlock()
			t0 := time.Now()
			rp.ServeHTTP(w, r)
			t1 := time.Now()
			c.mu.Lock()
			c.inflight--
			c.lastEnd = t1
			c.calls = append(c.calls, call{kind: classify(r.URL.Path), head: r.Method == http.MethodHead, start: t0, end: t1})
			c.mu.Unlock()
			if c.trace {
				logf("upstream: %s %s %s %.2f ms", t0.Format("15:04:05.000000"), r.Method, r.URL.Path, ms(t1.Sub(t0)))
			}
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				c.mu.Lock()
				c.conns++
				c.mu.Unlock()
			}
		},
	}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// take returns the counts by kind of the requests answered since the last
// take or takeCalls, and forgets them.
func (c *countingProxy) take() map[string]int {
	return countKinds(c.takeCalls())
}

// takeCalls returns the requests answered since the last take or
// takeCalls, in the order they ended, and forgets them.
func (c *countingProxy) takeCalls() []call {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = nil
	return out
}

// takeConns returns how many connections were accepted since the last
// takeConns, and resets the count.
func (c *countingProxy) takeConns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.conns
	c.conns = 0
	return n
}

// settle waits until no request is in flight and none has ended for idle,
// so that what a GET set off is all counted before the next one starts.
func (c *countingProxy) settle(ctx context.Context, idle time.Duration) error {
	for {
		c.mu.Lock()
		quiet := c.inflight == 0 && time.Since(c.lastEnd) >= idle
		c.mu.Unlock()
		if quiet {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(idle / 4):
		}
	}
}

func countKinds(calls []call) map[string]int {
	out := map[string]int{}
	for _, c := range calls {
		out[c.kind]++
	}
	return out
}

// sequential is the longest chain of calls of which each started after
// the one before it had ended: the upstream round trips on the critical
// path, as the proxy saw them. Calls that overlap ran concurrently and
// count once. Greedy by end time finds the most pairwise disjoint
// intervals, and disjoint intervals are exactly a chain.
func sequential(calls []call) int {
	byEnd := slices.SortedFunc(slices.Values(calls), func(a, b call) int { return a.end.Compare(b.end) })
	n := 0
	var last time.Time
	for _, c := range byEnd {
		if n == 0 || !c.start.Before(last) {
			n++
			last = c.end
		}
	}
	return n
}

// busy is how long at least one of calls was in flight (the length of
// the union of their intervals): the time spent waiting on the upstream.
func busy(calls []call) time.Duration {
	byStart := slices.SortedFunc(slices.Values(calls), func(a, b call) int { return a.start.Compare(b.start) })
	var total time.Duration
	var from, to time.Time
	for i, c := range byStart {
		switch {
		case i == 0:
			from, to = c.start, c.end
		case c.start.After(to):
			total += to.Sub(from)
			from, to = c.start, c.end
		case c.end.After(to):
			to = c.end
		}
	}
	if len(byStart) > 0 {
		total += to.Sub(from)
	}
	return total
}

func (c *countingProxy) close() { _ = c.srv.Close() }
