package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/atomicfile"
	"github.com/portcullis-dev/portcullis/verify/tuftrust"
)

func newTrustCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "trust", Short: "Work with Sigstore trusted roots"}
	var out, url, rootFile, cacheDir string
	fetch := &cobra.Command{
		Use:   "fetch --out FILE",
		Short: "Fetch a Sigstore trusted_root.json through TUF, for an air-gapped site's trustedRootFile",
		Long: `fetch gets trusted_root.json from a TUF repository (the public-good
instance unless --url names another), verified from the pinned root
(sigstore-go's embedded public-good root.json unless --root names another),
and writes it to --out. Run it where the network is; copy the file to the
air-gapped site and name it in the policy:

    trustRoots:
      - name: offline
        trustedRootFile: trusted_root.json

Fetch again (and copy) when the instance rotates its keys.

Exit status: 0 written, 1 the repository could not be read or verified, 2 bad
usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src := tuftrust.Source{Name: "fetch", URL: url, CacheDir: cacheDir}
			if rootFile != "" {
				b, err := os.ReadFile(rootFile)
				if err != nil {
					return usageError(fmt.Errorf("--root: %w", err))
				}
				src.Root = b
			}
			if src.CacheDir == "" {
				dir, err := os.MkdirTemp("", "portcullis-tuf-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				src.CacheDir = dir // a fresh TUF client: nothing stale from an earlier fetch
			}
			b, err := tuftrust.Fetch(src)
			if err != nil {
				return fmt.Errorf("fetching trusted_root.json: %w", err)
			}
			if err := atomicfile.Write(out, b, 0o644, ""); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes)\n", out, len(b))
			return nil
		},
	}
	fetch.Flags().StringVar(&out, "out", "", "the file to write (required)")
	fetch.Flags().StringVar(&url, "url", "", "the TUF repository (default: the public-good instance)")
	fetch.Flags().StringVar(&rootFile, "root", "", "the root.json to trust (default: sigstore-go's public-good root)")
	fetch.Flags().StringVar(&cacheDir, "cache-dir", "", "the TUF cache (default: a temporary directory, removed afterwards)")
	_ = fetch.MarkFlagRequired("out")
	cmd.AddCommand(fetch)
	return cmd
}
