package yamlfile

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Decoder decodes YAML nodes into settings, recording problems in its
// Report.
type Decoder struct {
	*Report
	maxNodes int // 0: no limit
	budget   int // nodes left to visit
}

// NewDecoder returns a decoder reporting to r. It decodes at most maxNodes
// mappings and list items, so that aliases nested in aliases cannot make
// the walk explode, and reports once when a file needs more; maxNodes <= 0
// means no limit.
func NewDecoder(r *Report, maxNodes int) *Decoder {
	maxNodes = max(maxNodes, 0)
	return &Decoder{Report: r, maxNodes: maxNodes, budget: maxNodes}
}

// DecodeFunc decodes the value n of the setting at path.
type DecodeFunc func(d *Decoder, path string, n *yaml.Node)

// Field is one setting of a YAML mapping.
type Field struct {
	Key      string     // the name administrators write
	Required bool       // the mapping must have it
	Decode   DecodeFunc // decodes and checks its value
}

// spend uses one node of the budget; false once it has run out, reported
// once.
func (d *Decoder) spend(line int) bool {
	if d.maxNodes == 0 {
		return true
	}
	d.budget--
	if d.budget == -1 {
		d.ErrorAt(line, "", "file is too complex: its aliases expand to more than %d settings", d.maxNodes)
	}
	return d.budget >= 0
}

// Mapping decodes the mapping n at path: each key must be one of fields,
// at most once, and every required field must be present. It returns the
// keys it saw, each with its line.
func (d *Decoder) Mapping(path string, n *yaml.Node, fields []Field) map[string]int {
	seen := make(map[string]int)
	if n.Kind != yaml.MappingNode {
		d.ErrorAt(n.Line, path, "want a mapping of settings, got %s", Describe(n))
		return seen
	}
	if !d.spend(n.Line) {
		return seen
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := Resolve(n.Content[i]), Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.ErrorAt(k.Line, path, "want a setting name, got %s", Describe(k))
			continue
		}
		f, ok := lookup(fields, k.Value)
		if !ok {
			d.ErrorAt(k.Line, path, "unknown field %s%s", Quote(k.Value), Suggest(k.Value, keys(fields)))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.ErrorAt(k.Line, path, "field %q is already set at line %d", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		p := Join(path, k.Value)
		d.lines[p] = k.Line
		f.Decode(d, p, v)
	}
	for _, f := range fields {
		if _, ok := seen[f.Key]; f.Required && !ok {
			d.ErrorAt(n.Line, path, "missing required field %q", f.Key)
		}
	}
	return seen
}

// List decodes the list n at path, calling item for each element with the
// element's path, such as "policies[0]". A null value is an empty list.
func (d *Decoder) List(path string, n *yaml.Node, item func(path string, n *yaml.Node)) {
	if IsNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.ErrorAt(n.Line, path, "want a list, got %s", Describe(n))
		return
	}
	for i, e := range n.Content {
		if !d.spend(e.Line) {
			return
		}
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = e.Line
		item(p, Resolve(e))
	}
}

// Scalar returns the text of the scalar n; "" for null. want describes
// what was expected, for the problem reported when n is not a scalar.
func (d *Decoder) Scalar(path string, n *yaml.Node, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.ErrorAt(n.Line, path, "want %s, got %s", want, Describe(n))
		return "", false
	}
	if IsNull(n) {
		return "", true
	}
	return n.Value, true
}

// Text decodes any scalar as a string, null as "".
func Text(p *string) DecodeFunc {
	return func(d *Decoder, path string, n *yaml.Node) {
		if s, ok := d.Scalar(path, n, "a string"); ok {
			*p = s
		}
	}
}

// NonEmpty decodes a string that must not be empty.
func NonEmpty(p *string) DecodeFunc {
	return func(d *Decoder, path string, n *yaml.Node) {
		s, ok := d.Scalar(path, n, "a string")
		switch {
		case !ok:
		case s == "":
			d.ErrorAt(n.Line, path, "must not be empty")
		default:
			*p = s
		}
	}
}

// Bool decodes true or false.
func Bool(p *bool) DecodeFunc {
	return func(d *Decoder, path string, n *yaml.Node) {
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.ErrorAt(n.Line, path, "want true or false, got %s", Describe(n))
			return
		}
		*p = b
	}
}

// Int decodes a whole number.
func Int[T int | int64](p *T) DecodeFunc {
	return func(d *Decoder, path string, n *yaml.Node) {
		if v, ok := decodeInt[T](d, path, n); ok {
			*p = v
		}
	}
}

// IntAtLeast decodes a whole number no smaller than least.
func IntAtLeast[T int | int64](p *T, least T) DecodeFunc {
	return func(d *Decoder, path string, n *yaml.Node) {
		v, ok := decodeInt[T](d, path, n)
		switch {
		case !ok:
		case v < least:
			d.ErrorAt(n.Line, path, "must be at least %d, got %s", least, Quote(n.Value))
		default:
			*p = v
		}
	}
}

// IntBetween decodes a whole number from least to most.
func IntBetween[T int | int64](p *T, least, most T) DecodeFunc {
	return func(d *Decoder, path string, n *yaml.Node) {
		v, ok := decodeInt[T](d, path, n)
		switch {
		case !ok:
		case v < least || v > most:
			d.ErrorAt(n.Line, path, "must be from %d to %d, got %s", least, most, Quote(n.Value))
		default:
			*p = v
		}
	}
}

func decodeInt[T int | int64](d *Decoder, path string, n *yaml.Node) (T, bool) {
	var v T
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.ErrorAt(n.Line, path, "want a whole number, got %s", Describe(n))
		return v, false
	}
	if err := n.Decode(&v); err != nil {
		d.ErrorAt(n.Line, path, "%s is out of range", Quote(n.Value))
		return v, false
	}
	return v, true
}

// Resolve follows an alias (*name) to the node it stands for.
func Resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// IsNull reports whether n is null: "~", "null", or nothing at all.
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Describe says what n is, for "want X, got Y" messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if IsNull(n) {
			return "nothing"
		}
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			return "the quoted string " + Quote(n.Value)
		}
		return Quote(n.Value)
	}
	return "an unexpected YAML node"
}

// Quote quotes s for a message, shortened if long.
func Quote(s string) string {
	const max = 64
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "..."
	}
	return strconv.Quote(s)
}

// Join returns the path of the setting key inside the mapping at path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func lookup(fields []Field, key string) (Field, bool) {
	for _, f := range fields {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

func keys(fields []Field) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Key
	}
	return names
}

// Suggest returns ` (did you mean "x"?)` when s looks like a misspelling
// of x, one of names, else "".
func Suggest(s string, names []string) string {
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
