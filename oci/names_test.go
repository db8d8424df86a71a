package oci

import (
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/nginx":               "docker.io/library/nginx",
		"index.docker.io/nginx":         "docker.io/library/nginx",
		"registry-1.docker.io/acme/app": "docker.io/acme/app",
		"Registry.Example/acme/app":     "registry.example/acme/app",
		"registry.example/nginx":        "registry.example/nginx",
		"docker.io":                     "docker.io",
		"DOCKER.IO/library/busybox":     "docker.io/library/busybox",
	} {
		if got := NormalizeImage(in); got != want {
			t.Errorf("NormalizeImage(%q) = %q, want %q", in, got, want)
		}
	}
	if got := (Repository{Registry: "r", Name: "a/b"}).String(); got != "r/a/b" {
		t.Errorf("String = %q", got)
	}
}

func TestParseImage(t *testing.T) {
	configured := func(r string) bool { return r == "mirror" }
	for _, tc := range []struct{ in, def, repo, ref string }{
		{"registry.example/acme/app:v1", "", "registry.example/acme/app", "v1"},
		{"acme/app@sha256:abc", "docker.io", "docker.io/acme/app", "sha256:abc"},
		{"alpine", "index.docker.io", "docker.io/library/alpine", "latest"},
		{"localhost:5000/x", "", "localhost:5000/x", "latest"},
		{"mirror/team/app:2", "docker.io", "mirror/team/app", "2"},
	} {
		repo, ref, err := ParseImage(tc.in, tc.def, configured)
		if err != nil || repo.String() != tc.repo || ref != tc.ref {
			t.Errorf("ParseImage(%q) = %s %q %v, want %s %q", tc.in, repo, ref, err, tc.repo, tc.ref)
		}
	}
	for _, bad := range []string{"app", "registry.example/:v1", "registry.example/app@"} {
		if _, _, err := ParseImage(bad, "", configured); err == nil {
			t.Errorf("ParseImage(%q) accepted", bad)
		}
	}
}

func TestValidReference(t *testing.T) {
	for ref, want := range map[string]bool{
		"v1": true, "sha256-" + strings.Repeat("a", 64) + ".sig": true, "sha256:" + strings.Repeat("a", 64): true,
		"v1/../x": false, "sha256:zz": false, "-v1": false, "": false,
	} {
		if ValidReference(ref) != want {
			t.Errorf("ValidReference(%q) = %v", ref, !want)
		}
	}
}
