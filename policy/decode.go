package policy

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// This file walks the YAML node tree (the approach of cmd/portcullis/config,
// which this package may not import). Walking nodes rather than
// unmarshalling into structs lets every problem carry its line, tells a
// setting the file leaves out from one it sets to zero, and lets decoding go
// on past a bad value to report the next one too.

// maxNodes bounds how many mappings and list items one file may decode
// into, so that aliases nested in aliases cannot make the walk explode.
const maxNodes = 100_000

// decoder decodes YAML nodes, recording problems in its report.
type decoder struct {
	*report
	budget int // nodes left to visit
}

// decodeFunc decodes the value n of the setting at path.
type decodeFunc func(path string, n *yaml.Node)

// field is one setting of a YAML mapping.
type field struct {
	key      string     // the name administrators write
	required bool       // the mapping must have it
	decode   decodeFunc // decodes and checks its value
}

// spend uses one node of the budget; false once it has run out, reported
// once.
func (d *decoder) spend(line int) bool {
	d.budget--
	if d.budget == -1 {
		d.errorAt(line, "", "file is too complex: its aliases expand to more than %d settings", maxNodes)
	}
	return d.budget >= 0
}

// mapping decodes the mapping n at path: each key must be one of fields,
// at most once, and every required field must be present. It returns the
// keys it saw, each with its line.
func (d *decoder) mapping(path string, n *yaml.Node, fields []field) map[string]int {
	seen := make(map[string]int)
	if n.Kind != yaml.MappingNode {
		d.errorAt(n.Line, path, "want a mapping of settings, got %s", describe(n))
		return seen
	}
	if !d.spend(n.Line) {
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorAt(k.Line, path, "want a setting name, got %s", describe(k))
			continue
		}
		f, ok := lookup(fields, k.Value)
		if !ok {
			d.errorAt(k.Line, path, "unknown field %s%s", quote(k.Value), suggest(k.Value, fieldNames(fields)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorAt(k.Line, path, "field %q is already set at line %d", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		p := join(path, k.Value)
		d.lines[p] = k.Line
		f.decode(p, v)
	}
	for _, f := range fields {
		if _, ok := seen[f.key]; f.required && !ok {
			d.errorAt(n.Line, path, "missing required field %q", f.key)
		}
	}
	return seen
}

// list decodes the list n at path, calling item for each element with the
// element's path, such as "policies[0]". A null value is an empty list.
func (d *decoder) list(path string, n *yaml.Node, item func(path string, n *yaml.Node)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorAt(n.Line, path, "want a list, got %s", describe(n))
		return
	}
	for i, e := range n.Content {
		if !d.spend(e.Line) {
			return
		}
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = e.Line
		item(p, resolve(e))
	}
}

// scalar returns the text of the scalar n; "" for null. want describes
// what was expected, for the problem reported when n is not a scalar.
func (d *decoder) scalar(path string, n *yaml.Node, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorAt(n.Line, path, "want %s, got %s", want, describe(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// text decodes any scalar as a string, null as "".
func (d *decoder) text(p *string) decodeFunc {
	return func(path string, n *yaml.Node) {
		if s, ok := d.scalar(path, n, "a string"); ok {
			*p = s
		}
	}
}

// nonEmpty decodes a string that must not be empty.
func (d *decoder) nonEmpty(p *string) decodeFunc {
	return func(path string, n *yaml.Node) {
		s, ok := d.scalar(path, n, "a string")
		switch {
		case !ok:
		case s == "":
			d.errorAt(n.Line, path, "must not be empty")
		default:
			*p = s
		}
	}
}

// stringList decodes a list of non-empty strings, keeping each with its path.
func (d *decoder) stringList(p *[]item) decodeFunc {
	return func(path string, n *yaml.Node) {
		d.list(path, n, func(path string, n *yaml.Node) {
			var s string
			d.nonEmpty(&s)(path, n)
			if s != "" {
				*p = append(*p, item{s, path})
			}
		})
	}
}

// flag decodes true or false.
func (d *decoder) flag(p *bool) decodeFunc {
	return func(path string, n *yaml.Node) {
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.errorAt(n.Line, path, "want true or false, got %s", describe(n))
			return
		}
		*p = b
	}
}

// number decodes a whole number.
func (d *decoder) number(p *int) decodeFunc {
	return func(path string, n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.errorAt(n.Line, path, "want a whole number, got %s", describe(n))
			return
		}
		var v int
		if err := n.Decode(&v); err != nil {
			d.errorAt(n.Line, path, "%s is out of range", quote(n.Value))
			return
		}
		*p = v
	}
}

// item is a string from a list, with its path for messages.
type item struct {
	value, path string
}

// resolve follows an alias (*name) to the node it stands for.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe says what n is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			return "the quoted string " + quote(n.Value)
		}
		return quote(n.Value)
	}
	return "an unexpected YAML node"
}

// quote quotes s for a message, shortened if long.
func quote(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "..."
	}
	return strconv.Quote(s)
}

// join returns the path of the setting key inside the mapping at path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func lookup(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func fieldNames(fields []field) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.key
	}
	return names
}

// suggest returns ` (did you mean "x"?)` when s looks like a misspelling
// of x, one of names, else "".
func suggest(s string, names []string) string {
	best, bestDist := "", 3 // suggest only within 2 edits
	for _, name := range names {
		dist := editDistance(strings.ToLower(s), strings.ToLower(name))
		if dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b)) // long strings are never near a name
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
