package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/verify/signing"
)

func newDemoCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a self-contained demo: signed, unsigned and forged sample images behind the verifying proxy",
		Long: `demo starts, inside this process, an upstream registry holding sample images
(signed with a key made for the demo, unsigned, and signed by another key),
and Portcullis in front of it on --listen with a demo policy, then prints
commands to try.
Nothing leaves the machine. Stop it with Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), listen)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5050", "address of the demo proxy")
	addLogLevelFlag(cmd)
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
	dir, err := os.MkdirTemp("", "portcullis-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := fillDemo(upLn.Addr().String(), dir); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, fmt.Appendf(nil, demoConfig, ln.Addr(), upLn.Addr()), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	w, err := wire(cfg, &gate.Loader{}, logger, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer w.close()
	srv := &http.Server{Handler: w.proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	printDemoHelp(out, ln.Addr().String(), configPath)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	logger.Info("demo stopping", zap.String("listen", ln.Addr().String()))
	return srv.Shutdown(sctx)
}

// demoConfig and demoPolicy are what the demo runs with, written to a
// temporary directory so that `portcullis verify` can use them too.
const (
	demoConfig = `listen: %s
adminListen: 127.0.0.1:0
upstreams:
  - registry: demo.local
    endpoint: http://%s
    insecure: true
defaultRegistry: demo.local
policyFile: policy.yaml
cache:
  dir: store
  maxSize: 1GiB
`
	demoPolicy = `policies:
  - name: acme-release
    images: ["demo.local/acme/**"]
    authorities:
      - name: release-key
        key: {path: cosign.pub}
  - name: vendor
    images: ["demo.local/vendor/**"]
    allow: unsigned
default: deny
`
)

// fillDemo pushes the sample images to the upstream at host, signs some,
// and writes the demo policy and its key into dir:
//
//	acme/signed:v1    signed with the release key (cosign v3 bundle)
//	acme/legacy:v1    signed with the release key (legacy .sig tag)
//	acme/unsigned:v1  no signature
//	acme/forged:v1    signed, but by another key
//	vendor/tool:v1    no signature, allowed by the vendor policy
func fillDemo(host, dir string) error {
	release, err := signing.NewSigner()
	if err != nil {
		return err
	}
	forger, err := signing.NewSigner()
	if err != nil {
		return err
	}
	for _, img := range []struct {
		repo string
		sign func(name.Repository, v1.Descriptor) error
	}{
		{"acme/signed", func(r name.Repository, d v1.Descriptor) error { return release.SignBundle(r, d) }},
		{"acme/legacy", func(r name.Repository, d v1.Descriptor) error { return release.SignLegacy(r, d.Digest) }},
		{"acme/unsigned", nil},
		{"acme/forged", func(r name.Repository, d v1.Descriptor) error { return forger.SignLegacy(r, d.Digest) }},
		{"vendor/tool", nil},
	} {
		repo, err := name.NewRepository(host+"/"+img.repo, name.Insecure)
		if err != nil {
			return err
		}
		desc, err := pushDemoImage(repo)
		if err != nil {
			return fmt.Errorf("filling the demo upstream: %w", err)
		}
		if img.sign != nil {
			if err := img.sign(repo, desc); err != nil {
				return fmt.Errorf("signing %s: %w", img.repo, err)
			}
		}
	}
	pem, err := release.PublicKeyPEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cosign.pub"), pem, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(demoPolicy), 0o600)
}

func pushDemoImage(repo name.Repository) (v1.Descriptor, error) {
	img, err := random.Image(2048, 2)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := remote.Write(repo.Tag("v1"), img); err != nil {
		return v1.Descriptor{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, err
}

func printDemoHelp(out io.Writer, addr, configPath string) {
	crane := "go run github.com/google/go-containerregistry/cmd/crane@v0.22.1"
	fmt.Fprintf(out, `
Portcullis demo: proxy on http://%[1]s in front of an in-memory registry "demo.local".
Policy (%[2]s): demo.local/acme/** must be signed by the release key; demo.local/vendor/**
may be unsigned; anything else is refused.

Try, in another terminal:

  # signed with the release key (cosign v3 bundle): served, with its digest
  curl -si http://%[1]s/v2/demo.local/acme/signed/manifests/v1 | head -n 5

  # unsigned: 403 DENIED, and the message says which policy and why
  curl -s http://%[1]s/v2/demo.local/acme/unsigned/manifests/v1; echo

  # signed, but by another key
  curl -s http://%[1]s/v2/demo.local/acme/forged/manifests/v1; echo

  # the same decisions without serving (exit 1: one is denied)
  go run ./cmd/portcullis verify --config %[3]s       demo.local/acme/signed:v1 demo.local/acme/legacy:v1 demo.local/acme/unsigned:v1 demo.local/vendor/tool:v1

  # a real client: the signed image pulls, the unsigned one does not
  %[4]s pull --insecure %[1]s/demo.local/acme/signed:v1 /tmp/signed.tar
  %[4]s pull --insecure %[1]s/demo.local/acme/unsigned:v1 /tmp/unsigned.tar

Every request and every decision is logged here. Ctrl-C stops the demo.
`, addr, filepath.Join(filepath.Dir(configPath), "policy.yaml"), configPath, crane)
}
