package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/upstream"
)

// The proxy finds the store's side by asserting its Upstream is a
// Keeper: a changed method set would silently stop the store keeping
// anything.
var _ proxy.Keeper = (*Client)(nil)

// hostile is an upstream that serves one blob as a mode says: "good"
// (with Range), "good-norange" (always the whole blob),
// "wrong" (bytes that do not hash to the digest, with the right length),
// "short" (the connection cut halfway), "long" (more bytes than the blob,
// no length given), or "trickle" (half, then the rest once more is closed).
type hostile struct {
	blob []byte
	d    v1.Hash
	mode string
	// hold, when not nil, is waited on after the headers and before the
	// body; more, in mode trickle, between the halves.
	hold, more chan struct{}
	once       sync.Once
	mu         sync.Mutex
	gets       int
}

func newHostile(t *testing.T, mode string, size int) *hostile {
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return &hostile{blob: b, d: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}, mode: mode}
}

// release lets every held response go on (once).
func (h *hostile) release() {
	h.once.Do(func() {
		if h.hold != nil {
			close(h.hold)
		}
		if h.more != nil {
			close(h.more)
		}
	})
}

func (h *hostile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/blobs/"+h.d.String()) {
		http.NotFound(w, r)
		return
	}
	h.mu.Lock()
	h.gets++
	h.mu.Unlock()
	half := len(h.blob) / 2
	if h.mode == "good" { // with ranges, as a registry serves them
		if h.hold != nil && r.Header.Get("Range") == "" {
			<-h.hold
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.blob))
		return
	}
	if h.mode != "long" {
		w.Header().Set("Content-Length", strconv.Itoa(len(h.blob)))
	}
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	if h.hold != nil {
		<-h.hold
	}
	switch h.mode {
	case "good-norange":
		_, _ = w.Write(h.blob)
	case "wrong":
		bad := bytes.Clone(h.blob)
		bad[len(bad)-1] ^= 0xff
		_, _ = w.Write(bad)
	case "short":
		_, _ = w.Write(h.blob[:half])
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	case "long":
		_, _ = w.Write(h.blob)
		_, _ = w.Write([]byte("and then some"))
	case "trickle":
		_, _ = w.Write(h.blob[:half])
		w.(http.Flusher).Flush()
		<-h.more
		_, _ = w.Write(h.blob[half:])
	}
}

// hostiles is an upstream of several hostile blobs.
type hostiles []*hostile

func (hs hostiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, h := range hs {
		if r.URL.Path == "/v2/" || strings.HasSuffix(r.URL.Path, "/blobs/"+h.d.String()) {
			h.ServeHTTP(w, r)
			return
		}
	}
	http.NotFound(w, r)
}

func (hs hostiles) release() {
	for _, h := range hs {
		h.release()
	}
}

// hostileWorld is a proxy with a store (opened with opts) over a hostile
// upstream.
func hostileWorld(t *testing.T, h interface {
	http.Handler
	release()
}, dir string, opts ...Option) (*Store, *httptest.Server) {
	t.Helper()
	return hostileProxy(t, h, dir, nil, opts...)
}

