package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module's build information.
var version = ""

// versionString is the line `portcullis version` and `--version` print:
// the version, the commit and commit time the Go build info records (`make
// build` passes -buildvcs=true, as GOFLAGS may turn it off), the Go
// version and the platform. It names no build date, so that rebuilding a
// commit gives the same binary.
func versionString() string {
	var settings []debug.BuildSetting
	if bi, ok := debug.ReadBuildInfo(); ok {
		settings = bi.Settings
	}
	return fmt.Sprintf("portcullis %s (%s) %s %s/%s", moduleVersion(), commit(settings),
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// moduleVersion is the version set with -ldflags, else the main module's
// (a tag, or a pseudo-version naming the commit), else "(devel)".
func moduleVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// userAgent is the product token sent upstream: "portcullis/VERSION",
// with "devel" for a build without a version.
func userAgent() string {
	v := moduleVersion()
	if v == "(devel)" {
		v = "devel"
	}
	return "portcullis/" + v
}

// commit describes the VCS settings of a build: "commit 0123456789ab,
// modified, 2026-01-02T03:04:05Z" (modified only for a build from a tree
// with uncommitted changes), or "commit unknown".
func commit(settings []debug.BuildSetting) string {
	var rev, at, modified string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "commit unknown"
	}
	out := "commit " + rev[:min(len(rev), 12)]
	if modified == "true" {
		out += ", modified"
	}
	if at != "" {
		out += ", " + at
	}
	return out
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit it was built from, and the Go version (as --version does)",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
		},
	}
}
