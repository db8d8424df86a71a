package proxy

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/upstream"
)

func TestUpstreamFaults(t *testing.T) {
	cases := []struct {
		Description string
		Fault       func(http.ResponseWriter, *http.Request) bool
		Path        string
		Code        int
		ErrCode     string
		Header      map[string]string
	}{
		{Description: "500 on manifests", Path: "/v2/registry.example/acme/app/manifests/v1",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/manifests/") {
					w.WriteHeader(500)
					return true
				}
				return false
			}, Code: 502, ErrCode: "UPSTREAM_ERROR"},
		{Description: "500 on blobs", Path: "/v2/registry.example/acme/app/blobs/",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/blobs/") {
					w.WriteHeader(503)
					return true
				}
				return false
			}, Code: 502, ErrCode: "UPSTREAM_ERROR"},
		{Description: "timeout", Path: "/v2/registry.example/acme/app/manifests/v1",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/manifests/") {
					select {
					case <-r.Context().Done():
					case <-time.After(5 * time.Second):
					}
					return true
				}
				return false
			}, Code: 503, ErrCode: "UNAVAILABLE"},
		{Description: "429 passes Retry-After", Path: "/v2/registry.example/acme/app/manifests/v1",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/manifests/") {
					w.Header().Set("Retry-After", "17")
					w.WriteHeader(429)
					return true
				}
				return false
			}, Code: 429, ErrCode: "TOOMANYREQUESTS", Header: map[string]string{"Retry-After": "17"}},
		{Description: "429 on the first ping passes Retry-After", Path: "/v2/registry.example/acme/app/manifests/v1",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/v2/" {
					w.Header().Set("Retry-After", "23")
					w.WriteHeader(429)
					return true
				}
				return false
			}, Code: 429, ErrCode: "TOOMANYREQUESTS", Header: map[string]string{"Retry-After": "23"}},
		{Description: "429 with a Retry-After that is no number is passed on without it", Path: "/v2/registry.example/acme/app/manifests/v1",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path == "/v2/" {
					w.Header().Set("Retry-After", strings.Repeat("x", 64<<10))
					w.WriteHeader(429)
					return true
				}
				return false
			}, Code: 429, ErrCode: "TOOMANYREQUESTS", Header: map[string]string{"Retry-After": ""}},
		{Description: "403 from upstream refuses the proxy's credentials: an upstream error, not a policy refusal", Path: "/v2/registry.example/acme/app/manifests/v1",
			Fault: func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/manifests/") {
					w.WriteHeader(403)
					return true
				}
				return false
			}, Code: 502, ErrCode: "UPSTREAM_ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.Description, func(t *testing.T) {
			f := newFixture(t, upstream.WithTimeout(500*time.Millisecond), upstream.WithTagTTL(0))
			f.reg.setFault(tc.Fault)
			path := tc.Path
			if strings.HasSuffix(path, "/blobs/") {
				path += f.layerHex
			}
			resp, body := f.proxy.do(t, "GET", path, nil)
			mustEqual(t, "status", resp.StatusCode, tc.Code)
			mustEqual(t, "code", errorCode(t, body), tc.ErrCode)
			if resp.Header.Get("Docker-Content-Digest") != "" {
				t.Fatal("an error carries a Docker-Content-Digest")
			}
			for k, v := range tc.Header {
				mustEqual(t, k, resp.Header.Get(k), v)
			}
		})
	}
}

// TestUnreachableUpstream: nothing listens at the endpoint: 503, promptly.
func TestUnreachableUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	up := &upstreamServer{}
	up.Server = nil
	p, err := newProxy([]UpstreamConfig{{Registry: "registry.example", Endpoint: mustURL("http://" + addr)}}, upstream.WithTimeout(time.Second), WithGate(AllowAllUnsafe{}))
	if err != nil {
		t.Fatal(err)
	}
	tp := &testProxy{Proxy: p, Server: newHTTPTest(t, p)}
	resp, body := tp.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", nil)
	mustEqual(t, "status", resp.StatusCode, 503)
	mustEqual(t, "code", errorCode(t, body), "UNAVAILABLE")
}

