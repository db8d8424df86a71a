package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `portcullis demo` and follows its first printed commands:
// the signed image is served, the unsigned one refused with the reason.
func TestDemo(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, pw, "127.0.0.1:0"); pw.Close() }()
	defer func() {
		cancel()
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	}()
	buf := make([]byte, 4096)
	var text string
	addrRE := regexp.MustCompile(`curl -si (http://\S+)/v2/demo\.local/acme/signed/manifests/v1`)
	deadline := time.Now().Add(10 * time.Second)
	for !addrRE.MatchString(text) && time.Now().Before(deadline) {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("demo output ended: %v\n%s", err, text)
		}
		text += string(buf[:n])
	}
	m := addrRE.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no command in the demo's output:\n%s", text)
	}
	resp, err := http.Get(m[1] + "/v2/demo.local/acme/signed/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") == "" {
		t.Fatalf("signed: status %d, digest %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
	for _, repo := range []string{"unsigned", "forged"} {
		resp, err = http.Get(m[1] + "/v2/demo.local/acme/" + repo + "/manifests/v1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), `"DENIED"`) || !strings.Contains(string(body), `refused by policy \"acme-release\"`) {
			t.Fatalf("%s: status %d, body %s", repo, resp.StatusCode, body)
		}
	}
}
