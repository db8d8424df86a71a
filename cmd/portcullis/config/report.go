package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// problem is one thing wrong with a config file.
type problem struct {
	file string
	line int    // 1-based; 0 when the problem is not on one line
	path string // field path such as "upstreams[0].endpoint"; "" for the top level
	msg  string
}

// Error formats p as "FILE:LINE: PATH: MSG", leaving out LINE when it is 0
// and PATH when it is "".
func (p *problem) Error() string {
	var b strings.Builder
	b.WriteString(p.file)
	if p.line > 0 {
		fmt.Fprintf(&b, ":%d", p.line)
	}
	b.WriteString(": ")
	if p.path != "" {
		b.WriteString(p.path)
		b.WriteString(": ")
	}
	b.WriteString(p.msg)
	return b.String()
}

// report collects the problems of one config file, and remembers on which
// line each setting was written so that checks made after decoding can
// still point at it.
type report struct {
	file     string
	problems []*problem
	lines    map[string]int // field path -> line of its key (or list item)
}

func newReport(file string) *report {
	return &report{file: file, lines: make(map[string]int)}
}

// addAt records a problem with the setting at path, found on line.
func (r *report) addAt(line int, path, format string, args ...any) {
	r.problems = append(r.problems, &problem{
		file: r.file,
		line: line,
		path: path,
		msg:  fmt.Sprintf(format, args...),
	})
}

// add records a problem with the setting at path, on the line the setting
// was written; for a setting the file leaves out, on the line of the
// nearest enclosing setting that it has.
func (r *report) add(path, format string, args ...any) {
	r.addAt(r.line(path), path, format, args...)
}

// line returns the line of the setting at path, or of its nearest
// enclosing setting when the file leaves it out.
func (r *report) line(path string) int {
	for {
		if n, ok := r.lines[path]; ok {
			return n
		}
		if path == "" {
			return 0
		}
		path = parent(path)
	}
}

// parent returns the path enclosing path: "upstreams[0]" for
// "upstreams[0].auth", "upstreams" for "upstreams[0]", "" for "upstreams".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// yamlLineError matches the syntax errors of go.yaml.in/yaml/v3.
var yamlLineError = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// addYAML records a YAML syntax error, moving its line number (if any) to
// where the other problems have theirs.
func (r *report) addYAML(err error) {
	msg := err.Error()
	if m := yamlLineError.FindStringSubmatch(msg); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			r.addAt(line, "", "invalid YAML: %s", m[2])
			return
		}
	}
	r.addAt(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// err returns every problem, sorted by line, joined into one error; nil
// when there are none.
func (r *report) err() error {
	if len(r.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(r.problems, func(a, b *problem) int { return a.line - b.line })
	errs := make([]error, len(r.problems))
	for i, p := range r.problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}
