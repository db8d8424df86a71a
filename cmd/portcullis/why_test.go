package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/gate"
)

// whyCmd runs "portcullis why args..." and returns its output and error.
func whyCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return execute(newWhyCmd(), args...)
}

// TestWhy: a refusal's 403 says how to ask why, and `portcullis why` then
// prints the reason (exit 1); requests served despite a warn-mode policy
// are each recorded and summarised; a purge drops verdicts; an image
// never pulled has no record (exit 1).
func TestWhy(t *testing.T) {
	up := newTestUpstream(t)
	up.push("acme/app", "v1")
	up.push("acme/rollout", "v1")
	dir := t.TempDir()
	writePublicKey(t, dir, "cosign.pub")
	policyFile := writeFile(t, dir, "policy.yaml", `policies:
  - name: release
    images: ["registry.example/acme/app"]
    authorities: [{name: release-key, key: {path: cosign.pub}}]
  - name: open
    images: ["registry.example/acme/rollout"]
    allow: unsigned
  - name: rollout
    mode: warn
    images: ["registry.example/acme/rollout"]
    authorities: [{name: release-key, key: {path: cosign.pub}}]
`)
	r := startServe(t, fmt.Sprintf("upstreams: [{registry: registry.example, endpoint: %q, insecure: true}]\npolicyFile: %s\n", up.URL, policyFile))
	admin := "http://" + r.admin

	get := func(method, repo string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+r.addr+"/v2/registry.example/"+repo+"/manifests/v1", nil)
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get("GET", "acme/app")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "portcullis why registry.example/acme/app@sha256:") ||
		!strings.Contains(string(body), "cached for") || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("refusal: %d %s (X-Request-Id %q)", resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
	}
	if resp := get("HEAD", "acme/app"); resp.StatusCode != 403 {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}

	out, err := whyCmd(t, "--admin", admin, "registry.example/acme/app:v1")
	if exitCode(err) != 1 {
		t.Fatalf("why of a refused image: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	t.Logf("portcullis why:\n%s", out)
	for _, want := range []string{"REFUSED", "(asked for as v1)", "policy:   release", `refused by policy "release"`, "release-key:", "client:   127.0.0.1:", "cached:   for"} {
		if !strings.Contains(out, want) {
			t.Errorf("why output does not say %q:\n%s", want, out)
		}
	}

	for range 2 {
		if resp := get("GET", "acme/rollout"); resp.StatusCode != 200 {
			t.Fatalf("warn-mode image: %d", resp.StatusCode)
		}
	}
	var sum []gate.SummaryRow
	getJSON(t, admin+"/decisions/summary?result=warn", &sum)
	if len(sum) != 1 || sum[0].Policy != "rollout" || sum[0].Count != 2 || sum[0].Image != "registry.example/acme/rollout" {
		t.Errorf("warn summary %+v", sum)
	}
	out, err = whyCmd(t, "--admin", admin, "registry.example/acme/rollout")
	if err != nil || !strings.Contains(out, "SERVED WITH WARNINGS") || !strings.Contains(out, `policy "rollout" (warn) failed`) {
		t.Errorf("why of a warned image: %v\n%s", err, out)
	}

	var recs []gate.Record
	getJSON(t, admin+"/decisions?image=registry.example/acme/**&result=deny&since=10m", &recs)
	if len(recs) != 1 || recs[0].Policy != "release" {
		t.Errorf("denials: %+v", recs)
	}
	if resp, err := http.Get(admin + "/decisions?result=maybe"); err != nil || resp.StatusCode != 400 {
		t.Errorf("a bad result filter: %v %v", resp, err)
	}

	resp, err = http.Post(admin+"/cache/verdicts/purge?image=registry.example/acme/**", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var purged purgeResult
	if err := json.NewDecoder(resp.Body).Decode(&purged); err != nil || purged.Verdicts < 2 {
		t.Errorf("purge: %+v %v", purged, err)
	}
	resp.Body.Close()
	if resp, _ := http.Post(admin+"/cache/verdicts/purge", "", nil); resp == nil || resp.StatusCode != 400 {
		t.Errorf("a purge naming no image: %v", resp)
	}
	resp, err = http.Post(admin+"/cache/verdicts/purge?all=true", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a purge of everything: %v %v", resp, err)
	}
	resp.Body.Close()

	if out, err := whyCmd(t, "--admin", admin, "registry.example/acme/never:v1"); exitCode(err) != 1 || !strings.Contains(err.Error(), "no decision recorded") {
		t.Errorf("why of an image never pulled: exit %d %v\n%s", exitCode(err), err, out)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
