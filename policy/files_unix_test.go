//go:build unix

package policy

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNamedPipeDoesNotBlock: a key path naming a named pipe on disk is an
// error at once; opening the pipe would wait for a writer.
func TestNamedPipeDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "k.pub"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	src := y("policies: [{name: p, images: [r.example/x], authorities: [{name: k, key: {path: k.pub}}]}]")
	done := make(chan error, 1)
	go func() {
		_, err := Parse([]byte(src), "policy.yaml", os.DirFS(dir))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.HasSuffix(err.Error(), `cannot read "k.pub": not a regular file`) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Parse blocked on a named pipe")
	}
}
