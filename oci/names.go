package oci

import "strings"

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
