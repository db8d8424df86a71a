package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// This file walks the YAML node tree. Walking nodes rather than
// unmarshalling into structs lets every problem carry the line it is on,
// tells a setting the file leaves out from one it sets to zero, and lets
// decoding go on past a bad value to find the next one.

// decoder decodes YAML nodes into a Config, recording problems in its
// report.
type decoder struct {
	*report
}

// decodeFunc decodes the value n of the setting at path.
type decodeFunc func(d *decoder, path string, n *yaml.Node)

// field is one setting of a YAML mapping.
type field struct {
	key      string     // the name administrators write
	required bool       // the mapping must have it
	decode   decodeFunc // decodes and checks its value
}

// mapping decodes the mapping n at path: each key must be one of fields,
// at most once, and every required field must be present.
func (d *decoder) mapping(path string, n *yaml.Node, fields []field) {
	if n.Kind != yaml.MappingNode {
		d.addAt(n.Line, path, "want a mapping of settings, got %s", describe(n))
		return
	}
	seen := make(map[string]int) // key -> line
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.addAt(k.Line, path, "want a setting name, got %s", describe(k))
			continue
		}
		f, ok := lookup(fields, k.Value)
		if !ok {
			d.addAt(k.Line, path, "unknown field %s%s", quote(k.Value), suggest(k.Value, fields))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.addAt(k.Line, path, "field %q is already set at line %d", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		p := join(path, k.Value)
		d.lines[p] = k.Line
		f.decode(d, p, v)
	}
	for _, f := range fields {
		if _, ok := seen[f.key]; f.required && !ok {
			d.addAt(n.Line, path, "missing required field %q", f.key)
		}
	}
}

// list decodes the list n at path, calling item for each element with the
// element's path, such as "upstreams[0]".
func (d *decoder) list(path string, n *yaml.Node, item func(path string, n *yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		d.addAt(n.Line, path, "want a list, got %s", describe(n))
		return
	}
	for i, e := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = e.Line
		item(p, resolve(e))
	}
}

// scalar returns the text of the scalar n; "" for null. want describes
// what was expected, for the problem reported when n is not a scalar.
func (d *decoder) scalar(path string, n *yaml.Node, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.addAt(n.Line, path, "want %s, got %s", want, describe(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// section decodes a nested mapping, skipping it when its value is null (a
// key with nothing after it), as if the file had left it out.
func section(decode decodeFunc) decodeFunc {
	return func(d *decoder, path string, n *yaml.Node) {
		if isNull(n) {
			return
		}
		decode(d, path, n)
	}
}

// text decodes any scalar as a string, null as "".
func text(p *string) decodeFunc {
	return func(d *decoder, path string, n *yaml.Node) {
		if s, ok := d.scalar(path, n, "a string"); ok {
			*p = s
		}
	}
}

// nonEmpty decodes a string that must not be empty.
func nonEmpty(p *string) decodeFunc {
	return func(d *decoder, path string, n *yaml.Node) {
		s, ok := d.scalar(path, n, "a string")
		switch {
		case !ok:
		case s == "":
			d.addAt(n.Line, path, "must not be empty")
		default:
			*p = s
		}
	}
}

// address decodes a host:port to listen on, such as "127.0.0.1:5050" or
// ":5050".
func address(p *string) decodeFunc {
	return func(d *decoder, path string, n *yaml.Node) {
		s, ok := d.scalar(path, n, "a host:port")
		if !ok {
			return
		}
		if err := checkAddress(s); err != nil {
			d.addAt(n.Line, path, "%v", err)
			return
		}
		*p = s
	}
}

func checkAddress(s string) error {
	const want = `want host:port such as "127.0.0.1:5050" or ":5050"`
	if s == "" {
		return fmt.Errorf("must not be empty (%s)", want)
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%s is not a host:port (%s)", quote(s), want)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %s is not a number from 0 to 65535", quote(port))
	}
	return nil
}

// endpoint decodes an upstream endpoint URL.
func endpoint(p **url.URL) decodeFunc {
	return func(d *decoder, path string, n *yaml.Node) {
		s, ok := d.scalar(path, n, "a URL")
		if !ok {
			return
		}
		u, err := parseEndpoint(s)
		if err != nil {
			d.addAt(n.Line, path, "%v", err)
			return
		}
		*p = u
	}
}

// flag decodes true or false.
func flag(p *bool) decodeFunc {
	return func(d *decoder, path string, n *yaml.Node) {
		const want = "true or false"
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.addAt(n.Line, path, "want %s, got %s", want, describe(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.addAt(n.Line, path, "want %s, got %s", want, describe(n))
			return
		}
		*p = b
	}
}

// duration decodes a duration that must not be negative.
func duration(p *time.Duration) decodeFunc {
	return durationAtLeast(p, 0, "must not be negative")
}

// positiveDuration decodes a duration that must be greater than 0.
func positiveDuration(p *time.Duration) decodeFunc {
	return durationAtLeast(p, 1, "must be greater than 0")
}

func durationAtLeast(p *time.Duration, least time.Duration, tooSmall string) decodeFunc {
	return func(d *decoder, path string, n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || isNull(n) {
			d.addAt(n.Line, path, "want a duration such as \"30s\", got %s", describe(n))
			return
		}
		v, err := parseDuration(n.Value)
		if err != nil {
			d.addAt(n.Line, path, "%v", err)
			return
		}
		if v < least {
			d.addAt(n.Line, path, "%s, got %s", tooSmall, quote(n.Value))
			return
		}
		*p = v
	}
}

// atLeast decodes a whole number no smaller than least.
func atLeast[T int | int64](p *T, least T) decodeFunc {
	return func(d *decoder, path string, n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.addAt(n.Line, path, "want a whole number, got %s", describe(n))
			return
		}
		var v T
		if err := n.Decode(&v); err != nil {
			d.addAt(n.Line, path, "%s is out of range", quote(n.Value))
			return
		}
		if v < least {
			d.addAt(n.Line, path, "must be at least %d, got %s", least, quote(n.Value))
			return
		}
		*p = v
	}
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

// suggest returns ` (did you mean "x"?)` when key looks like a misspelling
// of the field x, else "".
func suggest(key string, fields []field) string {
	best, bestDist := "", 3 // suggest only within 2 edits
	for _, f := range fields {
		dist := editDistance(strings.ToLower(key), strings.ToLower(f.key))
		if dist < bestDist {
			best, bestDist = f.key, dist
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
		return max(len(a), len(b)) // long keys are never near a field name
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
