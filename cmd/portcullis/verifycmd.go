package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/oci"
)

func newVerifyCmd() *cobra.Command {
	var configPath, output string
	cmd := &cobra.Command{
		Use:   "verify --config FILE IMAGE...",
		Short: "Run the gate on images without serving: exit 0 if all are allowed, 1 if any is denied, 2 on errors",
		Long: `verify resolves each IMAGE through the configured upstreams and decides on it
exactly as the proxy would. IMAGE is named as clients name it through the proxy
(registry.example/acme/app:v1, or @sha256:...); a name without a registry means
defaultRegistry.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageError(fmt.Errorf("--output %q: want text or json", output))
			}
			return runVerify(cmd.Context(), cmd.OutOrStdout(), configPath, output, args)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "path of the YAML config file (required)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// verifyResult is one image's line of `portcullis verify` output.
type verifyResult struct {
	Image    string               `json:"image"`
	Digest   string               `json:"digest,omitempty"`
	Decision string               `json:"decision"` // allow, deny, error
	Cause    string               `json:"cause,omitempty"`
	Reason   string               `json:"reason,omitempty"`
	Message  string               `json:"message"`
	Identity string               `json:"identity,omitempty"`
	Revision string               `json:"revision,omitempty"`
	Failures []gate.FailureDetail `json:"failures,omitempty"`
	Warnings []string             `json:"warnings,omitempty"`
}

func runVerify(ctx context.Context, out io.Writer, configPath, output string, images []string) error {
	cfg, err := config.Load(configPath)
	if err != nil {
		return usageError(err)
	}
	if cfg.PolicyFile == "" {
		return usageError(fmt.Errorf("%s: no policyFile: nothing to verify against", cfg.Path))
	}
	// verify reads signatures from the upstream and stores nothing: the
	// content store belongs to the serving proxy (which holds its lock).
	cfg.Cache = nil
	w, err := wire(cfg, &gate.Loader{}, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer w.close()
	results := make([]verifyResult, 0, len(images))
	code := 0
	for _, img := range images {
		r := verifyOne(ctx, w, cfg, img)
		switch {
		case r.Decision == "error":
			code = 2
		case r.Decision == "deny" && code == 0:
			code = 1
		}
		results = append(results, r)
	}
	if err := printResults(out, output, results); err != nil {
		return err
	}
	switch code {
	case 1:
		return &exitError{code: 1, err: errDenied}
	case 2:
		return &exitError{code: 2, err: errors.New("some images could not be decided")}
	}
	return nil
}

func verifyOne(ctx context.Context, w *wiring, cfg *config.Config, image string) verifyResult {
	r := verifyResult{Image: image, Decision: "error"}
	req, err := w.manifestRequest(ctx, image, cfg.DefaultRegistry)
	if err != nil {
		r.Message = err.Error()
		return r
	}
	r.Digest = req.Digest.String()
	v, err := w.gate.Manifest(ctx, req)
	if err != nil {
		r.Message = fmt.Sprintf("no decision: %v", err)
		return r
	}
	r.Decision, r.Cause, r.Message = v.Decision.String(), string(v.Cause), v.Message()
	r.Identity, r.Revision, r.Failures = v.Identity, v.Revision, v.Detail()
	if v.Cause == gate.CausePolicy {
		r.Reason = v.Outcome.Reason.String()
	}
	for _, w := range v.Outcome.Warnings() {
		r.Warnings = append(r.Warnings, fmt.Sprintf("policy %q (warn mode): %s", w.Policy, strings.Join(w.Reasons, "; ")))
	}
	return r
}

// manifestRequest resolves image (as clients name it through the proxy)
// through the upstreams into what the gate decides on, as the proxy would.
func (w *wiring) manifestRequest(ctx context.Context, image, defaultRegistry string) (*gate.ManifestRequest, error) {
	repo, ref, err := oci.ParseImage(image, defaultRegistry, w.up.Has)
	if err != nil {
		return nil, err
	}
	var m *oci.Manifest
	if w.cached != nil { // the content store first: its tags and manifests serve while the upstream is down
		m, err = w.cached.ManifestFor(ctx, repo, ref, oci.ManifestTypes)
	} else {
		m, err = w.up.Manifest(ctx, repo, ref)
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", image, err)
	}
	return &gate.ManifestRequest{Repo: repo, Reference: ref, Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes}, nil
}

func printResults(out io.Writer, format string, results []verifyResult) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	for _, r := range results {
		fmt.Fprintf(out, "%-5s %s\n", strings.ToUpper(r.Decision), r.Message)
		if r.Identity != "" {
			fmt.Fprintf(out, "      signed by: %s\n", r.Identity)
		}
		for _, w := range r.Warnings {
			fmt.Fprintf(out, "      warning: %s\n", w)
		}
		if r.Decision == "deny" {
			for _, f := range r.Failures {
				fmt.Fprintf(out, "      policy %q (%s):\n", f.Policy, f.Mode)
				for _, why := range f.Reasons {
					fmt.Fprintf(out, "        - %s\n", why)
				}
			}
		}
	}
	return nil
}

// errDenied is the error of a verify run that denied an image (exit 1).
var errDenied = errors.New("at least one image was denied")
