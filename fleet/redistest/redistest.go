// Package redistest runs a real redis-server (Debian's package, which
// `make deps` installs) on loopback, in a directory of its own, for tests
// (Start) and the benchmark (Launch).
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ErrNotInstalled says redis-server is not on $PATH.
var ErrNotInstalled = errors.New("redis-server not found (make deps installs it)")

// Process is one redis-server.
type Process struct {
	Addr string
	dir  string
	cmd  *exec.Cmd
}

// Launch starts redis-server on a free loopback port, with no persistence
// and its log in dir, and waits until it answers PING.
func Launch(dir string) (*Process, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNotInstalled
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &Process{Addr: addr, dir: dir}
	return p, p.start()
}

func (p *Process) start() error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(p.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	_, port, _ := net.SplitHostPort(p.Addr)
	p.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--dir", p.dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no")
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", p.Addr, 100*time.Millisecond); err == nil {
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
	}
	p.Stop()
	return fmt.Errorf("redis-server on %s did not answer within 10s", p.Addr)
}

// Stop kills the server (as a crash would).
func (p *Process) Stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// Server is a redis-server of one test.
type Server struct {
	*Process
	t testing.TB
}

// Start starts a redis-server for the test, stopped when it ends.
// Without redis-server the test is skipped (it fails under CI=true, where
// `make deps` installs it).
func Start(t testing.TB) *Server {
	t.Helper()
	p, err := Launch(t.TempDir())
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Process: p, t: t}
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again on the same address, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}