// hostileProxy is hostileWorld with the proxy's logger given (nil: none).
func hostileProxy(t *testing.T, h interface {
	http.Handler
	release()
}, dir string, log *zap.Logger, opts ...Option) (*Store, *httptest.Server) {
	t.Helper()
	s, sc := hostileClient(t, h, dir, opts...)
	popts := []proxy.Option{proxy.WithGate(proxy.AllowAllUnsafe{}), proxy.WithDefaultRegistry(registryName)}
	if log != nil {
		popts = append(popts, proxy.WithLogger(log))
	}
	p, err := proxy.New(sc, popts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return s, srv
}

// hostileClient is a store (opened with opts) and its client over a
// hostile upstream.
func hostileClient(t *testing.T, h interface {
	http.Handler
	release()
}, dir string, opts ...Option) (*Store, *Client) {
	t.Helper()
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	t.Cleanup(h.release) // before up.Close: a failed test must not leave handlers waiting
	u, _ := url.Parse(up.URL)
	c, err := upstream.New([]upstream.Config{{Registry: registryName, Endpoint: u}}, upstream.WithTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, NewClient(c, s, time.Minute, time.Hour, nil)
}

// TestBadBlobsAbortEveryReaderAndLeaveNothing: an upstream that sends
// bytes that do not match, too few or too many: every concurrent client's
// transfer fails (none gets a complete 200), one upstream GET was made,
// and nothing is stored or left in tmp/.
func TestBadBlobsAbortEveryReaderAndLeaveNothing(t *testing.T) {
	for _, mode := range []string{"wrong", "short", "long"} {
		t.Run(mode, func(t *testing.T) {
			h := newHostile(t, mode, 1<<20)
			h.hold = make(chan struct{})
			s, srv := hostileWorld(t, h, t.TempDir())
			const clients = 8
			var wg sync.WaitGroup
			results := make(chan string, clients)
			for range clients {
				wg.Go(func() {
					resp, err := http.Get(srv.URL + "/v2/acme/app/blobs/" + h.d.String())
					if err != nil {
						results <- ""
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					if err == nil && resp.StatusCode == http.StatusOK {
						results <- fmt.Sprintf("a complete 200 of %d bytes", len(b))
						return
					}
					results <- ""
				})
			}
			waitFor(t, func() bool { return waitingOn(s) >= clients-1 })
			h.release()
			wg.Wait()
			close(results)
			for r := range results {
				if r != "" {
					t.Errorf("a client got %s of a %s blob", r, mode)
				}
			}
			waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.fills) == 0 })
			s.mu.Lock()
			filling := s.filling
			s.mu.Unlock()
			if filling != 0 {
				t.Errorf("%d bytes still reserved after the fetch was discarded", filling)
			}
			if h.gets != 1 {
				t.Errorf("%d upstream GETs, want 1", h.gets)
			}
			if _, ok := s.HasBlob(h.d); ok {
				t.Error("the bad blob was stored")
			}
			if entries, _ := os.ReadDir(filepath.Join(s.dir, "tmp")); len(entries) != 0 {
				t.Errorf("tmp/ holds %d files", len(entries))
			}
			if entries, _ := os.ReadDir(filepath.Join(s.dir, "blobs")); len(entries) != 0 {
				t.Errorf("blobs/ holds %d entries", len(entries))
			}
		})
	}
}

// TestBlobStreamsAsItLands: a client gets the bytes of a blob still being
// fetched as they arrive, not after the whole blob.
func TestBlobStreamsAsItLands(t *testing.T) {
	h := newHostile(t, "trickle", 1<<20)
	h.more = make(chan struct{})
	s, srv := hostileWorld(t, h, t.TempDir())
	resp, err := http.Get(srv.URL + "/v2/acme/app/blobs/" + h.d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	half := make([]byte, len(h.blob)/2)
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, half); got <- err }()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first half did not arrive while the upstream held the second")
	}
	h.release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(half, rest...), h.blob) {
		t.Fatal("the streamed blob differs")
	}
	waitFor(t, func() bool { _, ok := s.HasBlob(h.d); return ok })
}

