//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// These tests check what deploy/README.md says about configurations that
// go around the proxy, with the real clients.

// TestContainerdHostsWithoutHostTable: a hosts.toml without its [host]
// table does not route through the proxy: containerd logs that it cannot
// decode the file ("invalid `host` tree", in ctr's output here, in the
// containerd log under the CRI plugin) and goes to the registry named in the
// image instead (here registry.example, which does not resolve), and the
// proxy sees nothing.
func TestContainerdHostsWithoutHostTable(t *testing.T) {
	e := setup(t)
	ctr := needTool(t, "ctr")
	p := e.startGatedProxy(t)
	socket := startContainerd(t)
	dir := t.TempDir()
	s := render(t, "containerd/hosts.toml", filepath.Join(dir, "registry.example", "hosts.toml"),
		"https://"+placeholderHost, "http://"+p.addr,
		`ca = "/etc/containerd/certs.d/portcullis-ca.crt"`, "# ca: not used over plain HTTP",
		"\n[host]\n", "\n# [host] removed\n",
	)
	t.Logf("hosts.toml (settings):\n%s", settings(s))
	r := fails(t, nil, ctr, "--address", socket, "images", "pull", "--hosts-dir", dir, "--snapshotter", "native", legacySignedImage)
	t.Logf("ctr pull: %s", r.stderr)
	if strings.Contains(r.stderr, p.addr) {
		t.Errorf("ctr pull went to the proxy despite the broken hosts.toml:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "failed to decode hosts.toml") || !strings.Contains(r.stderr, "https://registry.example/v2/") {
		t.Errorf("ctr pull does not show the broken file and the direct request to the real registry:\n%s", r.stderr)
	}
	if p.logContains(`"route":"manifest"`) {
		t.Error("the proxy served a manifest request: the pull did not go around it")
	}
}

// TestSkopeoInspectThroughRegistriesConf: with deploy/registries.conf,
// `skopeo inspect` of an image by its real name reaches the proxy only with
// --registries-conf (or the file installed system-wide) and --no-tags: the
// tag listing goes to the real registry, which registries.conf does not
// rewrite for it.
func TestSkopeoInspectThroughRegistriesConf(t *testing.T) {
	e := setup(t)
	skopeo := needTool(t, "skopeo")
	env, global := skopeoEnv(t)
	conf := filepath.Join(t.TempDir(), "registries.conf")
	render(t, "registries.conf", conf,
		placeholderHost, e.addr,
		"insecure = false", "insecure = true",
	)
	want := e.fixture(t, appImage)
	args := append(global, "inspect", "--registries-conf", conf, "--tls-verify=false", "--no-creds")
	out := run(t, env, skopeo, append(args, "--no-tags", "docker://"+appImage)...)
	if !strings.Contains(out, want.digest.String()) {
		t.Errorf("skopeo inspect --no-tags through registries.conf: no digest %s in\n%s", want.digest, out)
	}
	r := fails(t, env, skopeo, append(args, "docker://"+appImage)...)
	t.Logf("without --no-tags: %s", r.stderr)
	if !strings.Contains(r.stderr, "registry.example") {
		t.Errorf("skopeo inspect without --no-tags did not fail on the real registry:\n%s", r.stderr)
	}
}

// TestPodmanAliases: `unqualified-search-registries = []` does not
// stop short-name aliases (shortnames.conf, shipped by containers-common in
// registries.conf.d): "fedora" resolves through its alias to a registry the
// proxy does not serve, and podman pulls from that registry directly. A
// [[registry]] with `blocked = true` for it is what stops that.
func TestPodmanAliases(t *testing.T) {
	e := setup(t)
	podman := needTool(t, "podman")
	env, global, pull := podmanSetup(t, e.addr)
	conf := envValue(env, "CONTAINERS_REGISTRIES_CONF")
	appendFile(t, conf, "\n[aliases]\n\"fedora\" = \"registry.fedoraproject.org/fedora\"\n")
	args := append(append(slices.Clone(global), "pull", "--quiet"), pull...)
	r := fails(t, env, podman, append(args, "fedora")...)
	t.Logf("alias, no block: %s", r.stderr)
	if !strings.Contains(r.stderr, "registry.fedoraproject.org") || strings.Contains(r.stderr, e.addr) {
		t.Errorf("podman pull fedora did not go to the alias's registry directly:\n%s", r.stderr)
	}
	appendFile(t, conf, "\n[[registry]]\nprefix = \"registry.fedoraproject.org\"\nlocation = \"registry.fedoraproject.org\"\nblocked = true\n")
	r = fails(t, env, podman, append(args, "fedora")...)
	t.Logf("alias, blocked: %s", r.stderr)
	if !strings.Contains(r.stderr, "blocked") {
		t.Errorf("podman pull fedora with the registry blocked:\n%s", r.stderr)
	}
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
