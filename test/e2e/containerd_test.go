//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// containerd pulls by the images' real names with --hosts-dir holding
// deploy/containerd/hosts.toml for each registry; it reaches the proxy as the
// registry's `server` and names the registry with ?ns=<registry>.

// containerdConfig runs containerd without the CRI plugin and with all state
// in one directory. Debian 12's containerd is 1.6 (config version 2).
const containerdConfig = `version = 2
root = %[1]q
state = %[2]q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  level = "debug"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %[5]q
`

// startContainerd starts a private containerd and returns its socket.
func startContainerd(t *testing.T) (socket string) {
	t.Helper()
	bin := needTool(t, "containerd")
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	socket = filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(containerdConfig, filepath.Join(dir, "root"), filepath.Join(dir, "state"),
		socket, socket+".ttrpc", filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	writeFile(t, cfgPath, cfg)
	p, err := startProcess("containerd", filepath.Join(dir, "containerd.log"), nil, bin, "--config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("---- containerd log ----\n%s", p.Log(0, 16000))
		}
		os.RemoveAll(dir)
	})
	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := os.Stat(socket); err == nil {
			if r := runCmd(t.Context(), nil, "ctr", "--address", socket, "version"); r.err == nil {
				return socket
			}
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("containerd did not start (exited: %v, %v); log:\n%s", p.Exited(), p.Err(), p.Log(0, 8000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// renderHostsDir writes deploy/containerd/hosts.toml, switched to plain
// HTTP on the proxy at addr, as <dir>/<registry>/hosts.toml for each
// registry.
func renderHostsDir(t *testing.T, addr string, registries ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, r := range registries {
		s := render(t, "containerd/hosts.toml", filepath.Join(dir, r, "hosts.toml"),
			"https://"+placeholderHost, "http://"+addr,
			// A CA file for a plain-HTTP server is pointless, and containerd
			// fails if the file is missing.
			`ca = "/etc/containerd/certs.d/portcullis-ca.crt"`, "# ca: not used over plain HTTP",
		)
		t.Logf("%s/hosts.toml (settings):\n%s", r, settings(s))
	}
	return dir
}

func TestContainerdPull(t *testing.T) {
	e := setup(t)
	ctr := needTool(t, "ctr")
	socket := startContainerd(t)
	hostsDir := renderHostsDir(t, e.addr, "registry.example", "docker.io")

	// An index is pulled and unpacked for this machine's platform, as the
	// kubelet would.
	for _, ref := range []string{appImage, ociImage, hubImage, multiImage} {
		t.Run(ref, func(t *testing.T) {
			want := e.fixture(t, ref)
			// native: a plain-directory snapshotter, which works where
			// overlayfs does not (nested containers, odd filesystems).
			run(t, nil, ctr, "--address", socket, "images", "pull", "--hosts-dir", hostsDir, "--snapshotter", "native", ref)

			out := run(t, nil, ctr, "--address", socket, "images", "ls")
			got := ""
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) >= 3 && f[0] == ref {
					got = f[2]
				}
			}
			if got != want.digest.String() {
				t.Errorf("ctr images ls: %s has digest %q, want %s\n%s", ref, got, want.digest, out)
			}
			// All content for the pulled platform is present.
			checkArgs := []string{"--address", socket, "images", "check"}
			out = run(t, nil, ctr, append(checkArgs, "name=="+ref)...)
			if !strings.Contains(out, "complete") {
				t.Errorf("ctr images check %s: not complete:\n%s", ref, out)
			}
		})
	}
}
