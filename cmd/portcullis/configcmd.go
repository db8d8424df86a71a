package main

import (
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/policy"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with config files"}
	var strict bool
	lint := &cobra.Command{
		Use:   "lint FILE... [--strict]",
		Short: "Check config files and the policies they name, offline; exit 1 if any problem is an error",
		Long: `lint reports every problem of each config FILE, and of the policy file it
names, with its line: what would stop "portcullis serve --config FILE" from
starting. It starts nothing and uses no network.

A file the config or its policy names (TLS certificates and keys, password
files, CA bundles, trusted roots, public keys) that does not exist here, or
that this user may not read, is a warning, as it may exist only where
Portcullis runs; with --strict it is an error.

Exit status: 0 when no problem is an error (warnings are printed), 1 when one
is (a file that cannot be read included), 2 on bad usage.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lintFiles(cmd.OutOrStdout(), args, func(path string) []policy.Problem {
				return lintConfig(path, strict)
			})
		},
	}
	lint.Flags().BoolVar(&strict, "strict", false, "a named file that is missing or unreadable here is an error, not a warning")
	cmd.AddCommand(lint)
	return cmd
}

// lintConfig returns the problems of the config file at path, then those
// of the policy file it names. Unless strict, a file the policy names that
// is missing or unreadable here is a warning, as config.Lint makes the
// config's.
func lintConfig(path string, strict bool) []policy.Problem {
	cfg, problems := config.Lint(path, strict)
	if cfg == nil || cfg.PolicyFile == "" || !isRegular(cfg.PolicyFile) {
		return problems // a missing policy file is among problems
	}
	for _, p := range policyfile.Lint(cfg.PolicyFile, gate.SourceCheck(configured(cfg))) {
		if !strict && p.Severity == policy.Error && isAbsentFile(p) {
			p.Severity = policy.Warning
			p.Message += " (not checked here: it must be readable where portcullis runs)"
		}
		problems = append(problems, p)
	}
	return problems
}

// configured reports whether a registry is among cfg's upstreams.
func configured(cfg *config.Config) func(registry string) bool {
	return func(registry string) bool {
		return slices.ContainsFunc(cfg.Upstreams, func(u config.Upstream) bool {
			return oci.NormalizeRegistry(u.Registry) == oci.NormalizeRegistry(registry)
		})
	}
}

// isAbsentFile reports whether p is package policy's problem with a named
// file that does not exist or that this user may not read: `cannot read
// "NAME": ERRNO` (policy/files.go).
func isAbsentFile(p policy.Problem) bool {
	if !strings.HasPrefix(p.Message, "cannot read ") {
		return false
	}
	for _, errno := range []syscall.Errno{syscall.ENOENT, syscall.EACCES} {
		if strings.HasSuffix(p.Message, ": "+errno.Error()) {
			return true
		}
	}
	return false
}
