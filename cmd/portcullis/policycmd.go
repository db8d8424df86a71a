package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/policy"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Work with policy files"}
	cmd.AddCommand(&cobra.Command{
		Use:   "lint FILE...",
		Short: "Report every problem of policy files, with its line; exit 1 if any is an error",
		Long: `lint reports every problem of each policy FILE, errors and warnings, with its
line, and "FILE: ok" for a file with none. The files the policy names (keys,
trusted roots) are read; nothing is fetched.

Exit status: 0 when no problem is an error, 1 when one is (a file that cannot
be read, or a config file given for a policy, included), 2 on bad usage.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lintFiles(cmd.OutOrStdout(), args, lintPolicy)
		},
	})
	cmd.AddCommand(newPolicyTestCmd())
	return cmd
}

// lintPolicy returns the problems of the policy file at path, or the one
// problem that it is a config file.
func lintPolicy(path string) []policy.Problem {
	if looksLikeConfig(path) {
		return []policy.Problem{{File: path, Severity: policy.Error, Message: fmt.Sprintf(
			"looks like a Portcullis config file, not a policy file: use `portcullis config lint %s`", path)}}
	}
	return policyfile.Lint(path)
}

// looksLikeConfig reports whether path is a YAML mapping all of whose
// top-level keys are config settings ("listen", "upstreams", ...: none of
// them is a policy's).
func looksLikeConfig(path string) bool {
	if !isRegular(path) {
		return false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var top map[string]any
	if yaml.Unmarshal(data, &top) != nil || len(top) == 0 {
		return false
	}
	keys := config.Keys()
	for k := range top {
		if !slices.Contains(keys, k) {
			return false
		}
	}
	return true
}

// isRegular reports whether path is a regular file (opening a named pipe
// would block).
func isRegular(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// lintFiles prints the problems lint finds in each file, or "FILE: ok" for
// a file with none, and returns an exit-1 error naming the files with
// errors (warnings alone pass).
func lintFiles(out io.Writer, files []string, lint func(string) []policy.Problem) error {
	var failed []string
	for _, f := range files {
		problems := lint(f)
		errs := 0
		for _, p := range problems {
			fmt.Fprintln(out, p.String())
			if p.Severity == policy.Error {
				errs++
			}
		}
		switch {
		case errs > 0:
			failed = append(failed, fmt.Sprintf("%s: %d error(s)", f, errs))
		case len(problems) == 0:
			fmt.Fprintf(out, "%s: ok\n", f)
		}
	}
	if len(failed) > 0 {
		return &exitError{code: 1, err: errors.New(strings.Join(failed, "; "))}
	}
	return nil
}
