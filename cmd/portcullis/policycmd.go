package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/policyfile"
	"github.com/portcullis-dev/portcullis/policy"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Work with policy files"}
	cmd.AddCommand(&cobra.Command{
		Use:   "lint FILE",
		Short: "Report every problem of a policy file, with its line; exit 1 if any is an error",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			problems := policyfile.Lint(args[0])
			errs := 0
			for _, p := range problems {
				fmt.Fprintln(cmd.OutOrStdout(), p.String())
				if p.Severity == policy.Error {
					errs++
				}
			}
			if errs > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%s: %d error(s)", args[0], errs)}
			}
			if len(problems) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			}
			return nil
		},
	})
	return cmd
}
