package config

import (
	"strings"
	"testing"
)

func TestNormalizeRegistry(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"docker.io", "docker.io", "docker.io"},
		{"index.docker.io", "index.docker.io", "docker.io"},
		{"registry-1.docker.io", "registry-1.docker.io", "docker.io"},
		{"capitals", "Registry-1.Docker.IO", "docker.io"},
		{"other registry", "GHCR.io", "ghcr.io"},
		{"port kept", "Registry.Example:5000", "registry.example:5000"},
		{"Docker Hub with a port is not Docker Hub", "docker.io:443", "docker.io:443"},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NormalizeRegistry(tc.in); got != tc.want {
				t.Errorf("NormalizeRegistry(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCheckRegistry(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // "" for valid
	}{
		{"host", "ghcr.io", ""},
		{"single label", "localhost", ""},
		{"host and port", "registry.example:5000", ""},
		{"hyphens", "my-registry.example", ""},
		{"IPv4", "10.0.0.7", ""},
		{"IPv6", "[fd00::7]:5000", ""},
		{"empty", "", "not a valid registry name"},
		{"URL", "https://ghcr.io", "is a URL"},
		{"path", "ghcr.io/team", "not a valid registry name"},
		{"underscore", "my_registry", "not a valid registry name"},
		{"leading hyphen", "-r.example", "not a valid registry name"},
		{"empty label", "r..example", "not a valid registry name"},
		{"port only", ":5000", "not a valid registry name"},
		{"user info", "bot@r.example", "not a valid registry name"},
		{"space", "r example", "not a valid registry name"},
		{"port zero", "r.example:0", `port "0" is not a number from 1 to 65535`},
		{"port too big", "r.example:65536", `port "65536"`},
		{"empty port", "r.example:", "not a valid registry name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkRegistry(tc.in)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("checkRegistry(%q) = %v, want nil", tc.in, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("checkRegistry(%q) = %v, want an error containing %q", tc.in, err, tc.wantErr)
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "https", in: "https://mirror.internal", want: "https://mirror.internal"},
		{name: "http with port", in: "http://10.0.0.7:5000", want: "http://10.0.0.7:5000"},
		{name: "trailing slash", in: "https://mirror.internal/", want: "https://mirror.internal"},
		{name: "capitals", in: "HTTPS://Mirror.Internal", want: "https://mirror.internal"},
		{name: "IPv6", in: "https://[fd00::7]:5000", want: "https://[fd00::7]:5000"},
		{name: "ftp", in: "ftp://mirror.internal", wantErr: `scheme "ftp" not supported (want http or https)`},
		{name: "no scheme", in: "mirror.internal", wantErr: "is not an absolute URL"},
		{name: "bad URL", in: "https://mirror internal", wantErr: "not a valid URL: invalid character"},
		{name: "path", in: "https://mirror.internal/v2", wantErr: "must not have a path"},
		{name: "query", in: "https://mirror.internal?", wantErr: "must not have a query"},
		{name: "fragment", in: "https://mirror.internal#", wantErr: "must not have a fragment"},
		{name: "user info", in: "https://bot@mirror.internal", wantErr: "must not hold user info"},
		{name: "no host", in: "https://:5000", wantErr: "has no valid host"},
		{name: "bad port", in: "https://mirror.internal:0", wantErr: `port "0"`},
		{name: "empty port", in: "https://mirror.internal:", wantErr: "has no valid host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := parseEndpoint(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("parseEndpoint(%q) = %v, %v; want an error containing %q", tc.in, u, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseEndpoint(%q): %v", tc.in, err)
			}
			if u.String() != tc.want {
				t.Errorf("parseEndpoint(%q) = %q, want %q", tc.in, u, tc.want)
			}
		})
	}
}

func TestParseEndpointHidesPassword(t *testing.T) {
	_, err := parseEndpoint("https://bot:hunter2@mirror.internal")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("got %v, want an error without the password", err)
	}
}
