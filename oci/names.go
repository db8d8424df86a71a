package oci

import (
	"fmt"
	"strings"
)

// DockerHub is the canonical name of Docker Hub; index.docker.io and
// registry-1.docker.io are the same registry.
const DockerHub = "docker.io"

// Repository names a repository as clients name it through the proxy: the
// configured registry name (Docker Hub as "docker.io") and the repository
// path on that registry ("library/nginx").
type Repository struct {
	Registry string
	Name     string
}

// String is "registry/name", the form policies match against.
func (r Repository) String() string { return r.Registry + "/" + r.Name }

// NormalizeRegistry lower-cases a registry name and folds Docker Hub's
// aliases into "docker.io".
func NormalizeRegistry(s string) string {
	s = strings.ToLower(s)
	switch s {
	case "index.docker.io", "registry-1.docker.io":
		return DockerHub
	}
	return s
}

// NormalizeRepository is the repository path as stored on registry: a
// one-segment Docker Hub repository ("nginx") is "library/nginx".
func NormalizeRepository(registry, name string) string {
	if NormalizeRegistry(registry) == DockerHub && name != "" && !strings.Contains(name, "/") {
		return "library/" + name
	}
	return name
}

// NormalizeImage returns image ("registry/repository") with its registry
// normalised and Docker Hub's implied "library/" added.
func NormalizeImage(image string) string {
	reg, repo, ok := strings.Cut(image, "/")
	reg = NormalizeRegistry(reg)
	if !ok {
		return reg
	}
	return reg + "/" + NormalizeRepository(reg, repo)
}

// MaxRepositoryName is the longest repository name accepted, as
// distribution does.
const MaxRepositoryName = 255

// ValidRepositoryName reports whether name is a repository name by the
// distribution spec's <name> grammar, at most MaxRepositoryName bytes:
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// It is checked by hand rather than by that regexp (which names_test.go
// holds, and FuzzNameGrammar compares with): every request is checked,
// and the regexp took 0.8 µs of a warm pull's 50.
func ValidRepositoryName(name string) bool {
	if len(name) > MaxRepositoryName {
		return false
	}
	for {
		comp, rest, more := strings.Cut(name, "/")
		if !validComponent(comp) {
			return false
		}
		if !more {
			return true
		}
		name = rest
	}
}

// validComponent reports whether c is one path component: runs of
// [a-z0-9] joined by ".", "_", "__" or any number of "-".
func validComponent(c string) bool {
	i := 0
	for {
		start := i
		for i < len(c) && (c[i] >= 'a' && c[i] <= 'z' || c[i] >= '0' && c[i] <= '9') {
			i++
		}
		if i == start {
			return false // empty, or a separator at the start, the end or after another
		}
		if i == len(c) {
			return true
		}
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// ValidTag reports whether tag is a tag by the distribution spec's grammar
// ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}), checked by hand as names are.
func ValidTag(tag string) bool {
	if tag == "" || len(tag) > 128 || tag[0] == '.' || tag[0] == '-' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ValidReference reports whether ref is a tag or a digest oci.ParseDigest
// accepts: what may follow /manifests/ in a path.
func ValidReference(ref string) bool {
	if IsDigest(ref) {
		_, err := ParseDigest(ref)
		return err == nil
	}
	return ValidTag(ref)
}

// ParseImage splits an image as clients name it through the proxy
// ("registry.example/acme/app:v1", "acme/app@sha256:...", "alpine") into
// the repository and the reference (a tag, or the digest after "@";
// default "latest"). The first segment is the registry when it reads as a
// host (a dot, a colon, localhost) or configured says it is one; otherwise
// the name is on defaultRegistry. Registry and repository are normalised.
func ParseImage(s, defaultRegistry string, configured func(registry string) bool) (Repository, string, error) {
	name, ref := s, "latest"
	if i := strings.Index(s, "@"); i >= 0 {
		name, ref = s[:i], s[i+1:]
	} else if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		name, ref = s[:i], s[i+1:]
	}
	registry, repo := defaultRegistry, name
	if first, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost" || configured(first)) {
		registry, repo = first, rest
	}
	if registry == "" {
		return Repository{}, "", fmt.Errorf("%s names no registry, and there is no default registry", s)
	}
	registry = NormalizeRegistry(registry)
	repo = NormalizeRepository(registry, repo)
	if repo == "" || ref == "" {
		return Repository{}, "", fmt.Errorf("%s: not an image reference", s)
	}
	return Repository{Registry: registry, Name: repo}, ref, nil
}
