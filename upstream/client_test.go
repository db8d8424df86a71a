package upstream

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/oci"
)

// testRegistry is ggcr's registry on loopback, counting requests, with an
// optional fault that answers first.
type testRegistry struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
	fault  atomic.Pointer[func(http.ResponseWriter, *http.Request) bool]
}

func newTestRegistry(t *testing.T, opts ...ggcrregistry.Option) *testRegistry {
	t.Helper()
	reg := ggcrregistry.New(append([]ggcrregistry.Option{ggcrregistry.Logger(log.New(io.Discard, "", 0))}, opts...)...)
	r := &testRegistry{counts: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.counts[req.Method+" "+req.URL.Path]++
		r.mu.Unlock()
		if f := r.fault.Load(); f != nil && (*f)(w, req) {
			return
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *testRegistry) count(method, path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[method+" "+path]
}

func (r *testRegistry) host() string { return strings.TrimPrefix(r.URL, "http://") }

func (r *testRegistry) push(t *testing.T, repo, tag string, img v1.Image) v1.Hash {
	t.Helper()
	ref, err := name.NewTag(r.host()+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

func newTestClient(t *testing.T, r *testRegistry, opts ...Option) *Client {
	t.Helper()
	c, err := New([]Config{{Registry: "registry.example", Endpoint: mustURL(r.URL)}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClient(t *testing.T) {
	r := newTestRegistry(t)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := r.push(t, "acme/app", "v1", img)
	c := newTestClient(t, r)
	ctx := context.Background()
	repo := oci.Repository{Registry: "registry.example", Name: "acme/app"}

	m, err := c.Manifest(ctx, repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	if m.Digest != d || string(m.Bytes) != string(raw) || m.MediaType == "" || m.DigestString() != d.String() {
		t.Fatalf("manifest %s %q (%d bytes), want %s", m.Digest, m.MediaType, len(m.Bytes), d)
	}
	if _, err := c.Manifest(ctx, repo, "sha256-"+d.Hex+".sig"); !errors.Is(err, oci.ErrNotFound) {
		t.Fatalf("missing .sig tag: %v, want ErrNotFound", err)
	}
	for _, bad := range []oci.Repository{{Registry: "elsewhere.example", Name: "x"}, {Registry: "registry.example", Name: "../x"}} {
		if _, err := c.Manifest(ctx, bad, "v1"); err == nil || errors.Is(err, oci.ErrNotFound) {
			t.Fatalf("%v: %v", bad, err)
		}
	}
	if _, err := c.Manifest(ctx, repo, "v1/../../x"); err == nil {
		t.Fatal("a reference with a path was sent")
	}

	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	blob, err := c.Blob(ctx, repo, ld, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := oci.Digest("sha256", blob); got != ld {
		t.Fatalf("blob hashes to %s", got)
	}
	if _, err := c.Blob(ctx, repo, ld, 10); err == nil {
		t.Fatal("a blob over the limit was returned")
	}
	size, err := c.StatBlob(ctx, repo, ld)
	if err != nil || size != int64(len(blob)) {
		t.Fatalf("stat: %d %v, want %d", size, err, len(blob))
	}

	idx, err := c.Referrers(ctx, repo, d)
	if err != nil {
		t.Fatal(err)
	}
	if idx.Manifests == nil && idx.MediaType == "" {
		t.Fatalf("no referrers index: %+v", idx)
	}

	// An upstream that fails is an outage, never "not found".
	var f = func(w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(500); return true }
	r.fault.Store(&f)
	_, err = c.Manifest(ctx, repo, "sha256-"+d.Hex+".sig")
	var ue *Error
	if !errors.As(err, &ue) || ue.Kind != BadResponse || errors.Is(err, oci.ErrNotFound) || !IsOutage(err) {
		t.Fatalf("upstream 500: %v", err)
	}
}

// TestOnePingPerRegistry: new repositories on a registry cost no ping each,
// even asked at once; the registry is asked for its auth challenge once.
func TestOnePingPerRegistry(t *testing.T) {
	r := newTestRegistry(t)
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"a/one", "a/two", "b/three"} {
		r.push(t, repo, "v1", img)
	}
	pings := r.count("GET", "/v2/")
	c := newTestClient(t, r)
	var wg sync.WaitGroup
	for _, repo := range []string{"a/one", "a/two", "b/three"} { // at once: the ping is shared
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Manifest(context.Background(), oci.Repository{Registry: "registry.example", Name: repo}, "v1"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := r.count("GET", "/v2/") - pings; n != 1 {
		t.Fatalf("%d pings for three repositories asked at once, want 1", n)
	}
}

// TestKinds: how each upstream answer is classified, and which are outages
// (a stale tag or verdict may then stand in).
func TestKinds(t *testing.T) {
	resp := func(code int, body string) *http.Response {
		return &http.Response{StatusCode: code, Header: http.Header{"Retry-After": {"3"}}, Body: io.NopCloser(strings.NewReader(body))}
	}
	for _, tc := range []struct {
		Status int
		Body   string
		Kind   Kind
		Code   string
		Outage bool
	}{
		{500, "", BadResponse, "", true},
		{503, "", BadResponse, "", true},
		{401, "", Unauthorized, "", false},
		{403, "", Unauthorized, "", false},
		{429, "", RateLimited, "", true},
		{404, `{"errors":[{"code":"NAME_UNKNOWN","message":"no such repo"}]}`, NotFound, "NAME_UNKNOWN", false},
		{404, `{"errors":[{"code":"DENIED","message":"odd"}]}`, NotFound, "", false},
		{416, "", RangeNotSatisfiable, "", false},
	} {
		e := fromResponse("r", resp(tc.Status, tc.Body))
		if e.Kind != tc.Kind || e.Code != tc.Code || IsOutage(e) != tc.Outage {
			t.Errorf("%d: %v %q outage=%v, want %v %q outage=%v", tc.Status, e.Kind, e.Code, IsOutage(e), tc.Kind, tc.Code, tc.Outage)
		}
		if tc.Status == 429 && e.RetryAfter != "3" {
			t.Errorf("429: Retry-After %q", e.RetryAfter)
		}
	}
	if IsOutage(errors.New("not an upstream error")) {
		t.Error("an unknown error is an outage")
	}
	if !IsOutage(fromTransportError("r", context.DeadlineExceeded)) {
		t.Error("a timeout is not an outage")
	}
}

// TestReferrersLookups: the gate's first lookup on a registry asks the API
// and the fallback tag at once (one round trip on a registry without the
// API); once the registry has answered with the API, the fallback tag is
// not asked again, and a repository without the API is asked only at the
// fallback tag.
func TestReferrersLookups(t *testing.T) {
	for _, api := range []bool{true, false} {
		t.Run(map[bool]string{true: "api", false: "no api"}[api], func(t *testing.T) {
			r := newTestRegistry(t, ggcrregistry.WithReferrersSupport(api))
			img, err := random.Image(100, 1)
			if err != nil {
				t.Fatal(err)
			}
			d := r.push(t, "acme/one", "v1", img)
			r.push(t, "acme/two", "v1", img)
			c := newTestClient(t, r, WithTagTTL(0))
			lookup := func(repo string) (apiGets, tagGets int) {
				t.Helper()
				a0, f0 := r.count("GET", "/v2/"+repo+"/referrers/"+d.String()), r.count("GET", "/v2/"+repo+"/manifests/sha256-"+d.Hex)
				if _, err := c.Referrers(context.Background(), oci.Repository{Registry: "registry.example", Name: repo}, d); err != nil {
					t.Fatal(err)
				}
				return r.count("GET", "/v2/"+repo+"/referrers/"+d.String()) - a0, r.count("GET", "/v2/"+repo+"/manifests/sha256-"+d.Hex) - f0
			}
			// With the API, the fallback tag asked beside it may not have
			// reached the registry yet when the API's answer is returned.
			if a, f := lookup("acme/one"); a != 1 || f > 1 || !api && f != 1 {
				t.Fatalf("first lookup: %d API GETs, %d fallback GETs; want 1 and 1 (at most 1 with the API)", a, f)
			}
			a, f := lookup("acme/two")
			if api && (a != 1 || f != 0) || !api && (a != 1 || f != 1) {
				t.Fatalf("second repository: %d API GETs, %d fallback GETs", a, f)
			}
			if a, _ := lookup("acme/one"); !api && a != 0 {
				t.Fatalf("a repository known to lack the API was asked at the API %d times", a)
			}
		})
	}
}

// TestRetryAfter: an upstream's Retry-After is passed on as whole seconds,
// at most an hour, from seconds or an HTTP date; anything else is dropped,
// never copied.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"17":                            "17",
		" 0 ":                           "0",
		"3601":                          "3600",
		strings.Repeat("9", 1<<10):      "3600",
		"Thu, 03 Dec 2026 08:00:30 GMT": "30",
		"Thu, 03 Dec 2026 07:00:00 GMT": "0",
		"Fri, 04 Dec 2026 08:00:00 GMT": "3600",
		"":                              "",
		"-5":                            "",
		"1.5":                           "",
		"soon\r\nX-Injected: 1":         "",
		"<script>":                      "",
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%.40q) = %q, want %q", in, got, want)
		}
	}
}

// TestReferrersAheadTeachesNothing: a gate lookup made ahead of the
// manifest's fetch (oci.WithAhead: the repository may not exist) asks as
// the gate's does, the API and the fallback tag at once, but does not
// teach that the repository lacks the API; the gate's own lookup does.
func TestReferrersAheadTeachesNothing(t *testing.T) {
	r := newTestRegistry(t, ggcrregistry.WithReferrersSupport(false))
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := r.push(t, "acme/one", "v1", img)
	c := newTestClient(t, r, WithTagTTL(0))
	repo := oci.Repository{Registry: "registry.example", Name: "acme/one"}
	lookup := func(ctx context.Context) (apiGets, tagGets int) {
		t.Helper()
		a0, f0 := r.count("GET", "/v2/acme/one/referrers/"+d.String()), r.count("GET", "/v2/acme/one/manifests/sha256-"+d.Hex)
		if _, err := c.Referrers(ctx, repo, d); err != nil {
			t.Fatal(err)
		}
		return r.count("GET", "/v2/acme/one/referrers/"+d.String()) - a0, r.count("GET", "/v2/acme/one/manifests/sha256-"+d.Hex) - f0
	}
	ahead := oci.WithAhead(context.Background())
	for i := range 2 {
		if a, f := lookup(ahead); a != 1 || f != 1 {
			t.Fatalf("lookup ahead %d: %d API GETs, %d fallback GETs; want 1 and 1 (nothing learned)", i, a, f)
		}
	}
	if a, f := lookup(context.Background()); a != 1 || f != 1 {
		t.Fatalf("the gate's lookup: %d API GETs, %d fallback GETs; want 1 and 1", a, f)
	}
	if a, f := lookup(ahead); a != 0 || f != 1 {
		t.Fatalf("after the gate's lookup: %d API GETs, %d fallback GETs; want 0 and 1 (learned)", a, f)
	}
}
