package policy

import (
	"fmt"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
	"github.com/portcullis-dev/portcullis/oci"
)

// dockerHub is Docker Hub's canonical registry name; its aliases are folded
// into it, and its one-segment repositories ("nginx") live under "library/".
const dockerHub = oci.DockerHub

// glob is a compiled image pattern: "registry/repository" split on "/",
// where "*" matches within one segment and a "**" segment matches one or
// more whole segments.
type glob struct {
	pattern string // normalised
	segs    []string
}

func normalizeImage(image string) string { return oci.NormalizeImage(image) }

func normalizeRegistry(s string) string { return oci.NormalizeRegistry(s) }

// compileGlob checks and normalises pattern.
func compileGlob(pattern string) (*glob, error) {
	if pattern == "" {
		return nil, fmt.Errorf("empty image pattern")
	}
	if strings.Contains(pattern, "://") {
		return nil, fmt.Errorf("%s is a URL; write registry/repository, such as \"ghcr.io/acme/**\"", yamlfile.Quote(pattern))
	}
	segs := strings.Split(pattern, "/")
	if err := checkRegistrySegment(pattern, segs); err != nil {
		return nil, err
	}
	segs[0] = normalizeRegistry(segs[0])
	for _, s := range segs[1:] {
		if err := checkSegment(pattern, s); err != nil {
			return nil, err
		}
	}
	if segs[0] == dockerHub && len(segs) == 2 && segs[1] != "**" {
		segs = []string{dockerHub, "library", segs[1]}
	}
	return &glob{pattern: strings.Join(segs, "/"), segs: segs}, nil
}

// checkRegistrySegment checks that pattern starts with a registry, as
// image references do: a first segment with a "." or ":", "localhost", or a
// wildcard ("*" or "**") matching any.
func checkRegistrySegment(pattern string, segs []string) error {
	first := segs[0]
	switch {
	case first == "*" || first == "**":
	case first == "" || strings.Contains(first, "@"):
		return checkSegment(pattern, first)
	case strings.Contains(first, "**"):
		return fmt.Errorf("%s: \"**\" must be a whole path segment, such as \"a/**/b\"", yamlfile.Quote(pattern))
	case strings.ContainsAny(first, ".:") || strings.EqualFold(first, "localhost"):
	default:
		hint := dockerHub + "/" + pattern
		if len(segs) == 1 {
			hint = dockerHub + "/library/" + pattern
		}
		return fmt.Errorf("%s does not start with a registry; for Docker Hub write %s", yamlfile.Quote(pattern), yamlfile.Quote(hint))
	}
	if len(segs) == 1 && first != "**" { // "**" alone matches every image
		return fmt.Errorf("%s names a registry but no repository; write %s to match all its repositories", yamlfile.Quote(pattern), yamlfile.Quote(pattern+"/**"))
	}
	return nil
}

// checkSegment checks one repository segment of pattern.
func checkSegment(pattern, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s has an empty path segment (a doubled, leading or trailing \"/\")", yamlfile.Quote(pattern))
	case strings.ContainsAny(s, "@:"):
		return fmt.Errorf("%s: patterns match repositories, not tags or digests; remove the %q part", yamlfile.Quote(pattern), s[strings.IndexAny(s, "@:"):])
	case s != "**" && strings.Contains(s, "**"):
		return fmt.Errorf("%s: \"**\" must be a whole path segment, such as \"a/**/b\" (use \"*\" within a segment)", yamlfile.Quote(pattern))
	case strings.ToLower(s) != s:
		return fmt.Errorf("%s: repository names are lower-case in image references, so this never matches; write %s", yamlfile.Quote(pattern), yamlfile.Quote(strings.ToLower(pattern)))
	}
	return nil
}

// match reports whether the normalised image matches g. It runs in time
// proportional to len(g.segs) * segments of image.
func (g *glob) match(image string) bool {
	segs := strings.Split(image, "/")
	n := len(segs)
	// next[j]: g.segs[i+1:] matches segs[j:]; cur[j]: g.segs[i:] matches segs[j:].
	next, cur := make([]bool, n+1), make([]bool, n+1)
	next[n] = true
	for i := len(g.segs) - 1; i >= 0; i-- {
		cur[n] = false
		for j := n - 1; j >= 0; j-- {
			if g.segs[i] == "**" {
				cur[j] = next[j+1] || cur[j+1] // consume segs[j], then stop or go on
			} else {
				cur[j] = next[j+1] && matchSegment(g.segs[i], segs[j])
			}
		}
		next, cur = cur, next
	}
	return next[0]
}

// matchSegment matches one segment against a pattern segment in which "*"
// matches any run of characters and everything else is literal.
func matchSegment(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	p, i := 0, 0
	star, mark := -1, 0 // last "*" seen in pattern, and where in s it started
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// ImagePattern is an image pattern as policies write them
// ("registry/repository", "*" within a segment, "**" across segments),
// for matching images outside a policy (the decision log's filter, a
// verdict purge).
type ImagePattern struct{ g *glob }

// ParseImagePattern checks and compiles pattern.
func ParseImagePattern(pattern string) (ImagePattern, error) {
	g, err := compileGlob(pattern)
	if err != nil {
		return ImagePattern{}, err
	}
	return ImagePattern{g: g}, nil
}

// Match reports whether image ("registry/repository", normalised here)
// matches the pattern.
func (p *ImagePattern) Match(image string) bool {
	return p.g != nil && p.g.match(normalizeImage(image))
}

// String is the normalised pattern ("" for a nil pattern, which matches
// every image where a pattern is optional).
func (p *ImagePattern) String() string {
	if p == nil || p.g == nil {
		return ""
	}
	return p.g.pattern
}
