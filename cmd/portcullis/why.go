package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/oci"
)

// defaultAdmin is the admin listener `why` asks when neither --admin nor
// --config says where it is (the config's default adminListen).
const defaultAdmin = "http://127.0.0.1:9090"

func newWhyCmd() *cobra.Command {
	var admin, configPath string
	cmd := &cobra.Command{
		Use:   "why IMAGE",
		Short: "Say why the running proxy served or refused an image (its latest recorded decision)",
		Long: `why asks the running proxy's admin listener for its latest recorded
decision about IMAGE (registry/repository[:tag|@digest]) and prints it in
plain words: the result, the policy, every reason, who passed, when, for
which client, and how long a denial stays cached.

containerd resolves tags with HEAD, whose errors have no body, so kubelet
and ctr show only "403 Forbidden": this is where the reason is.

The admin listener is --admin, else the adminListen of --config FILE, else
` + defaultAdmin + `.

Exit status: 0 served (allowed, or with warn-mode violations), 1 refused,
not decided (503), or no decision recorded, 2 usage or config error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, defaultRegistry, err := whyAdmin(admin, configPath)
			if err != nil {
				return err
			}
			return runWhy(cmd.Context(), cmd.OutOrStdout(), &adminClient{base: base}, args[0], defaultRegistry, time.Now())
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "", "URL of the running proxy's admin listener (default: adminListen of --config, else "+defaultAdmin+")")
	cmd.Flags().StringVar(&configPath, "config", "", "the proxy's config file (for its adminListen and default registry)")
	return cmd
}

// whyAdmin is the admin listener's URL and the default registry of short
// names.
func whyAdmin(admin, configPath string) (string, string, error) {
	defaultRegistry := oci.DockerHub
	if configPath != "" {
		cfg, err := config.Load(configPath)
		if err != nil {
			return "", "", usageError(err)
		}
		if cfg.DefaultRegistry != "" {
			defaultRegistry = cfg.DefaultRegistry
		}
		if admin == "" {
			admin = "http://" + cfg.AdminListen
		}
	}
	if admin == "" {
		admin = defaultAdmin
	}
	return strings.TrimRight(admin, "/"), defaultRegistry, nil
}

// errNoDecision is why's answer when nothing about the image is recorded.
var errNoDecision = errors.New("no decision recorded")

// runWhy prints the latest decision about image and exits 1 unless it
// served the image.
func runWhy(ctx context.Context, out io.Writer, c *adminClient, image, defaultRegistry string, now time.Time) error {
	repo, ref, err := oci.ParseImage(image, defaultRegistry, func(string) bool { return false })
	if err != nil {
		return usageError(err)
	}
	q := url.Values{"image": {repo.String()}}
	explicit := strings.Contains(image, "@") || strings.LastIndex(image, ":") > strings.LastIndex(image, "/")
	if explicit && oci.IsDigest(ref) {
		q.Set("digest", ref)
	}
	var recs []gate.Record
	if err := c.do(ctx, "GET", "/decisions?"+q.Encode(), nil, &recs); err != nil {
		return err
	}
	r := latestFor(recs, ref, explicit)
	if r == nil {
		what := repo.String()
		if explicit {
			what = image
		}
		return &exitError{code: 1, err: fmt.Errorf("%w for %s: it was not pulled through this proxy since it started, or the record is older than its last decisionLog.entries decisions", errNoDecision, what)}
	}
	printRecord(out, r, now)
	if r.Result == gate.ResultDeny || r.Result == gate.ResultError {
		return &exitError{code: 1, err: fmt.Errorf("%s@%s was not served", r.Image, r.Digest)}
	}
	return nil
}

// latestFor is the newest record (recs come newest first) for ref: the
// newest decision about a manifest when the image named no tag or digest
// (a refused blob only if there is none), else one asked for by that
// reference or about that digest.
func latestFor(recs []gate.Record, ref string, explicit bool) *gate.Record {
	var blob *gate.Record
	for i := range recs {
		r := &recs[i]
		switch {
		case explicit && r.Reference != ref && r.Digest != ref:
		case r.Reference == gate.BlobReference && !explicit:
			if blob == nil {
				blob = r
			}
		default:
			return r
		}
	}
	return blob
}

// printRecord writes a record in plain words.
func printRecord(out io.Writer, r *gate.Record, now time.Time) {
	verb := map[gate.Result]string{
		gate.ResultAllow: "ALLOWED",
		gate.ResultWarn:  "SERVED WITH WARNINGS",
		gate.ResultDeny:  "REFUSED",
		gate.ResultError: "NOT DECIDED (503)",
	}[r.Result]
	asked := ""
	if r.Reference != "" && r.Reference != r.Digest {
		asked = " (asked for as " + r.Reference + ")"
	}
	fmt.Fprintf(out, "%s@%s%s: %s\n", r.Image, r.Digest, asked, verb)
	fmt.Fprintf(out, "  when:     %s (%s ago)\n", r.Time.UTC().Format(time.RFC3339), now.Sub(r.Time).Round(time.Second))
	if r.Client != "" {
		fmt.Fprintf(out, "  client:   %s (request %s)\n", r.Client, r.RequestID)
	}
	if r.Policy != "" {
		fmt.Fprintf(out, "  policy:   %s\n", r.Policy)
	}
	fmt.Fprintf(out, "  why:      %s\n", strings.TrimPrefix(r.Message, r.Image+"@"+r.Digest+" "))
	for _, v := range r.Violations {
		fmt.Fprintf(out, "  policy %q (%s) failed:\n", v.Policy, v.Mode)
		for _, reason := range v.Reasons {
			fmt.Fprintf(out, "    - %s\n", reason)
		}
	}
	if r.Identity != "" {
		fmt.Fprintf(out, "  passed:   %s\n", r.Identity)
	}
	if !r.CachedUntil.IsZero() {
		if left := r.CachedUntil.Sub(now); left > 0 {
			fmt.Fprintf(out, "  cached:   for %s more; then decided again (SIGHUP, or POST /cache/verdicts/purge, drops it now)\n", left.Round(time.Second))
		} else {
			fmt.Fprintf(out, "  cached:   no longer; the next pull decides again\n")
		}
	}
}
