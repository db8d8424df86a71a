package policy

import (
	"io/fs"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
)

// Severity says whether a Problem stops a policy file from loading.
type Severity = yamlfile.Severity

const (
	// Error is a problem that makes Parse fail.
	Error = yamlfile.Error
	// Warning is something the administrator should know about (an unsafe
	// or network-dependent choice); Parse still succeeds.
	Warning = yamlfile.Warning
)

// Problem is one thing wrong with, or worth knowing about, a policy file.
// Its String method formats it as "FILE:LINE: PATH: MESSAGE", a warning
// as "FILE:LINE: warning: PATH: MESSAGE".
type Problem = yamlfile.Problem

// LoadError is the error of Parse for a policy file with errors.
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

// Lint returns every problem of a policy file, errors and warnings, sorted
// by line; data, filename, files and checks are as for [Parse], which
// fails iff one of them is an Error.
func Lint(data []byte, filename string, files fs.FS, checks ...Check) []Problem {
	_, problems := build(data, filename, files, checks)
	return problems
}

// A Check is a rule of the caller's over a policy, one that needs what
// this package does not know (such as which registries the proxy reads).
// [Parse] and [Lint] run it over the policy as compiled, even when the file
// has other errors (a key missing here hides nothing), and add the
// problems it returns to the file's: it sets their Line and Path (from
// [Authority.Line] and [Authority.Path], say); their File is the policy's.
// It must only read the Policy.
type Check func(*Policy) []Problem

// maxProblems bounds how many problems one file reports (aliases can
// repeat one mistake many times).
const maxProblems = 200

// loadError returns the errors among problems as a *LoadError; nil if none.
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