// TestCrashDuringAFetchLeavesNoPartialBlob kills (SIGKILL) a process in
// the middle of a blob fetch into the store, then opens the store again:
// the lock is free, nothing of the blob is stored or left over, and the
// blob is fetched whole on the next request.
func TestCrashDuringAFetchLeavesNoPartialBlob(t *testing.T) {
	if os.Getenv("STORE_CRASH_CHILD") != "" {
		return // the child's part is TestCrashChild
	}
	h := newHostile(t, "trickle", 1<<20)
	h.more = make(chan struct{})
	up := httptest.NewServer(h)
	defer up.Close()
	defer h.release()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "STORE_CRASH_CHILD=1", "STORE_CRASH_DIR="+dir,
		"STORE_CRASH_UPSTREAM="+up.URL, "STORE_CRASH_DIGEST="+h.d.String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once half the blob is in its temporary file.
	waitFor(t, func() bool {
		entries, _ := os.ReadDir(filepath.Join(dir, "tmp"))
		for _, e := range entries {
			if info, err := e.Info(); err == nil && info.Size() >= int64(len(h.blob)/2) {
				return true
			}
		}
		return false
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	h.mode = "good"
	s, srv := hostileWorld(t, h, dir)
	if _, ok := s.HasBlob(h.d); ok {
		t.Fatal("a blob killed mid-fetch is stored")
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
		t.Fatalf("tmp/ holds %d files after Open", len(entries))
	}
	resp, err := http.Get(srv.URL + "/v2/acme/app/blobs/" + h.d.String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || !bytes.Equal(b, h.blob) {
		t.Fatalf("after the crash: %v, %d bytes (child said: %s)", err, len(b), out.String())
	}
}

// TestCrashChild is the process TestCrashDuringAFetchLeavesNoPartialBlob
// kills: it starts a fetch into the store and waits to be killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("STORE_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCrashDuringAFetchLeavesNoPartialBlob")
	}
	u, _ := url.Parse(os.Getenv("STORE_CRASH_UPSTREAM"))
	d, err := v1.NewHash(os.Getenv("STORE_CRASH_DIGEST"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := upstream.New([]upstream.Config{{Registry: registryName, Endpoint: u}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewClient(c, s, time.Minute, time.Hour, nil).OpenKeptBlob(context.Background(), repoOf("acme/app"), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, b.Body)
	time.Sleep(time.Minute) // killed before this ends
}

// waitingOn is how many requests wait on, or read, one of s's fetches.
func waitingOn(s *Store) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.fills {
		n += f.waiting()
	}
	return n
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failingFile is a fill's temporary file on a disk that fills up after
// room bytes.
type failingFile struct {
	*os.File
	room int
}

func (f *failingFile) Write(b []byte) (int, error) {
	if len(b) > f.room {
		n, _ := f.File.Write(b[:f.room])
		f.room = 0
		return n, syscall.ENOSPC
	}
	f.room -= len(b)
	return f.File.Write(b)
}

// TestFullDiskServesFromTheUpstream: when the store's disk fills up in the
// middle of a fetch, every client still gets the whole blob, right (the
// rest from the upstream, checked against the digest with what came from
// the file), nothing is kept, the failure is counted, and new fetches
// bypass the store for a while.
func TestFullDiskServesFromTheUpstream(t *testing.T) {
	for _, mode := range []string{"good", "good-norange"} {
		t.Run(mode, func(t *testing.T) {
			h := newHostile(t, mode, 2<<20)
			h.hold = make(chan struct{})
			s, srv := hostileWorld(t, h, t.TempDir())
			s.createTemp = func(dir, pattern string) (tempFile, error) {
				f, err := os.CreateTemp(dir, pattern)
				if err != nil {
					return nil, err
				}
				return &failingFile{File: f, room: 300 << 10}, nil
			}
			const clients = 8
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for range clients {
				wg.Go(func() {
					resp, err := http.Get(srv.URL + "/v2/acme/app/blobs/" + h.d.String())
					if err != nil {
						errs <- err
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, h.blob) {
						errs <- fmt.Errorf("status %d, %d bytes, %v", resp.StatusCode, len(b), err)
					}
				})
			}
			waitFor(t, func() bool { return waitingOn(s) >= clients-1 })
			h.release()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("a client, the disk full mid-fetch: %v", err)
			}
			if _, ok := s.HasBlob(h.d); ok {
				t.Error("a blob whose write failed is stored")
			}
			if !s.bypassed() {
				t.Error("new fetches do not bypass the store after a write failed")
			}
			resp, err := http.Get(srv.URL + "/v2/acme/app/blobs/" + h.d.String())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if !bytes.Equal(b, h.blob) {
				t.Errorf("while the store is bypassed: %d bytes", len(b))
			}
		})
	}
}

// TestReaderLeavesWhenItsRequestEnds: a reader waiting for bytes of a
// stalled fetch returns as soon as its request's context ends (the client
// went away), not when the upstream next sends something; the fetch goes
// on for the others.
func TestReaderLeavesWhenItsRequestEnds(t *testing.T) {
	h := newHostile(t, "trickle", 1<<20)
	h.more = make(chan struct{})
	s, sc := hostileClient(t, h, t.TempDir())
	repo := proxy.Repository{Registry: registryName, Name: "acme/app"}
	ctx, cancel := context.WithCancel(context.Background())
	b, err := sc.OpenKeptBlob(ctx, repo, h.d, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Body.Close()
	if _, err := io.ReadFull(b.Body, make([]byte, len(h.blob)/2)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.Body.Read(make([]byte, 1024)); done <- err }() // waits: the upstream holds the rest
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read after the request ended: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a reader waiting on a stalled fetch did not leave when its request ended")
	}
	h.release() // the fetch goes on, and is kept
	waitFor(t, func() bool { _, ok := s.HasBlob(h.d); return ok })
}

// TestFetchesCountAgainstTheLimit: blobs being fetched count against
// maxSize at their full size from the start, so eviction makes room for
// them; they may hold at most half of it, and a blob past that is served
// whole from the upstream but not kept. Once they are committed, nothing
// stays reserved.
func TestFetchesCountAgainstTheLimit(t *testing.T) {
	const limit = 2 << 20 // keeps blobs up to 204 KiB; fetches may reserve 1 MiB
	const size = 200 << 10
	var stored, held hostiles
	for range 8 {
		stored = append(stored, newHostile(t, "good-norange", size))
	}
	for range 5 {
		h := newHostile(t, "good-norange", size)
		h.hold = make(chan struct{})
		held = append(held, h)
	}
	extra := newHostile(t, "good-norange", size)
	all := append(append(append(hostiles{}, stored...), held...), extra)
	s, srv := hostileWorld(t, all, t.TempDir(), WithMaxSize(limit))
	get := func(h *hostile) error {
		resp, err := http.Get(srv.URL + "/v2/acme/app/blobs/" + h.d.String())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, h.blob) {
			return fmt.Errorf("status %d, %d bytes, %v", resp.StatusCode, len(b), err)
		}
		return nil
	}
	for _, h := range stored {
		if err := get(h); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { _, ok := s.HasBlob(h.d); return ok })
	}
	filling := func() (int64, int64) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.filling, s.total
	}
	errs := make(chan error, len(held))
	for _, h := range held {
		go func() { errs <- get(h) }()
	}
	waitFor(t, func() bool { f, _ := filling(); return f == int64(len(held))*size })
	// 1.6 MiB stored and 1 MiB being fetched: over the limit, so an
	// eviction pass makes room for what is being fetched.
	waitFor(t, func() bool { f, total := filling(); return f+total <= limit })
	if testutilEvictions(s) == 0 {
		t.Error("no eviction pass ran for the fetches in progress")
	}
	if err := get(extra); err != nil {
		t.Fatalf("a blob past the in-flight limit: %v", err)
	}
	if n := testutil.ToFloat64(s.metrics.discarded.WithLabelValues(causeBusy)); n != 1 {
		t.Errorf("%v fetches counted as past the in-flight limit, want 1", n)
	}
	if _, ok := s.HasBlob(extra.d); ok {
		t.Error("a blob past the in-flight limit was kept")
	}
	held.release()
	for range held {
		if err := <-errs; err != nil {
			t.Errorf("a held fetch: %v", err)
		}
	}
	for _, h := range held {
		waitFor(t, func() bool { _, ok := s.HasBlob(h.d); return ok })
	}
	if f, _ := filling(); f != 0 || testutil.ToFloat64(s.metrics.filling) != 0 {
		t.Errorf("%d bytes still reserved after every fetch ended (gauge %v)", f, testutil.ToFloat64(s.metrics.filling))
	}
}

// TestClientLeavingMidFetchIsNoFailure: a client that goes away while it
// waits for bytes of a fetch still in progress ends its request quietly:
// no "blob response aborted" error (the fetch did not fail), and the fetch
// goes on and is kept.
func TestClientLeavingMidFetchIsNoFailure(t *testing.T) {
	h := newHostile(t, "trickle", 1<<20)
	h.more = make(chan struct{})
	core, logs := observer.New(zap.DebugLevel)
	s, srv := hostileProxy(t, h, t.TempDir(), zap.New(core))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/acme/app/blobs/"+h.d.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, len(h.blob)/4)); err != nil {
		t.Fatal(err)
	}
	cancel() // the client goes away; the upstream holds the second half
	_ = resp.Body.Close()
	waitFor(t, func() bool { return logs.FilterMessageSnippet("request").Len() > 0 })
	if n := logs.FilterMessage("blob response aborted").Len(); n != 0 {
		t.Errorf("a client leaving mid-fetch was logged as %d failed blob responses: %v", n, logs.FilterMessage("blob response aborted").All()[0].ContextMap())
	}
	h.release()
	waitFor(t, func() bool { _, ok := s.HasBlob(h.d); return ok })
}
