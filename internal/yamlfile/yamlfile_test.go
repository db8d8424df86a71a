package yamlfile

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// settings is a small schema for the tests.
type settings struct {
	name  string
	on    bool
	count int
	items []string
}

func decode(t *testing.T, src string, maxNodes, maxProblems int) (*settings, []string) {
	t.Helper()
	r := NewReport("f.yaml", maxProblems)
	s := &settings{}
	if root := TopLevel([]byte(src), r, Format{Name: "test file", Needs: `a "name"`, TopLevel: "a mapping"}); root != nil {
		NewDecoder(r, maxNodes).Mapping("", root, []Field{
			{Key: "name", Required: true, Decode: NonEmpty(&s.name)},
			{Key: "on", Decode: Bool(&s.on)},
			{Key: "count", Decode: IntAtLeast(&s.count, 1)},
			{Key: "items", Decode: func(d *Decoder, path string, n *yaml.Node) {
				d.List(path, n, func(path string, n *yaml.Node) {
					var v string
					Text(&v)(d, path, n)
					s.items = append(s.items, v)
				})
			}},
		})
	}
	var problems []string
	for _, p := range r.Problems() {
		problems = append(problems, p.String())
	}
	return s, problems
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"good", "name: &x n\non: true\ncount: 2\nitems: [a, *x, ~]\n", nil},
		{"empty", "", []string{`f.yaml: file is empty; it needs at least a "name"`}},
		{"null", "~\n", []string{`f.yaml: file is empty; it needs at least a "name"`}},
		{"not a mapping", "- a\n", []string{`f.yaml:1: want a mapping, got a list`}},
		{"syntax", "name: [\n", []string{`f.yaml:1: invalid YAML: did not find expected node content`}},
		{"second document", "name: n\n---\n\nname: m\n", []string{`f.yaml:2: found a second YAML document; a test file holds one`}},
		{"problems sorted by line", "count: 0\non: yes\nnamee: n\nname: \"\"\nname: n\n", []string{
			`f.yaml:1: count: must be at least 1, got "0"`,
			`f.yaml:2: on: want true or false, got "yes"`,
			`f.yaml:3: unknown field "namee" (did you mean "name"?)`,
			`f.yaml:4: name: must not be empty`,
			`f.yaml:5: field "name" is already set at line 4`,
		}},
		{"required", "on: false\n", []string{`f.yaml:1: missing required field "name"`}},
		{"types", "name: {a: 1}\ncount: \"3\"\nitems: x\n", []string{
			`f.yaml:1: name: want a string, got a mapping`,
			`f.yaml:2: count: want a whole number, got the quoted string "3"`,
			`f.yaml:3: items: want a list, got "x"`,
		}},
		{"out of range", "name: n\ncount: 9223372036854775808\n", []string{`f.yaml:2: count: "9223372036854775808" is out of range`}},
		{"null list", "name: n\nitems:\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got := decode(t, tc.src, 0, 0)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	s, _ := decode(t, "name: &x n\non: true\ncount: 2\nitems: [a, *x, ~]\n", 0, 0)
	if s.name != "n" || !s.on || s.count != 2 || strings.Join(s.items, ",") != "a,n," {
		t.Errorf("decoded %+v", s)
	}
}

func TestLimits(t *testing.T) {
	src := "name: n\nitems: [" + strings.Repeat("[], ", 9) + "[]]\n"
	_, got := decode(t, src, 0, 0)
	if len(got) != 10 {
		t.Fatalf("without limits got %d problems, want 10", len(got))
	}
	for _, tc := range []struct {
		maxNodes, maxProblems int
		last                  string
	}{
		{4, 0, `f.yaml:2: file is too complex: its aliases expand to more than 4 settings`},
		{0, 3, `f.yaml: 7 more problems not shown`},
	} {
		_, got = decode(t, src, tc.maxNodes, tc.maxProblems)
		want := []string{
			`f.yaml:2: items[0]: want a string, got a list`,
			`f.yaml:2: items[1]: want a string, got a list`,
			`f.yaml:2: items[2]: want a string, got a list`,
			tc.last,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("limits %d, %d: got:\n%s\nwant:\n%s", tc.maxNodes, tc.maxProblems, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func TestSecondDocumentAtContent(t *testing.T) {
	r := NewReport("f.yaml", 0)
	TopLevel([]byte("a: 1\n---\n\nb: 2\n"), r, Format{Name: "test file", SecondDocumentAtContent: true})
	if p := r.Problems(); len(p) != 1 || p[0].Line != 4 {
		t.Errorf("problems %v, want one on line 4", p)
	}
}

func TestLine(t *testing.T) {
	r := NewReport("f.yaml", 0)
	d := NewDecoder(r, 0)
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("a:\n  - x\n  - y\n"), &n); err != nil {
		t.Fatal(err)
	}
	d.Mapping("", n.Content[0], []Field{{Key: "a", Decode: func(d *Decoder, path string, n *yaml.Node) {
		d.List(path, n, func(string, *yaml.Node) {})
	}}})
	for path, want := range map[string]int{"a": 1, "a[1]": 3, "a[1].b.c": 3, "b": 0, "": 0} {
		if got := r.Line(path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ s, want string }{
		{"listne", ` (did you mean "listen"?)`},
		{"LISTEN", ` (did you mean "listen"?)`},
		{"upstream", ` (did you mean "upstreams"?)`},
		{"port", ""},
		{strings.Repeat("x", 100), ""},
	} {
		if got := Suggest(tc.s, []string{"listen", "upstreams"}); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func TestDescribeQuote(t *testing.T) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(`[x, "y", ~, {}, []]`), &n); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range n.Content[0].Content {
		got = append(got, Describe(e))
	}
	want := `"x"|the quoted string "y"|nothing|a mapping|a list`
	if strings.Join(got, "|") != want {
		t.Errorf("Describe: %s, want %s", strings.Join(got, "|"), want)
	}
	if q := Quote(strings.Repeat("é", 70)); q != `"`+strings.Repeat("é", 64)+`..."` {
		t.Errorf("Quote = %s", q)
	}
}
