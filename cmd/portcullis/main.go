// Command portcullis is a pull-through OCI registry mirror that serves only
// what its gate allows. Run `portcullis --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/portcullis-dev/portcullis/upstream"
)

// exitError carries a process exit code with its error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks bad input: a bad flag, a bad config (exit 2).
func usageError(err error) error { return &exitError{code: 2, err: err} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	upstream.UserAgent = userAgent()
	code := runCLI(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runCLI runs the command line args (without the program name) and returns
// its exit status, the same for every command, in the style of crane and
// cosign: 0 success (or allowed), 1 denied or refused (or lint errors), 2
// bad usage or a bad config.
func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "portcullis:", strings.TrimRight(err.Error(), "\n"))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// newRootCmd is the command tree, under the conventions of [conventions].
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "portcullis",
		Short:         "A registry mirror that refuses images whose signatures do not satisfy policy",
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n") // --version prints what `version` prints
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.AddCommand(newServeCmd(), newVerifyCmd(), newPolicyCmd(), newCacheCmd(), newWhyCmd(), newDemoCmd(), newVersionCmd())
	root.AddCommand(newConfigCmd(), newTrustCmd())
	// Added now rather than by Execute, so that conventions covers them.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	conventions(root)
	return root
}

// conventions gives c and every command under it the exit statuses of
// [runCLI]: a wrong number of arguments, an unknown subcommand and a missing
// required flag are usage errors (exit 2; cobra's own are plain errors, so
// exit 1), and an unknown subcommand gets the names nearest to it. A
// command that only holds subcommands prints its help when given none
// (exit 0), as crane does.
func conventions(c *cobra.Command) {
	switch {
	case c.HasSubCommands() && !c.Runnable():
		c.SuggestionsMinimumDistance = 2
		c.Args = subcommandArgs
		// Never reached (subcommandArgs returns ErrHelp or an error), but a
		// command must run something for cobra to check its arguments.
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	case c.Args != nil:
		validate := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := validate(cmd, args); err != nil {
				return usageError(err)
			}
			return nil
		}
	}
	if c.Runnable() {
		preE, pre := c.PreRunE, c.PreRun
		// Checked here, before cobra checks them with plain errors.
		c.PreRunE = func(cmd *cobra.Command, args []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return usageError(err)
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				return usageError(err)
			}
			if preE != nil {
				return preE(cmd, args)
			}
			if pre != nil {
				pre(cmd, args)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		conventions(sub)
	}
}

// subcommandArgs checks the arguments of a command that only holds
// subcommands: none asks for its help; a first one that names no
// subcommand is a usage error suggesting those that come close.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return pflag.ErrHelp
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return usageError(errors.New(msg))
}
