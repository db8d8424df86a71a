//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/test/proc"
)

// Bounds for everything the tests wait on.
const (
	commandTimeout = 90 * time.Second // one client command (a pull, a copy)
	startTimeout   = 30 * time.Second // a server becoming ready
)

// inCI reports whether missing tools are failures rather than skips.
func inCI() bool { return os.Getenv("CI") == "true" }

// missingToolError is a setup failure caused by a tool that is not installed.
type missingToolError struct{ tool string }

func (e *missingToolError) Error() string {
	return fmt.Sprintf("%s not found in PATH (run `make tools deps`)", e.tool)
}

// lookTool finds a tool in PATH.
func lookTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", &missingToolError{tool: name}
	}
	return p, nil
}

// needTool returns the path of a client the test needs: a skip when it is
// missing, or a failure in CI.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := lookTool(name)
	if err != nil {
		skipOrFail(t, err)
	}
	return p
}

// skipOrFail ends the test for a missing prerequisite: t.Skip normally,
// t.Fatal in CI, where everything must be installed.
func skipOrFail(t *testing.T, err error) {
	t.Helper()
	if inCI() {
		t.Fatalf("CI=true: %v", err)
	}
	t.Skip(err)
}

// process is a long-running server started by the tests, with its combined
// output in a log file.
type process struct {
	*proc.Process
	addr string // the address it listens on, for servers
}

// startProcess starts bin with args, writing stdout and stderr to logPath.
// env is added to the test's environment.
func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	p, err := proc.Start(name, logPath, env, bin, args...)
	if err != nil {
		return nil, err
	}
	return &process{Process: p}, nil
}

// waitHTTP polls url until it answers 200, the process exits, or
// startTimeout passes.
func waitHTTP(p *process, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("%s exited while starting (%v); log:\n%s", p.Name(), p.Err(), p.Log(0, 8000))
		}
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v; log:\n%s", p.Name(), startTimeout, last, p.Log(0, 8000))
}

// checkProxyStop stops a portcullis process and reports an unclean exit or
// a data race it logged (the tests build it with -race).
func checkProxyStop(p *process) error {
	var errs []string
	if err := p.Stop(); err != nil {
		errs = append(errs, fmt.Sprintf("%s did not exit cleanly on SIGTERM: %v", p.Name(), err))
	}
	if log := p.Log(0, 1<<20); strings.Contains(log, "WARNING: DATA RACE") {
		errs = append(errs, p.Name()+" (built with -race) reported a data race:\n"+log)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// cmdResult is the outcome of one client command.
type cmdResult struct {
	stdout, stderr string
	err            error
}

// runCmd runs a client command to completion under commandTimeout, with env
// added to the test's environment.
func runCmd(ctx context.Context, env []string, bin string, args ...string) cmdResult {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", err, ctx.Err())
	}
	return cmdResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// run runs a client command and fails the test if it fails, logging its
// command line and output. It returns stdout.
func run(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	line := bin + " " + strings.Join(args, " ")
	t.Logf("$ %s", line)
	r := runCmd(t.Context(), env, bin, args...)
	if r.err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", line, r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// exitCode returns a command error's exit status, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
