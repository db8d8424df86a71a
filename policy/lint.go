package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Severity says whether a Problem stops a policy file from loading.
type Severity int

const (
	// Error is a problem that makes Load fail.
	Error Severity = iota
	// Warning is something the administrator should know about (an unsafe
	// or network-dependent choice); Load still succeeds.
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Problem is one thing wrong with, or worth knowing about, a policy file.
type Problem struct {
	File string
	// Line is 1-based; 0 when the problem is not on one line (an empty or
	// unreadable file).
	Line int
	// Path is the setting, such as "policies[0].authorities[1].key.path";
	// "" for the file as a whole.
	Path     string
	Message  string
	Severity Severity
}

// String formats p as "FILE:LINE: PATH: MESSAGE", leaving out ":LINE" when
// Line is 0 and "PATH: " when Path is "". A warning reads
// "FILE:LINE: warning: PATH: MESSAGE".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Severity == Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// LoadError is the error of Load and Parse for a policy file with errors.
type LoadError struct {
	// Problems are the errors (never warnings), sorted by line.
	Problems []Problem
}

// Error lists the problems, one per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Lint returns every problem of the policy file at path, errors and
// warnings, sorted by line. Load fails iff one of them is an Error. A file
// that cannot be read is one Error with Line 0.
func Lint(path string) []Problem {
	data, err := os.ReadFile(path)
	if err != nil {
		return []Problem{{File: path, Message: fmt.Sprintf("read policy file: %v", err), Severity: Error}}
	}
	_, problems := build(data, path, filepath.Dir(path))
	return problems
}

// report collects the problems of one policy file, and remembers on which
// line each setting was written so that checks made after decoding can
// still point at it.
type report struct {
	file     string
	problems []Problem
	dropped  int            // problems past maxProblems
	lines    map[string]int // setting path -> line of its key (or list item)
}

// maxProblems bounds how many problems one file reports (aliases can
// repeat one mistake many times).
const maxProblems = 200

func newReport(file string) *report {
	return &report{file: file, lines: make(map[string]int)}
}

func (r *report) addAt(sev Severity, line int, path, format string, args ...any) {
	if len(r.problems) >= maxProblems {
		r.dropped++
		return
	}
	r.problems = append(r.problems, Problem{
		File:     r.file,
		Line:     line,
		Path:     path,
		Message:  fmt.Sprintf(format, args...),
		Severity: sev,
	})
}

// errorAt records an error with the setting at path, found on line.
func (r *report) errorAt(line int, path, format string, args ...any) {
	r.addAt(Error, line, path, format, args...)
}

// errorf records an error with the setting at path, on the line the
// setting was written (or its nearest enclosing setting, when left out).
func (r *report) errorf(path, format string, args ...any) {
	r.addAt(Error, r.line(path), path, format, args...)
}

// warnf is errorf for a warning.
func (r *report) warnf(path, format string, args ...any) {
	r.addAt(Warning, r.line(path), path, format, args...)
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

// parent returns the path enclosing path: "policies[0]" for
// "policies[0].name", "policies" for "policies[0]", "" for "policies".
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
			r.errorAt(line, "", "invalid YAML: %s", m[2])
			return
		}
	}
	r.errorAt(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// sorted returns the problems sorted by line (stable: same-line problems
// keep the order they were found in).
func (r *report) sorted() []Problem {
	slices.SortStableFunc(r.problems, func(a, b Problem) int { return a.Line - b.Line })
	if r.dropped > 0 {
		r.problems = append(r.problems, Problem{File: r.file, Severity: Error,
			Message: fmt.Sprintf("%d more problems not shown", r.dropped)})
		r.dropped = 0
	}
	return r.problems
}

// err returns the errors among problems as a *LoadError; nil if none.
func loadError(problems []Problem) error {
	var errs []Problem
	for _, p := range problems {
		if p.Severity == Error {
			errs = append(errs, p)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &LoadError{Problems: errs}
}
