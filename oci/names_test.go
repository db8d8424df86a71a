package oci

import "testing"

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
