package yamlfile

import (
	"bytes"
	"errors"
	"io"

	"go.yaml.in/yaml/v3"
)

// Format says what a kind of file holds, for the problems of TopLevel.
type Format struct {
	// Name names the kind of file, such as "policy file": "found a second
	// YAML document; a policy file holds one".
	Name string
	// Needs is what an empty file lacks, such as `a "policies" list`:
	// "file is empty; it needs at least a "policies" list".
	Needs string
	// TopLevel is what the top level must be, such as `a mapping with
	// "policies:" at the top level`: "want ..., got ...".
	TopLevel string
	// SecondDocumentAtContent reports a second document on the line its
	// content starts on (the line after a bare "---"), rather than on the
	// line of its "---". (cmd/portcullis/config does; package policy does
	// not.)
	SecondDocumentAtContent bool
}

// TopLevel parses data as a single YAML document and returns its top-level
// mapping; nil, with the problem in r, when there is none.
func TopLevel(data []byte, r *Report, f Format) *yaml.Node {
	empty := "file is empty; it needs at least " + f.Needs
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			r.ErrorAt(0, "", "%s", empty)
		} else {
			r.addYAML(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		r.addYAML(err)
		return nil
	default:
		line := next.Line
		if f.SecondDocumentAtContent && len(next.Content) > 0 {
			line = next.Content[0].Line
		}
		r.ErrorAt(line, "", "found a second YAML document; a %s holds one", f.Name)
		return nil
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = Resolve(doc.Content[0])
	}
	switch {
	case root.Kind == yaml.DocumentNode || IsNull(root):
		r.ErrorAt(0, "", "%s", empty)
		return nil
	case root.Kind != yaml.MappingNode:
		r.ErrorAt(root.Line, "", "want %s, got %s", f.TopLevel, Describe(root))
		return nil
	}
	return root
}
