package oci

import (
	"regexp"
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

// The distribution spec's grammars, as regexps: what the hand-written
// checks must agree with.
var (
	specName = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	specTag  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	specHex  = regexp.MustCompile(`^[0-9a-f]*$`)
	// The two algorithms registries use, with their encoded lengths
	// (the OCI image spec's registered algorithms).
	specDigest = regexp.MustCompile(`^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$`)
)

func TestNamesAgreeWithTheGrammar(t *testing.T) {
	long := strings.Repeat("a", 250)
	for _, s := range []string{
		"", "a", "acme/app", "a/b/c", "library/nginx", "a.b", "a_b", "a__b", "a___b", "a-b", "a---b",
		"a.-b", "a-.b", "a._b", ".a", "a.", "-a", "a-", "_a", "a_", "a//b", "/a", "a/", "A", "aB",
		"a b", "a\x00b", "ä", "a/.b", "a/b-", "0", "0/0", long + "/abcd", long + "/abcde", long + "/abcdef",
		strings.Repeat("v", 128), strings.Repeat("v", 129), "V1.0_rc-1", "_x", ".x", "x..y", "x--y",
		"sha256-" + strings.Repeat("a", 64) + ".sig",
		"sha256:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("a", 63), "sha256:" + strings.Repeat("a", 65),
		"sha256:" + strings.Repeat("A", 64), "SHA256:" + strings.Repeat("a", 64), "sha512:" + strings.Repeat("0", 128),
		"sha512:" + strings.Repeat("0", 64), "sha384:" + strings.Repeat("0", 96), "sha256:", ":", "sha256:" + strings.Repeat("a", 63) + "g",
		"sha256:" + strings.Repeat("a", 32) + ":" + strings.Repeat("a", 31),
	} {
		checkGrammar(t, s)
	}
}

func FuzzNameGrammar(f *testing.F) {
	for _, s := range []string{"acme/app", "a__b", "a-.b", "v1.0", "x/y_z", strings.Repeat("a", 256), "DEADbeef", "sha256:" + strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(checkGrammar)
}

func checkGrammar(t *testing.T, s string) {
	if got, want := ValidRepositoryName(s), len(s) <= MaxRepositoryName && specName.MatchString(s); got != want {
		t.Errorf("ValidRepositoryName(%q) = %v, the grammar says %v", s, got, want)
	}
	if got, want := ValidTag(s), specTag.MatchString(s); got != want {
		t.Errorf("ValidTag(%q) = %v, the grammar says %v", s, got, want)
	}
	if got, want := lowerHex(s), specHex.MatchString(s); got != want {
		t.Errorf("lowerHex(%q) = %v, the grammar says %v", s, got, want)
	}
	if _, err := ParseDigest(s); (err == nil) != specDigest.MatchString(s) {
		t.Errorf("ParseDigest(%q) = %v, the grammar says %v", s, err, specDigest.MatchString(s))
	}
	if got, want := ValidReference(s), specTag.MatchString(s) || specDigest.MatchString(s); got != want {
		t.Errorf("ValidReference(%q) = %v, the grammar says %v", s, got, want)
	}
}
