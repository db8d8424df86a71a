package main

// The baseline: Portcullis as built from an earlier git revision
// (-baseline REV), run beside this one in the manifest, cold and blob
// phases, so that a change is measured against what it changed in the
// same run, on the same upstream, at the same moment.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// targetBaseline is Portcullis built from -baseline.
const targetBaseline = "portcullis-before"

// baselinePolicy is benchPolicy without what an earlier Portcullis may
// not parse (attestation requirements): the baseline serves the phases
// that need only the bench key.
const baselinePolicy = benchKeyPolicy + "default: deny\n"

// buildBaseline exports revision rev of the repository at root (git
// archive, so the working tree is untouched) into dir/baseline-src and
// builds its cmd/portcullis into dir/bin. It returns the binary and the
// revision's short commit.
func buildBaseline(ctx context.Context, root, dir, rev string) (bin, commit string, err error) {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short=12", "--verify", rev+"^{commit}").Output()
	if err != nil {
		return "", "", fmt.Errorf("-baseline %q: not a commit of %s: %w", rev, root, err)
	}
	commit = strings.TrimSpace(string(out))
	src := filepath.Join(dir, "baseline-src")
	if err := gitExport(ctx, root, commit, src); err != nil {
		return "", "", fmt.Errorf("-baseline %s: %w", commit, err)
	}
	bin = filepath.Join(dir, "bin", targetBaseline)
	logf("building the baseline, %s's ./cmd/portcullis", commit)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/portcullis")
	cmd.Dir = src
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("-baseline %s: go build: %w\n%s", commit, err, msg)
	}
	return bin, commit, nil
}

// gitExport writes the tree of commit into dst, from `git archive`.
func gitExport(ctx context.Context, root, commit, dst string) error {
	cmd := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", commit)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("git archive: %w", err)
	}
	xerr := untar(stdout, dst)
	if xerr != nil {
		_, _ = io.Copy(io.Discard, stdout)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git archive: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return xerr
}

// untar writes the directories and regular files of a tar stream under
// dst (git archive writes nothing else that a build needs).
func untar(r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("archive entry %q leaves the directory", h.Name)
		}
		path := filepath.Join(dst, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
		}
	}
}

// startBaseline starts the baseline Portcullis of phase in front of the
// upstream, with the configuration every revision since the first
// release reads (no drain delay) and baselinePolicy.
func (b *bench) startBaseline(ctx context.Context, phase string) (*target, error) {
	pol := b.path("policy-before.yaml")
	if err := os.WriteFile(pol, []byte(baselinePolicy), 0o644); err != nil {
		return nil, fmt.Errorf("write baseline policy: %w", err)
	}
	t, err := b.startPortcullisBin(ctx, portcullisRun{
		name: targetBaseline, phase: phase + "-before", bin: b.bins.baseline,
		endpoint: "http://" + b.upAddr, policyFile: filepath.Base(pol), noDrainDelay: true,
	})
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", b.baselineCommit, err)
	}
	return t, nil
}
