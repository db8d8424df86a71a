package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/proxy"
)

// demoRegistry is the name the demo's upstream is known by.
const demoRegistry = "demo.local"

func newDemoCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a self-contained demo: an in-memory upstream registry with sample images and the proxy in front",
		Long: `demo starts, inside this process, an upstream registry holding sample images
and Portcullis in front of it on --listen, then prints commands to try.
Nothing leaves the machine. Stop it with Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), listen)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5050", "address of the demo proxy")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, listen string) error {
	logger, err := newLogger("console")
	if err != nil {
		return err
	}
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo upstream: %w", err)
	}
	upstream := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = upstream.Serve(upLn) }()
	defer upstream.Close()
	upHost := upLn.Addr().String()
	digest, err := fillDemoUpstream(upHost)
	if err != nil {
		return err
	}

	p, err := proxy.New([]proxy.Upstream{{Registry: demoRegistry, Endpoint: &url.URL{Scheme: "http", Host: upHost}}},
		proxy.WithDefaultRegistry(demoRegistry), proxy.WithLogger(logger))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	printDemoHelp(out, ln.Addr().String(), digest)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	logger.Info("demo stopping", zap.String("listen", ln.Addr().String()))
	return srv.Shutdown(sctx)
}

// fillDemoUpstream pushes the sample image and returns its digest.
func fillDemoUpstream(host string) (v1.Hash, error) {
	img, err := random.Image(2048, 2)
	if err != nil {
		return v1.Hash{}, err
	}
	ref, err := name.NewTag(host+"/acme/hello:v1", name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(ref, img); err != nil {
		return v1.Hash{}, fmt.Errorf("filling the demo upstream: %w", err)
	}
	return img.Digest()
}

func printDemoHelp(out io.Writer, addr string, digest v1.Hash) {
	crane := "go run github.com/google/go-containerregistry/cmd/crane@v0.22.1"
	fmt.Fprintf(out, `
Portcullis demo: proxy on http://%[1]s, mirroring the in-memory registry %[2]q.

Try, in another terminal:

  # the manifest, exactly as the upstream has it, with its digest
  curl -si http://%[1]s/v2/%[2]s/acme/hello/manifests/v1 | head -n 12

  # the same image through containerd's ?ns= routing, by digest
  curl -s 'http://%[1]s/v2/acme/hello/manifests/%[3]s?ns=%[2]s' | head -c 300; echo

  # a write is refused: this is a read-only mirror
  curl -s -X PUT http://%[1]s/v2/%[2]s/acme/hello/manifests/v2; echo

  # pull the whole image with a real client
  %[4]s pull --insecure %[1]s/%[2]s/acme/hello:v1 /tmp/hello.tar

Every request is logged here, one line each. Ctrl-C stops the demo.
`, addr, demoRegistry, digest, crane)
}
