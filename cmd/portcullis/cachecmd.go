package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/store"
)

// The cache subcommands work on the content store of a config (cache.dir):
// directly, when no proxy holds it, or through the running proxy's admin
// listener with --admin URL. Without --admin, a store held by a running
// proxy is an error that names the holder.

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cache", Short: "Work with the content store (cache.dir): warm, ls, prune, verify"}
	var configPath, admin string
	persistent := cmd.PersistentFlags()
	persistent.StringVar(&configPath, "config", "", "path of the YAML config file (required)")
	persistent.StringVar(&admin, "admin", "", "URL of the running proxy's admin listener (e.g. http://127.0.0.1:9090); without it the store is opened directly")
	_ = cmd.MarkPersistentFlagRequired("config")

	var listFile string
	warmCmd := &cobra.Command{
		Use:   "warm --config FILE [-f list.txt] IMAGE...",
		Short: "Pull images (every platform, with their signature material) through the gate into the store; exit 1 if any is refused",
		RunE: func(cmd *cobra.Command, args []string) error {
			images, err := imageList(args, listFile)
			if err != nil {
				return usageError(err)
			}
			return runWarm(cmd.Context(), cmd.OutOrStdout(), configPath, admin, images)
		},
	}
	warmCmd.Flags().StringVarP(&listFile, "file", "f", "", "file of images to warm, one per line (# comments)")

	var output string
	lsCmd := &cobra.Command{
		Use:   "ls --config FILE",
		Short: "List what is stored: image, digest, tags, size, last used",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var entries []store.Entry
			err := withStore(cmd.Context(), configPath, admin, func(s *store.Store) error {
				entries = s.List()
				return nil
			}, func(c *adminClient) error {
				return c.do(cmd.Context(), http.MethodGet, "/cache/entries", nil, &entries)
			})
			if err != nil {
				return err
			}
			return printEntries(cmd.OutOrStdout(), entries, output)
		},
	}
	lsCmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")

	var olderThan time.Duration
	pruneCmd := &cobra.Command{
		Use:   "prune --config FILE --older-than 720h",
		Short: "Remove images not used for the given time, and the blobs only they list",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan <= 0 {
				return usageError(errors.New("--older-than must be a positive duration such as 720h"))
			}
			var res pruneResult
			err := withStore(cmd.Context(), configPath, admin, func(s *store.Store) error {
				res.Objects, res.Bytes = s.Prune(olderThan)
				return nil
			}, func(c *adminClient) error {
				return c.do(cmd.Context(), http.MethodPost, "/cache/prune?olderThan="+url.QueryEscape(olderThan.String()), nil, &res)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d objects, %s\n", res.Objects, humanBytes(res.Bytes))
			return nil
		},
	}
	pruneCmd.Flags().DurationVar(&olderThan, "older-than", 0, "remove what was last used longer ago than this (required)")
	_ = pruneCmd.MarkFlagRequired("older-than")

	verifyCmd := &cobra.Command{
		Use:   "verify --config FILE",
		Short: "Re-hash everything stored and drop what does not match its digest; exit 1 if anything was dropped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res store.VerifyResult
			err := withStore(cmd.Context(), configPath, admin, func(s *store.Store) error {
				var err error
				res, err = s.Verify(cmd.Context())
				return err
			}, func(c *adminClient) error { return c.do(cmd.Context(), http.MethodPost, "/cache/verify", nil, &res) })
			if err != nil {
				return err
			}
			for _, p := range res.Dropped {
				fmt.Fprintf(cmd.OutOrStdout(), "dropped (bytes do not match the digest): %s\n", p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "checked %d objects, dropped %d\n", res.Checked, len(res.Dropped))
			if len(res.Dropped) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d damaged objects dropped", len(res.Dropped))}
			}
			return nil
		},
	}
	cmd.AddCommand(warmCmd, lsCmd, pruneCmd, verifyCmd)
	return cmd
}

type pruneResult struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// withStore runs direct on the config's store, opened here, or remote on
// the admin listener at admin.
func withStore(ctx context.Context, configPath, admin string, direct func(*store.Store) error, remote func(*adminClient) error) error {
	cfg, err := loadCacheConfig(configPath)
	if err != nil {
		return err
	}
	if admin != "" {
		return remote(&adminClient{base: strings.TrimRight(admin, "/")})
	}
	s, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return direct(s)
}

func loadCacheConfig(configPath string) (*config.Config, error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, usageError(err)
	}
	if cfg.Cache == nil {
		return nil, usageError(fmt.Errorf("%s: no content store: set cache.dir", cfg.Path))
	}
	return cfg, nil
}

