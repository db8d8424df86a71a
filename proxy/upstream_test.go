package proxy

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestNoSchemeDowngrade: an https endpoint on a loopback address (where
// ggcr's ping would also try http) is only ever reached over https; a plain
// HTTP server there gets nothing.
func TestNoSchemeDowngrade(t *testing.T) {
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { plainHits.Add(1) }))
	defer plain.Close()
	endpoint := mustURL("https://" + plain.Listener.Addr().String())
	p, err := newProxy([]UpstreamConfig{{Registry: "registry.example", Endpoint: endpoint, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}, WithGate(AllowAllUnsafe{}))
	if err != nil {
		t.Fatal(err)
	}
	tp := &testProxy{Proxy: p, Server: newHTTPTest(t, p)}
	resp, body := tp.do(t, "GET", "/v2/registry.example/acme/app/manifests/v1", nil)
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("served over a downgraded connection: %s", body)
	}
	if plainHits.Load() != 0 {
		t.Fatalf("the https endpoint was asked over plain http %d times", plainHits.Load())
	}
}
