package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
	"github.com/portcullis-dev/portcullis/oci"
)

// dockerHub is the name Docker Hub's registry aliases normalise to, and
// dockerHubAPIHost is the host serving its registry API.
const (
	dockerHub        = oci.DockerHub
	dockerHubAPIHost = "registry-1.docker.io"
)

// NormalizeRegistry returns the canonical form of a registry name: lower
// case, with Docker Hub's names docker.io, index.docker.io and
// registry-1.docker.io all becoming "docker.io". It does not check that s
// is a valid registry name.
func NormalizeRegistry(s string) string { return oci.NormalizeRegistry(s) }

// checkRegistry reports whether the normalised registry name s is a valid
// host[:port].
func checkRegistry(s string) error {
	const want = `want a host[:port] such as "ghcr.io" or "registry.example:5000"`
	if strings.Contains(s, "://") {
		return fmt.Errorf("%s is a URL, not a registry name (%s; put the URL in endpoint)", yamlfile.Quote(s), want)
	}
	if _, err := name.NewRegistry(s, name.StrictValidation); err != nil {
		return fmt.Errorf("%s is not a valid registry name (%s)", yamlfile.Quote(s), want)
	}
	// name.NewRegistry only checks that s parses as a URL authority, which
	// lets through an empty host, user info and characters that are not
	// valid in a host name; be as strict as image references are.
	u, err := url.Parse("//" + s)
	if err != nil || u.Host != s || u.User != nil || !validHost(u.Hostname()) || strings.HasSuffix(s, ":") {
		return fmt.Errorf("%s is not a valid registry name (%s)", yamlfile.Quote(s), want)
	}
	if err := checkPort(u.Port()); err != nil {
		return fmt.Errorf("%s: %w", yamlfile.Quote(s), err)
	}
	return nil
}

// validHost reports whether h is an IP address or a DNS name made of
// letters, digits and inner hyphens, separated by dots.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkPort accepts "" (no port) and 1-65535.
func checkPort(port string) error {
	if port == "" {
		return nil
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s is not a number from 1 to 65535", yamlfile.Quote(port))
	}
	return nil
}

// defaultEndpoint returns the endpoint of the normalised registry name r
// when the config gives none: https://r, and Docker Hub's API host for
// docker.io.
func defaultEndpoint(r string) *url.URL {
	if r == dockerHub {
		return &url.URL{Scheme: "https", Host: dockerHubAPIHost}
	}
	return &url.URL{Scheme: "https", Host: r}
}

// parseEndpoint parses an upstream endpoint: an http or https URL with a
// host and optional port, and nothing else (a lone trailing "/" is
// allowed). The result holds only the scheme and host, in lower case.
func parseEndpoint(s string) (*url.URL, error) {
	const want = `want scheme://host[:port] such as "https://mirror.internal:5000"`
	if s == "" {
		return nil, fmt.Errorf("must not be empty (%s)", want)
	}
	if !strings.Contains(s, "://") {
		return nil, fmt.Errorf("%s is not an absolute URL (%s)", yamlfile.Quote(s), want)
	}
	u, err := url.Parse(s)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a valid URL: %v (%s)", err, want)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return nil, fmt.Errorf("scheme %s not supported (want http or https)", yamlfile.Quote(u.Scheme))
	case u.User != nil:
		return nil, fmt.Errorf("%s must not hold user info; put credentials in auth", yamlfile.Quote(u.Redacted()))
	case !validHost(u.Hostname()) || strings.HasSuffix(u.Host, ":"):
		return nil, fmt.Errorf("%s has no valid host (%s)", yamlfile.Quote(s), want)
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("%s must not have a path (%s)", yamlfile.Quote(s), want)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("%s must not have a query (%s)", yamlfile.Quote(s), want)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return nil, fmt.Errorf("%s must not have a fragment (%s)", yamlfile.Quote(s), want)
	}
	if err := checkPort(u.Port()); err != nil {
		return nil, fmt.Errorf("%s: %w", yamlfile.Quote(s), err)
	}
	return &url.URL{Scheme: scheme, Host: strings.ToLower(u.Host)}, nil
}