// openStore opens the config's store, or says how to reach the proxy that
// holds it.
func openStore(cfg *config.Config) (*store.Store, error) {
	s, err := store.Open(cfg.Cache.Dir, store.WithMaxSize(cfg.Cache.MaxSize))
	if errors.Is(err, store.ErrLocked) {
		return nil, usageError(fmt.Errorf("%w; to work through that proxy, pass --admin http://%s", err, cfg.AdminListen))
	}
	if err != nil {
		return nil, fmt.Errorf("cache.dir: %w", err)
	}
	return s, nil
}

func imageList(args []string, file string) ([]string, error) {
	images := append([]string(nil), args...)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line != "" && !strings.HasPrefix(line, "#") {
				images = append(images, line)
			}
		}
	}
	if len(images) == 0 {
		return nil, errors.New("no image to warm: give images as arguments or with -f FILE")
	}
	return images, nil
}

// runWarm warms images, printing progress and one line per image; exit 1
// if any was refused.
func runWarm(ctx context.Context, out io.Writer, configPath, admin string, images []string) error {
	cfg, err := loadCacheConfig(configPath)
	if err != nil {
		return err
	}
	var results []warmResult
	if admin != "" {
		c := &adminClient{base: strings.TrimRight(admin, "/")}
		results, err = c.warm(ctx, images, func(line string) { fmt.Fprintln(out, line) })
	} else {
		results, err = warmDirect(ctx, cfg, images, func(line string) { fmt.Fprintln(out, line) })
	}
	if err != nil {
		return err
	}
	refused := 0
	for _, r := range results {
		if !r.Allowed {
			refused++
		}
	}
	fmt.Fprintf(out, "%d of %d images stored\n", len(results)-refused, len(results))
	if refused > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d images refused", refused, len(results))}
	}
	return nil
}

// warmDirect runs the proxy of the config on a loopback port, in this
// process, and pulls each image through it.
func warmDirect(ctx context.Context, cfg *config.Config, images []string, print func(string)) ([]warmResult, error) {
	w, err := wire(cfg, &gate.Loader{}, zap.NewNop(), prometheus.NewRegistry())
	if errors.Is(err, store.ErrLocked) {
		return nil, usageError(fmt.Errorf("%w; to work through that proxy, pass --admin http://%s", err, cfg.AdminListen))
	}
	if err != nil {
		return nil, err
	}
	defer w.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: w.proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	var results []warmResult
	for _, image := range images {
		print("warming " + image)
		r := warm(ctx, ln.Addr().String(), image, cfg.DefaultRegistry, w.up.Has, print)
		print(r.String())
		results = append(results, r)
	}
	if w.store != nil {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := w.store.Wait(wctx); err != nil {
			return results, fmt.Errorf("waiting for the store's writes: %w", err)
		}
	}
	return results, nil
}

func printEntries(out io.Writer, entries []store.Entry, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	case "text":
	default:
		return usageError(fmt.Errorf("--output %q: want text or json", format))
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tTAGS\tDIGEST\tSIZE\tLAST USED")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Image, strings.Join(e.Tags, ","), e.Digest, humanBytes(e.Size), e.LastUsed.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// adminClient calls the cache endpoints of a running proxy's admin
// listener.
type adminClient struct{ base string }

func (c *adminClient) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return usageError(fmt.Errorf("--admin: %w", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("admin listener: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// warm posts the images and reads the NDJSON stream of progress lines and
// results.
func (c *adminClient) warm(ctx context.Context, images []string, print func(string)) ([]warmResult, error) {
	b, _ := json.Marshal(warmRequest{Images: images})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/cache/warm", bytes.NewReader(b))
	if err != nil {
		return nil, usageError(fmt.Errorf("--admin: %w", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("admin listener: POST /cache/warm: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var results []warmResult
	dec := json.NewDecoder(resp.Body)
	for {
		var ev warmEvent
		if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
			return results, nil
		} else if err != nil {
			return results, fmt.Errorf("admin listener: reading the warm stream: %w", err)
		}
		if ev.Progress != "" {
			print(ev.Progress)
		}
		if ev.Result != nil {
			print(ev.Result.String())
			results = append(results, *ev.Result)
		}
	}
}

type warmRequest struct {
	Images []string `json:"images"`
}

// warmEvent is one line of the /cache/warm stream.
type warmEvent struct {
	Progress string      `json:"progress,omitempty"`
	Result   *warmResult `json:"result,omitempty"`
}
