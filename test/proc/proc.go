// Package proc starts and stops the server processes of the end-to-end
// tests and the benchmark, each with its output in a log file.
package proc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// StopTimeout is how long Stop waits after SIGTERM before it kills the
// process group.
const StopTimeout = 10 * time.Second

// Process is a server started by Start, its combined output in a log file.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid once done is closed
	once    sync.Once
}

// Start runs bin with args, stdout and stderr to logPath, env added to the
// caller's environment. The process has its own process group, so a
// terminal's Ctrl-C reaches the caller first, which stops the servers in
// order; the kernel kills it if the caller dies without cleaning up (a
// -timeout panic, a SIGKILL).
func Start(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Name is the name given to Start.
func (p *Process) Name() string { return p.name }

// LogPath is the file the process's output goes to.
func (p *Process) LogPath() string { return p.logPath }

// Pid is the process's id (and its process group's).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process is gone.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit error once it has exited (nil for a clean
// exit), and nil before.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.waitErr
}

// Stop sends SIGTERM, waits up to StopTimeout, then kills the process
// group. It returns the process's exit error (nil for a clean exit).
func (p *Process) Stop() error {
	p.once.Do(func() {
		if p.Exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(StopTimeout):
			_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
			<-p.done
		}
	})
	<-p.done
	return p.waitErr
}

// Log returns the process's output from byte offset from (from the start
// if the log is shorter), at most its last max bytes.
func (p *Process) Log(from int64, max int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	if from > int64(len(b)) || from < 0 {
		from = 0
	}
	b = b[from:]
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	return string(b)
}

// LogSize is the current size of the process's log, for Log(from, ...).
func (p *Process) LogSize() int64 {
	fi, err := os.Stat(p.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// FreeAddr is a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr() (string, error) {
	addrs, err := FreeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// FreeAddrs is n distinct 127.0.0.1 addresses whose ports were free a
// moment ago. All n are held open until the last is found, so no two are
// the same: two FreeAddr calls in a row can return one port twice (the
// first is closed before the second is asked for).
func FreeAddrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
