//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// podman pulls by the images' real names (registry.example/acme/app:v1);
// deploy/registries.conf makes the proxy the registry's location.

// podmanSetup renders deploy/registries.conf for the proxy at addr over
// plain HTTP and writes minimal containers.conf and storage.conf, so neither
// the host's configuration nor systemd (absent in CI containers) is
// involved. It returns the environment, the global flags for podman, and the
// flags for podman pull.
func podmanSetup(t *testing.T, addr string) (env, global, pull []string) {
	t.Helper()
	dir := t.TempDir()
	root, runroot, tmp := filepath.Join(dir, "root"), filepath.Join(dir, "runroot"), filepath.Join(dir, "tmp")

	conf := render(t, "registries.conf", filepath.Join(dir, "registries.conf"),
		placeholderHost, addr,
		"insecure = false", "insecure = true", // the test proxy speaks plain HTTP
	)
	t.Logf("registries.conf (settings):\n%s", settings(conf))

	// cgroupfs and a file events log: no systemd or journald needed.
	writeFile(t, filepath.Join(dir, "containers.conf"), fmt.Sprintf(`[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
[network]
network_config_dir = %q
`, filepath.Join(dir, "events.log"), filepath.Join(dir, "networks")))
	// vfs: works on any filesystem, with no kernel overlay or fuse support.
	writeFile(t, filepath.Join(dir, "storage.conf"), fmt.Sprintf(`[storage]
driver = "vfs"
runroot = %q
graphroot = %q
`, runroot, root))
	writeFile(t, filepath.Join(dir, "policy.json"), `{"default":[{"type":"insecureAcceptAnything"}]}`+"\n")

	env = []string{
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(dir, "registries.conf"),
		"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf"),
		"HOME=" + dir,
	}
	global = []string{
		"--root", root, "--runroot", runroot, "--tmpdir", tmp,
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
	}
	t.Cleanup(func() {
		// vfs layers are plain directories; still, let podman drop its
		// storage locks and mounts before t.TempDir removes them.
		runCmd(t.Context(), env, "podman", append(global, "system", "reset", "--force")...)
	})
	return env, global, []string{"--signature-policy", filepath.Join(dir, "policy.json")}
}

func TestPodmanPull(t *testing.T) {
	e := setup(t)
	podman := needTool(t, "podman")
	env, global, pull := podmanSetup(t, e.addr)
	for _, ref := range []string{appImage, ociImage, hubImage, multiImage} {
		t.Run(ref, func(t *testing.T) {
			want := e.fixture(t, ref)
			args := append(slices.Clone(global), "pull", "--quiet")
			run(t, env, podman, append(append(args, pull...), ref)...)

			// Digest is the digest the image was pulled by (the index's, for
			// an index); RepoDigests lists name@digest for it and, for an
			// index, for the child pulled for this machine.
			out := run(t, env, podman, append(slices.Clone(global),
				"image", "inspect", "--format", "{{.Digest}} {{range .RepoDigests}}{{.}} {{end}}", ref)...)
			fields := strings.Fields(out)
			if len(fields) == 0 || fields[0] != want.digest.String() {
				t.Fatalf("podman image inspect: Digest and RepoDigests %v, want Digest %s", fields, want.digest)
			}
			repo, _, _ := strings.Cut(ref, ":")
			wantRepoDigests := []string{repo + "@" + want.digest.String()}
			if want.children != nil {
				wantRepoDigests = append(wantRepoDigests, repo+"@"+want.children[hostPlatform].String())
			}
			for _, rd := range wantRepoDigests {
				if !slices.Contains(fields[1:], rd) {
					t.Errorf("podman image inspect: RepoDigests %v lack %s", fields[1:], rd)
				}
			}
		})
	}
}
