package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/verify/signing"
)

// TestPolicyTest: a candidate that requires a signature refuses the
// unsigned image today's policy serves (exit 1, marked in the table) and
// keeps the signed one; without image arguments it replays the running
// proxy's recent decisions; a broken candidate is a usage error.
func TestPolicyTest(t *testing.T) {
	up := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(up.Close)
	host := strings.TrimPrefix(up.URL, "http://")
	signer, err := signing.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"signed", "unsigned"} {
		img, _ := random.Image(512, 1)
		ref, _ := name.NewTag(host+"/acme/app:"+tag, name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		if tag == "signed" {
			d, _ := img.Digest()
			if err := signer.SignLegacy(ref.Context(), d); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := t.TempDir()
	pem, _ := signer.PublicKeyPEM()
	writeFile(t, dir, "cosign.pub", string(pem))
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
