package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
)

// cacheCmd runs "portcullis cache args..." and returns its output and error.
func cacheCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return execute(newCacheCmd(), args...)
}

// execute runs cmd with args and returns its output and error.
func execute(cmd *cobra.Command, args ...string) (string, error) {
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

// TestCacheCommands: warm stores an image (every platform of an index);
// ls lists it; with a proxy serving from the same store, the commands fail
// naming the holder unless given --admin, and work with it; prune and
// verify run; a config without cache.dir is a usage error.
func TestCacheCommands(t *testing.T) {
	up := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(up.Close)
	host := strings.TrimPrefix(up.URL, "http://")
	idx, err := random.Index(1024, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/acme/multi:v1")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yaml := fmt.Sprintf("upstreams: [{registry: registry.example, endpoint: %q, insecure: true}]\ndefaultRegistry: registry.example\nunverified: true\ncache: {dir: %s}\n",
		up.URL, filepath.Join(dir, "store"))
	cfgFile := writeFile(t, dir, "config.yaml", "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\n"+yaml)

	out, err := cacheCmd(t, "warm", "--config", cfgFile, "acme/multi:v1", "acme/missing:v1")
	if exitCode(err) != 1 || !strings.Contains(out, "allowed and stored: registry.example/acme/multi:v1@") ||
		!strings.Contains(out, "(3 manifests, 6 blobs") || !strings.Contains(out, "refused: registry.example/acme/missing:v1") {
		t.Fatalf("warm: exit %d: %v\n%s", exitCode(err), err, out)
	}
	out, err = cacheCmd(t, "ls", "--config", cfgFile)
	if err != nil || strings.Count(out, "registry.example/acme/multi") != 3 {
		t.Fatalf("ls: %v\n%s", err, out)
	}

	r := startServe(t, yaml)
	out, err = cacheCmd(t, "ls", "--config", cfgFile)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "is held by pid") || !strings.Contains(err.Error(), "--admin") {
		t.Fatalf("ls while serving: exit %d: %v\n%s", exitCode(err), err, out)
	}
	admin := "http://" + r.admin
	out, err = cacheCmd(t, "ls", "--config", cfgFile, "--admin", admin, "-o", "json")
	if err != nil || strings.Count(out, `"image": "registry.example/acme/multi"`) != 3 {
		t.Fatalf("ls --admin: %v\n%s", err, out)
	}
	out, err = cacheCmd(t, "warm", "--config", cfgFile, "--admin", admin, "acme/multi:v1")
	if err != nil || !strings.Contains(out, "allowed and stored") {
		t.Fatalf("warm --admin: %v\n%s", err, out)
	}
	out, err = cacheCmd(t, "verify", "--config", cfgFile, "--admin", admin)
	if err != nil || !strings.Contains(out, "dropped 0") {
		t.Fatalf("verify --admin: %v\n%s", err, out)
	}
	out, err = cacheCmd(t, "prune", "--config", cfgFile, "--admin", admin, "--older-than", "1h")
	if err != nil || !strings.Contains(out, "removed 0 objects") {
		t.Fatalf("prune --admin: %v\n%s", err, out)
	}

	noCache := writeFile(t, dir, "nocache.yaml", "upstreams: [{registry: registry.example}]\nunverified: true\n")
	if _, err := cacheCmd(t, "ls", "--config", noCache); exitCode(err) != 2 || !strings.Contains(err.Error(), "set cache.dir") {
		t.Fatalf("ls without cache.dir: %v", err)
	}
}
