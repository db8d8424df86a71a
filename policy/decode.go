package policy

import (
	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
)

// This file holds the decoders of the values only a policy file has; the
// walk of the YAML node tree, and the decoders of plain strings, booleans
// and numbers, are package yamlfile's (shared with cmd/portcullis/config).

// maxNodes bounds how many mappings and list items one file may decode
// into, so that aliases nested in aliases cannot make the walk explode.
const maxNodes = 100_000

// item is a string from a list, with its path for messages.
type item struct {
	value, path string
}

// listOf decodes a list (null is an empty one) whose items decode decodes,
// appending them to list.
func listOf[T any](list *[]T, decode func(d *yamlfile.Decoder, path string, n *yaml.Node) T) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		d.List(path, n, func(path string, n *yaml.Node) { *list = append(*list, decode(d, path, n)) })
	}
}

// stringList decodes a list of non-empty strings, keeping each with its path.
func stringList(p *[]item) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		d.List(path, n, func(path string, n *yaml.Node) {
			var s string
			yamlfile.NonEmpty(&s)(d, path, n)
			if s != "" {
				*p = append(*p, item{s, path})
			}
		})
	}
}

// patterns decodes a list of image patterns that must not be empty.
func patterns(p *[]item) yamlfile.DecodeFunc {
	return func(d *yamlfile.Decoder, path string, n *yaml.Node) {
		if yamlfile.IsNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
			d.ErrorAt(n.Line, path, "must list at least one image pattern, such as \"registry.example/acme/**\"")
			return
		}
		stringList(p)(d, path, n)
	}
}

// exactlyOne reports a mapping n (whose keys are set) that has both or
// neither of the fields a and b.
func exactlyOne(d *yamlfile.Decoder, path string, n *yaml.Node, set map[string]int, a, b string) {
	if n.Kind != yaml.MappingNode {
		return // reported already
	}
	lineA, okA := set[a]
	lineB, okB := set[b]
	switch {
	case okA && okB:
		d.ErrorAt(max(lineA, lineB), path, "set only one of %q and %q", a, b)
	case !okA && !okB:
		d.ErrorAt(n.Line, path, "needs one of %q or %q", a, b)
	}
}

// atMostOne reports a mapping n (whose keys are set) that has both of the
// fields a and b.
func atMostOne(d *yamlfile.Decoder, path string, n *yaml.Node, set map[string]int, a, b string) {
	lineA, okA := set[a]
	lineB, okB := set[b]
	if n.Kind == yaml.MappingNode && okA && okB {
		d.ErrorAt(max(lineA, lineB), path, "set only one of %q and %q", a, b)
	}
}
