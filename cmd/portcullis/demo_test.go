package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// TestDemo runs `portcullis demo` and follows its first printed command.
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
	addrRE := regexp.MustCompile(`curl -si (http://\S+/v2/demo\.local/acme/hello/manifests/v1)`)
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
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") == "" {
		t.Fatalf("status %d, digest %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
}
