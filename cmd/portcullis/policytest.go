package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/store"
	"github.com/portcullis-dev/portcullis/verify"
)

func newPolicyTestCmd() *cobra.Command {
	var configPath, candidate, admin string
	cmd := &cobra.Command{
		Use:   "test --config FILE --policy CANDIDATE [IMAGE...]",
		Short: "Evaluate a candidate policy against images (or the recent traffic) beside the policy in force",
		Long: `test decides on each IMAGE twice, under the config's policyFile (today) and
under CANDIDATE, fetching manifests and signatures from the configured
upstreams as the proxy would, and prints a table: image, today's result, the
candidate's, and why the candidate decides as it does when they differ.

Without IMAGE arguments, the images are those of the running proxy's recent
decision record (GET /decisions on --admin URL; the proxy's real traffic),
each by the digest it was served or refused as.

Exit status: 0 when nothing served today would be refused (or left
undecided) by the candidate, 1 when something would, 2 on bad usage or a bad
config or candidate.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && admin == "" {
				return usageError(errors.New("name the images to test, or --admin URL to test the images of the proxy's recent decisions"))
			}
			return runPolicyTest(cmd.Context(), cmd.OutOrStdout(), configPath, candidate, admin, args)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "the proxy's config file (its upstreams and its policyFile, the policy in force) (required)")
	cmd.Flags().StringVar(&candidate, "policy", "", "the candidate policy file (required)")
	cmd.Flags().StringVar(&admin, "admin", "", "URL of the running proxy's admin listener: test the images of its recent decisions")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("policy")
	return cmd
}

// policyTestRow is one image's line of `portcullis policy test`.
type policyTestRow struct {
	image            string
	today, candidate gate.Result
	why              string
}

// regressed reports whether the candidate refuses (or cannot decide) what
// today's policy serves.
func (r policyTestRow) regressed() bool {
	served := r.today == gate.ResultAllow || r.today == gate.ResultWarn
	return served && (r.candidate == gate.ResultDeny || r.candidate == gate.ResultError)
}

func runPolicyTest(ctx context.Context, out io.Writer, configPath, candidate, admin string, images []string) error {
	cfg, err := config.Load(configPath)
	if err != nil {
		return usageError(err)
	}
	if cfg.PolicyFile == "" {
		return usageError(fmt.Errorf("%s: no policyFile: no policy in force to compare with", cfg.Path))
	}
	if admin != "" && len(images) == 0 {
		if images, err = recentImages(ctx, &adminClient{base: strings.TrimRight(admin, "/")}, cfg.DecisionLog.Entries); err != nil {
			return err
		}
		if len(images) == 0 {
			fmt.Fprintln(out, "the proxy has recorded no image decisions yet: nothing to test")
			return nil
		}
	}
	// With a content store that no proxy holds, manifests and signatures
	// come from it when the upstream cannot answer (an air-gapped site
	// tests against what it stored); when the serving proxy holds it, from
	// the upstreams only. Nothing is stored: only the proxy keeps content.
	builder := &gate.Loader{}
	w, err := wire(cfg, builder, zap.NewNop(), prometheus.NewRegistry())
	if errors.Is(err, store.ErrLocked) {
		fmt.Fprintln(out, "note: the content store is held by the running proxy; manifests and signatures come from the upstreams")
		cfg.Cache = nil
		w, err = wire(cfg, builder, zap.NewNop(), prometheus.NewRegistry())
	}
	if err != nil {
		return err
	}
	defer w.close()
	snap, err := builder.Load(candidate)
	if err != nil {
		return usageError(fmt.Errorf("--policy: %w", err))
	}
	cand, err := gate.New(w.reader, snap, gate.WithLimits(verify.Limits{MaxSignatures: cfg.MaxSignatures}),
		gate.WithDecisionTimeout(cfg.DecisionTimeout))
	if err != nil {
		return usageError(fmt.Errorf("--policy: %w", err))
	}
	rows := make([]policyTestRow, 0, len(images))
	regressions := 0
	for _, image := range images {
		row := testImage(ctx, w, cand, cfg.DefaultRegistry, image)
		if row.regressed() {
			regressions++
		}
		rows = append(rows, row)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tTODAY\tCANDIDATE\tWHY")
	for _, r := range rows {
		mark := ""
		if r.regressed() {
			mark = "  <- would be refused"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", r.image, r.today, r.candidate, r.why, mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if regressions > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d images served today would be refused or left undecided under %s", regressions, len(rows), candidate)}
	}
	fmt.Fprintf(out, "nothing served today is refused under %s (%d images)\n", candidate, len(rows))
	return nil
}

// testImage decides on image under today's gate and the candidate.
func testImage(ctx context.Context, w *wiring, cand *gate.Gate, defaultRegistry, image string) policyTestRow {
	row := policyTestRow{image: image, today: gate.ResultError, candidate: gate.ResultError}
	req, err := w.manifestRequest(ctx, image, defaultRegistry)
	if err != nil {
		row.why = err.Error()
		return row
	}
	var todayWhy string
	if v, err := w.gate.Manifest(ctx, req); err != nil {
		todayWhy = "today: no decision: " + err.Error()
	} else {
		row.today, todayWhy = v.Result(), v.Why
	}
	v, err := cand.Manifest(ctx, req)
	switch {
	case err != nil:
		row.why = "no decision: " + err.Error()
	default:
		row.candidate = v.Result()
		if row.candidate != row.today || row.candidate != gate.ResultAllow {
			row.why = v.Why
		}
	}
	if row.today == gate.ResultError && row.why == "" {
		row.why = todayWhy
	}
	return row
}

// recentImages are the distinct images of the proxy's recent decision
// record, each as image@digest, newest first (refused blobs are left out:
// their manifests are what is decided).
func recentImages(ctx context.Context, c *adminClient, limit int64) ([]string, error) {
	var recs []gate.Record
	if err := c.do(ctx, "GET", "/decisions?"+url.Values{"limit": {strconv.FormatInt(max(limit, 1), 10)}}.Encode(), nil, &recs); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range recs {
		if r.Reference == gate.BlobReference || r.Digest == "" {
			continue
		}
		ref := r.Image + "@" + r.Digest
		if !seen[ref] {
			seen[ref] = true
			out = append(out, ref)
		}
	}
	return out, nil
}
