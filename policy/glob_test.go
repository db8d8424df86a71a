package policy

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, image string
		want           bool
	}{
		{"registry.example/acme/app", "registry.example/acme/app", true},
		{"registry.example/acme/app", "registry.example/acme/app2", false},
		{"registry.example/acme/*", "registry.example/acme/app", true},
		{"registry.example/acme/*", "registry.example/acme/team/app", false},
		{"registry.example/acme/*", "registry.example/acme", false},
		{"registry.example/acme/app-*", "registry.example/acme/app-web", true},
		{"registry.example/acme/app-*", "registry.example/acme/app-", true},
		{"registry.example/acme/*-web", "registry.example/acme/app-web", true},
		{"registry.example/acme/*-web", "registry.example/acme/app-api", false},
		{"registry.example/acme/a*b*c", "registry.example/acme/axxbyyc", true},
		{"registry.example/acme/a*b*c", "registry.example/acme/axxbyy", false},
		{"registry.example/acme/**", "registry.example/acme/app", true},
		{"registry.example/acme/**", "registry.example/acme/team/app/x", true},
		{"registry.example/acme/**", "registry.example/acme", false},
		{"registry.example/acme/**", "registry.example/acmeco/app", false},
		{"registry.example/a/**/b", "registry.example/a/b", false},
		{"registry.example/a/**/b", "registry.example/a/x/b", true},
		{"registry.example/a/**/b", "registry.example/a/x/y/b", true},
		{"registry.example/a/**/b", "registry.example/a/x/y/c", false},
		{"registry.example/**/b/**", "registry.example/a/b/c", true},
		{"registry.example/**/b/**", "registry.example/b/c", false},
		{"*.example/acme/app", "registry.example/acme/app", true},
		{"*/acme/app", "ghcr.io/acme/app", true},
		{"**", "ghcr.io/acme/app", true},
		{"**/app", "ghcr.io/acme/app", true},
		{"localhost:5000/app", "localhost:5000/app", true},
		{"Registry.Example/acme/app", "registry.example/acme/app", true},
		{"registry.example/acme/app", "REGISTRY.example/acme/app", true},
		{"registry.example/acme/a?p", "registry.example/acme/app", false}, // "?" is literal
		{"registry.example/acme/[a]pp", "registry.example/acme/[a]pp", true},
		// Docker Hub.
		{"docker.io/library/nginx", "docker.io/library/nginx", true},
		{"index.docker.io/library/nginx", "docker.io/library/nginx", true},
		{"registry-1.docker.io/library/nginx", "docker.io/library/nginx", true},
		{"docker.io/nginx", "docker.io/library/nginx", true},
		{"docker.io/library/nginx", "docker.io/nginx", true},
		{"docker.io/library/nginx", "index.docker.io/library/nginx", true},
		{"docker.io/*", "docker.io/library/nginx", true},
		{"docker.io/*", "docker.io/bitnami/redis", false},
		{"docker.io/**", "docker.io/bitnami/redis", true},
		{"docker.io/bitnami/*", "docker.io/bitnami/redis", true},
	}
	for _, tc := range tests {
		got, err := matchPattern(tc.pattern, tc.image)
		if err != nil {
			t.Errorf("matchPattern(%q, %q): %v", tc.pattern, tc.image, err)
			continue
		}
		if got != tc.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tc.pattern, tc.image, got, tc.want)
		}
	}
}

func TestMatchBadPattern(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{"", "empty"},
		{"nginx", `for Docker Hub write "docker.io/library/nginx"`},
		{"acme/app", `for Docker Hub write "docker.io/acme/app"`},
		{"registry.example", `write "registry.example/**"`},
		{"registry.example/a**b", `"**" must be a whole path segment`},
		{"registry.example/***", `"**" must be a whole path segment`},
		{"**.example/app", `"**" must be a whole path segment`},
		{"registry.example//app", "empty path segment"},
		{"registry.example/app/", "empty path segment"},
		{"/registry.example/app", "empty path segment"},
		{"registry.example/app:latest", `remove the ":latest" part`},
		{"registry.example/app@sha256:abc", `remove the "@sha256:abc" part`},
		{"https://registry.example/app", "is a URL"},
		{"ghcr.io/Acme/app", `write "ghcr.io/acme/app"`},
	}
	for _, tc := range tests {
		ok, err := matchPattern(tc.pattern, "registry.example/app")
		if err == nil || ok || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("matchPattern(%q) = %v, %v; want an error containing %q", tc.pattern, ok, err, tc.want)
		}
	}
}

func TestNormalizeImage(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/nginx":               "docker.io/library/nginx",
		"Index.Docker.IO/library/nginx": "docker.io/library/nginx",
		"registry-1.docker.io/a/b":      "docker.io/a/b",
		"GHCR.io/acme/app":              "ghcr.io/acme/app",
		"localhost:5000/x":              "localhost:5000/x",
	} {
		if got := normalizeImage(in); got != want {
			t.Errorf("normalizeImage(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMatchManyStars checks that matching stays fast for patterns full of
// wildcards.
func TestMatchManyStars(t *testing.T) {
	pattern := "r.example/" + strings.Repeat("**/", 30) + strings.Repeat("*a", 30)
	image := "r.example/" + strings.Repeat("x/", 100) + strings.Repeat("a", 60) + "b"
	if ok, err := matchPattern(pattern, image); ok || err != nil {
		t.Errorf("Match = %v, %v", ok, err)
	}
}

// matchPattern reports whether the image pattern matches image ("registry/
// repository" as clients name it through the proxy). Both are normalised
// first: the registry is lower-cased, Docker Hub's aliases become
// "docker.io", and "docker.io/x" becomes "docker.io/library/x". It returns
// an error, and false, for a pattern Load would reject.
func matchPattern(pattern, image string) (bool, error) {
	g, err := compileGlob(pattern)
	if err != nil {
		return false, err
	}
	return g.match(normalizeImage(image)), nil
}