// TestManifestDigestMismatch: the upstream answers a by-digest request with
// other bytes; nothing is served.
func TestManifestDigestMismatch(t *testing.T) {
	f := newFixture(t)
	other := randomImage(t, 100, 1)
	otherBytes := rawManifest(t, other)
	f.reg.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/sha256:") {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Docker-Content-Digest", f.appDigest) // lies
			_, _ = w.Write(otherBytes)
			return true
		}
		return false
	})
	for _, method := range []string{"GET", "HEAD"} {
		for _, ref := range []string{f.appDigest} {
			resp, body := f.proxy.do(t, method, "/v2/registry.example/acme/app/manifests/"+ref, nil)
			mustEqual(t, method+" "+ref+" status", resp.StatusCode, 502)
			if method == "GET" {
				mustEqual(t, "code", errorCode(t, body), "UPSTREAM_ERROR")
			}
			if strings.Contains(string(body), string(otherBytes)) || resp.Header.Get("Docker-Content-Digest") != "" {
				t.Fatal("served the mismatching manifest")
			}
		}
	}
}

// TestBlobDigestMismatch: a blob whose bytes do not hash to its digest is
// cut off: the client's transfer fails, it never completes as if good. Both
// a blob that fits one read and one that streams in many.
func TestBlobDigestMismatch(t *testing.T) {
	for _, size := range []int64{1024, 3 << 20} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			up := newUpstreamServer(t)
			img := randomImage(t, size, 1)
			up.push(t, "acme/app", "v1", img)
			d, layer := layerBytes(t, img)
			corrupt := append([]byte(nil), layer...)
			corrupt[len(corrupt)-1] ^= 0xff
			up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/blobs/") && r.Method == "GET" {
					_, _ = w.Write(corrupt)
					return true
				}
				return false
			})
			tp := newTestProxy(t, map[string]*upstreamServer{"registry.example": up})
			got := mustFailTransfer(t, tp, "/v2/registry.example/acme/app/blobs/"+d.String())
			if got >= len(corrupt) {
				t.Fatalf("client received all %d bytes", got)
			}
		})
	}
}

// mustFailTransfer GETs path and fails the test unless the transfer fails
// (no response, or a body that ends in an error). It returns the bytes read.
func mustFailTransfer(t *testing.T, tp *testProxy, path string) int {
	t.Helper()
	resp, err := tp.Client().Get(tp.URL + path)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("status %d, read %d bytes without error; want the transfer cut off", resp.StatusCode, len(got))
	}
	return len(got)
}

// TestBlobTruncated: an upstream that stops early makes the client's read fail.
func TestBlobTruncated(t *testing.T) {
	f := newFixture(t)
	f.reg.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == "GET" {
			w.Header().Set("Content-Length", "1024")
			_, _ = w.Write(f.layer[:100])
			return true
		}
		return false
	})
	mustFailTransfer(t, f.proxy, "/v2/registry.example/acme/app/blobs/"+f.layerHex)
}

// TestNoRequestToUnconfiguredHost: whatever a client names in ns= or in the
// path, the proxy contacts no host the config does not name. A canary
// listener stands in for such a host and must see no connection.
func TestNoRequestToUnconfiguredHost(t *testing.T) {
	canary, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer canary.Close()
	var touched atomic.Int32
	go func() {
		for {
			c, err := canary.Accept()
			if err != nil {
				return
			}
			touched.Add(1)
			c.Close()
		}
	}()
	host := canary.Addr().String()
	f := newFixture(t)
	paths := []string{
		"/v2/acme/app/manifests/v1?ns=" + host,
		"/v2/" + host + "/acme/app/manifests/v1",
		"/v2/acme/app/manifests/v1?ns=http://" + host,
		"/v2/acme/app/blobs/" + f.layerHex + "?ns=" + host,
		"/v2/acme/app/tags/list?ns=" + host,
		"/v2/acme/app/referrers/" + f.appDigest + "?ns=" + host,
		"/v2/http:%2F%2F" + host + "/acme/app/manifests/v1",
		"/v2/acme/app/manifests/v1?ns=" + host + "&ns=registry.example",
	}
	for _, p := range paths {
		for _, method := range []string{"GET", "HEAD"} {
			resp, _ := f.proxy.do(t, method, p, http.Header{"Host": {host}, "X-Forwarded-Host": {host}})
			if resp.StatusCode == 200 {
				t.Errorf("%s %s: 200", method, p)
			}
		}
	}
	time.Sleep(50 * time.Millisecond)
	mustEqual(t, "connections to the canary", touched.Load(), int32(0))
}
