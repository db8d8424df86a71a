// Package yamlfile decodes an administrator's YAML file into settings,
// collecting every problem with its line.
//
// It walks the YAML node tree rather than unmarshalling into structs, so
// that every problem carries the line it is on, a setting the file leaves
// out is told from one it sets to zero, and decoding goes on past a bad
// value to report the next one too. A package using it keeps its own
// schema: tables of [Field]s, each with the [DecodeFunc] that decodes and
// checks its value, and the checks made after decoding, which report
// through the same [Report].
//
// Problems read "FILE:LINE: PATH: MESSAGE" (see [Problem.String]), for
// example:
//
//	config.yaml:3: unknown field "listne" (did you mean "listen"?)
//
// The package is pure, like package policy (whose dependency test covers
// it): it reads no files and does no I/O.
package yamlfile

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Severity says whether a Problem stops a file from loading.
type Severity int

const (
	// Error is a problem that makes loading fail.
	Error Severity = iota
	// Warning is something the administrator should know about (an unsafe
	// or network-dependent choice); loading still succeeds.
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Problem is one thing wrong with, or worth knowing about, a file.
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

// Report collects the problems of one file, and remembers on which line
// each setting was written so that checks made after decoding can still
// point at it.
type Report struct {
	file        string
	maxProblems int // 0: no limit
	problems    []Problem
	dropped     int            // problems past maxProblems
	lines       map[string]int // setting path -> line of its key (or list item)
}

// NewReport returns an empty report on the file named file (as messages
// name it). It keeps at most maxProblems problems, counting the rest, so
// that aliases repeating one mistake cannot flood the reader; maxProblems
// <= 0 means no limit.
func NewReport(file string, maxProblems int) *Report {
	return &Report{file: file, maxProblems: max(maxProblems, 0), lines: make(map[string]int)}
}

func (r *Report) add(sev Severity, line int, path, format string, args ...any) {
	if r.maxProblems > 0 && len(r.problems) >= r.maxProblems {
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

// Add records p as a problem of the report's file (its File is replaced).
func (r *Report) Add(p Problem) {
	r.add(p.Severity, p.Line, p.Path, "%s", p.Message)
}

// ErrorAt records an error with the setting at path, found on line.
func (r *Report) ErrorAt(line int, path, format string, args ...any) {
	r.add(Error, line, path, format, args...)
}

// Errorf records an error with the setting at path, on the line the
// setting was written (or its nearest enclosing setting, when left out).
func (r *Report) Errorf(path, format string, args ...any) {
	r.add(Error, r.Line(path), path, format, args...)
}

// Warnf is Errorf for a warning.
func (r *Report) Warnf(path, format string, args ...any) {
	r.add(Warning, r.Line(path), path, format, args...)
}

// Line returns the line of the setting at path, or of its nearest
// enclosing setting when the file leaves it out; 0 when there is none.
func (r *Report) Line(path string) int {
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
func (r *Report) addYAML(err error) {
	msg := err.Error()
	if m := yamlLineError.FindStringSubmatch(msg); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			r.ErrorAt(line, "", "invalid YAML: %s", m[2])
			return
		}
	}
	r.ErrorAt(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// Problems returns the problems, sorted by line (stable: same-line problems
// keep the order they were found in), then, if the limit of NewReport left
// some out, an Error with Line 0 saying how many.
func (r *Report) Problems() []Problem {
	slices.SortStableFunc(r.problems, func(a, b Problem) int { return a.Line - b.Line })
	if r.dropped == 0 {
		return r.problems
	}
	return append(slices.Clip(r.problems), Problem{File: r.file, Severity: Error,
		Message: fmt.Sprintf("%d more problems not shown", r.dropped)})
}
