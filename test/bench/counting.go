package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
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

// countingProxy is a reverse proxy, in the harness's process, that counts
// the requests passing through it by kind.
type countingProxy struct {
	url   string
	srv   *http.Server
	trace bool // log every request with its duration

	mu     sync.Mutex
	counts map[string]int
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
	c := &countingProxy{url: "http://" + ln.Addr().String(), counts: map[string]int{}, trace: trace}
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
			c.counts[classify(r.URL.Path)]++
			c.mu.Unlock()
			t0 := time.Now()
			rp.ServeHTTP(w, r)
			if c.trace {
				logf("upstream: %s %s %s %.2f ms", t0.Format("15:04:05.000000"), r.Method, r.URL.Path, ms(time.Since(t0)))
			}
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// take returns the counts since the last take and resets them.
func (c *countingProxy) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = map[string]int{}
	return out
}

func (c *countingProxy) close() { _ = c.srv.Close() }
