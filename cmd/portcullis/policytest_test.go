package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyTest: a candidate that requires a signature refuses the
// unsigned image today's policy serves (exit 1, marked in the table) and
// keeps the signed one; without image arguments it replays the running
// proxy's recent decisions; a broken candidate is a usage error.
func TestPolicyTest(t *testing.T) {
	up := newTestUpstream(t)
	dir := t.TempDir()
	up.pushSignedPair(t, dir)
	today := writeFile(t, dir, "today.yaml", "policies:\n  - name: open\n    images: [\"registry.example/acme/**\"]\n    allow: unsigned\n")
	candidate := writeFile(t, dir, "candidate.yaml", `policies:
  - name: release
    images: ["registry.example/acme/**"]
    authorities: [{name: release-key, key: {path: cosign.pub}}]
`)
	broken := writeFile(t, dir, "broken.yaml", "policies:\n  - name: x\n    imagez: []\n")
	yaml := fmt.Sprintf("upstreams: [{registry: registry.example, endpoint: %q, insecure: true}]\npolicyFile: %s\n", up.URL, today)
	cfgFile := writeFile(t, dir, "config.yaml", "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\n"+yaml)

	policy := func(args ...string) (string, error) {
		return execute(newPolicyCmd(), append([]string{"test"}, args...)...)
	}
	out, err := policy("--config", cfgFile, "--policy", candidate, "registry.example/acme/app:signed", "registry.example/acme/app:unsigned")
	t.Logf("policy test:\n%s", out)
	if exitCode(err) != 1 {
		t.Fatalf("a candidate refusing a served image: exit %d (%v)", exitCode(err), err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "IMAGE") ||
		!strings.Contains(lines[1], "acme/app:signed") || !strings.Contains(lines[1], "allow  allow") || strings.Contains(lines[1], "would be refused") ||
		!strings.Contains(lines[2], "acme/app:unsigned") || !strings.Contains(lines[2], "allow  deny") || !strings.Contains(lines[2], "no signatures found") || !strings.Contains(lines[2], "would be refused") {
		t.Errorf("table:\n%s", out)
	}
	if out, err := policy("--config", cfgFile, "--policy", candidate, "registry.example/acme/app:signed"); err != nil || !strings.Contains(out, "nothing served today is refused") {
		t.Errorf("a candidate keeping everything: %v\n%s", err, out)
	}
	if _, err := policy("--config", cfgFile, "--policy", broken, "registry.example/acme/app:signed"); exitCode(err) != 2 || !strings.Contains(err.Error(), "imagez") {
		t.Errorf("a broken candidate: exit %d %v", exitCode(err), err)
	}
	if _, err := policy("--config", cfgFile, "--policy", candidate); exitCode(err) != 2 {
		t.Errorf("no images and no --admin: exit %d %v", exitCode(err), err)
	}

	// Replay the running proxy's traffic.
	r := startServe(t, yaml)
	for _, tag := range []string{"signed", "unsigned"} {
		resp, err := http.Get("http://" + r.addr + "/v2/registry.example/acme/app/manifests/" + tag)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("pull %s: %v %v", tag, resp, err)
		}
		resp.Body.Close()
	}
	out, err = policy("--config", cfgFile, "--policy", candidate, "--admin", "http://"+r.admin)
	if exitCode(err) != 1 || strings.Count(out, "registry.example/acme/app@sha256:") != 2 || strings.Count(out, "would be refused") != 1 {
		t.Errorf("replayed traffic: exit %d %v\n%s", exitCode(err), err, out)
	}
}

// TestPolicyTestFromTheStore: with a content store no proxy holds, the
// candidate is tested against what the store holds, the upstream gone (an
// air-gapped site); while the proxy holds the store, policy test says so
// and reads the upstreams.
func TestPolicyTestFromTheStore(t *testing.T) {
	up := newTestUpstream(t)
	dir := t.TempDir()
	up.pushSignedPair(t, dir)
	// Today: unsigned images are allowed, the key checked in warn mode (so
	// both are stored, with the signature material the gate read).
	today := writeFile(t, dir, "today.yaml", `policies:
  - name: open
    images: ["registry.example/acme/**"]
    allow: unsigned
  - name: rollout
    mode: warn
    images: ["registry.example/acme/**"]
    authorities: [{name: release-key, key: {path: cosign.pub}}]
`)
	candidate := writeFile(t, dir, "candidate.yaml", `policies:
  - name: release
    images: ["registry.example/acme/**"]
    authorities: [{name: release-key, key: {path: cosign.pub}}]
`)
	yaml := fmt.Sprintf("upstreams: [{registry: registry.example, endpoint: %q, insecure: true}]\npolicyFile: %s\ncache: {dir: %s}\n",
		up.URL, today, filepath.Join(dir, "store"))
	cfgFile := writeFile(t, dir, "config.yaml", "listen: 127.0.0.1:0\nadminListen: 127.0.0.1:0\n"+yaml)
	images := []string{"registry.example/acme/app:signed", "registry.example/acme/app:unsigned"}
	if out, err := cacheCmd(t, append([]string{"warm", "--config", cfgFile}, images...)...); err != nil {
		t.Fatalf("warm: %v\n%s", err, out)
	}
	policy := func(args ...string) (string, error) {
		return execute(newPolicyCmd(), append([]string{"test"}, args...)...)
	}

	r := startServe(t, yaml)
	out, err := policy(append([]string{"--config", cfgFile, "--policy", candidate}, images...)...)
	if exitCode(err) != 1 || !strings.Contains(out, "held by the running proxy") {
		t.Errorf("while the proxy holds the store: exit %d %v\n%s", exitCode(err), err, out)
	}
	r.cancel()
	<-r.done
	r.done <- nil // for Cleanup

	up.down.Store(true) // the upstream is down from here on (air-gapped)
	out, err = policy(append([]string{"--config", cfgFile, "--policy", candidate}, images...)...)
	t.Logf("from the store:\n%s", out)
	lines := strings.Split(out, "\n")
	if exitCode(err) != 1 || len(lines) < 3 || fmt.Sprint(strings.Fields(lines[1])[1:3]) != "[allow allow]" ||
		fmt.Sprint(strings.Fields(lines[2])[1:3]) != "[warn deny]" || !strings.Contains(lines[2], "no signatures found") {
		t.Errorf("from the store, the upstream gone: exit %d %v\n%s", exitCode(err), err, out)
	}
}
