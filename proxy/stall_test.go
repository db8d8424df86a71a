package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/upstream"
)

// TestStalledClientIsCutOff: a client that asks for a large blob and never
// reads is disconnected once a write has made no progress for
// clientIdleTimeout: the transfer's goroutines (and with them its buffers)
// are gone within clientIdleTimeout plus a second, while the upstream would
// have waited far longer. Full and ranged reads stream differently.
func TestStalledClientIsCutOff(t *testing.T) {
	const size = 64 << 20
	blob := make([]byte, size)
	d := digestOf("sha256", blob)
	path := "/v2/acme/big/blobs/" + d.String()
	small := blob[:4<<20]
	smallPath := "/v2/acme/big/blobs/" + digestOf("sha256", small).String()
	up := newUpstreamServer(t)
	up.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		b, ok := map[string][]byte{path: blob, smallPath: small}[r.URL.Path]
		if !ok {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(b) // ignores Range: the proxy slices
		}
		return true
	})
	const idle = 500 * time.Millisecond
	for _, rng := range []string{"", "bytes=1-"} {
		t.Run("range "+rng, func(t *testing.T) {
			tp := newTestProxy(t, map[string]*upstreamServer{"registry.example": up},
				WithClientIdleTimeout(idle), upstream.WithTimeout(time.Minute))
			// Warm up: the repository's upstream transport and connections.
			resp, _ := tp.do(t, "HEAD", "/v2/registry.example"+path[3:], nil)
			mustEqual(t, "HEAD status", resp.StatusCode, 200)
			time.Sleep(50 * time.Millisecond)
			baseline := runtime.NumGoroutine()

			conn, err := net.Dial("tcp", tp.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.(*net.TCPConn).SetReadBuffer(16 << 10)
			req := fmt.Sprintf("GET /v2/registry.example%s HTTP/1.1\r\nHost: %s\r\n", path[3:], tp.Listener.Addr())
			if rng != "" {
				req += "Range: " + rng + "\r\n"
			}
			if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
				t.Fatal(err)
			}
			// The client reads nothing from here on.
			waitGoroutines(t, "the transfer to start", 5*time.Second, func(n int) bool { return n >= baseline+3 })
			start := time.Now()
			waitGoroutines(t, "the stalled transfer to be cut off", idle+time.Second, func(n int) bool { return n <= baseline })
			t.Logf("cut off %v after the transfer started (clientIdleTimeout %v)", time.Since(start).Round(time.Millisecond), idle)
		})
	}

	// The bound is on progress, not on the whole response: a client that
	// reads slowly but steadily gets all of a blob that takes it longer
	// than clientIdleTimeout.
	t.Run("slow reader", func(t *testing.T) {
		tp := newTestProxy(t, map[string]*upstreamServer{"registry.example": up}, WithClientIdleTimeout(idle))
		resp, err := tp.Client().Get(tp.URL + "/v2/registry.example" + smallPath[3:])
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		start, got, buf := time.Now(), 0, make([]byte, 64<<10)
		for {
			n, err := io.ReadFull(resp.Body, buf)
			got += n
			if err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond) // about 3 MB/s
		}
		mustEqual(t, "bytes read", got, len(small))
		if took := time.Since(start); took < 2*idle {
			t.Fatalf("read in %v: too fast to show anything, want over %v", took, 2*idle)
		}
	})
}

// waitGoroutines polls runtime.NumGoroutine until ok holds, for at most max.
func waitGoroutines(t *testing.T, what string, max time.Duration, ok func(int) bool) {
	t.Helper()
	deadline := time.Now().Add(max)
	for {
		n := runtime.NumGoroutine()
		if ok(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %d goroutines", max, what, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
