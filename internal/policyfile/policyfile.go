// Package policyfile loads a policy file from disk, for callers that have
// its path: package policy reads no files itself, so this is where the
// policy and the files it names (keys, trusted roots, TUF roots) meet the
// operating system.
//
// The files a policy names are read through os.DirFS("/"), with the policy
// file at its absolute path: a relative name is relative to the policy
// file's directory, and an absolute name is the path on disk. Problems name
// the policy file by its absolute path. (Unix paths only: on Windows an
// absolute name has a volume that an fs.FS name cannot hold.)
package policyfile

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/portcullis-dev/portcullis/policy"
)

// Load reads the policy file at path and compiles it with [policy.Parse],
// with checks.
// The Policy's TUF cache directories are paths on disk. A file that cannot
// be read gives an error wrapping the os error; a file with errors gives a
// *policy.LoadError.
func Load(path string, checks ...policy.Check) (*policy.Policy, error) {
	name, data, err := read(path)
	if err != nil {
		return nil, err
	}
	p, err := policy.Parse(data, name, root, checks...)
	if err != nil {
		return nil, err
	}
	for _, tr := range p.TrustRoots {
		if tr.TUF != nil && tr.TUF.CacheDir != "" {
			tr.TUF.CacheDir = filepath.FromSlash("/" + tr.TUF.CacheDir)
		}
	}
	return p, nil
}

// Lint returns every problem of the policy file at path, as [policy.Lint]
// with checks; a file that cannot be read is one Error with Line 0.
func Lint(path string, checks ...policy.Check) []policy.Problem {
	name, data, err := read(path)
	if err != nil {
		return []policy.Problem{{File: path, Message: err.Error(), Severity: policy.Error}}
	}
	return policy.Lint(data, name, root, checks...)
}

// root is the disk, as the files a policy names are read from.
var root = os.DirFS("/")

// read reads the regular file at path, returning its absolute path in
// fs.FS syntax and rooted at "/", as policy.Parse takes it with root. It
// checks the kind of file before reading it, as opening a named pipe would
// block.
func read(path string) (string, []byte, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	data, err := readRegular(abs)
	if err != nil {
		return "", nil, fmt.Errorf("read policy file: %w", err)
	}
	return filepath.ToSlash(abs), data, nil
}

func readRegular(p string) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return os.ReadFile(p)
}
