package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// clockTicks is the kernel's USER_HZ (getconf CLK_TCK), 100 when unknown.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
})

// cpuSeconds is the user+system CPU time a process has used so far, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time of pid %d: malformed stat %q", pid, b)
	}
	fields := strings.Fields(string(b[i+1:])) // fields[0] is field 3
	if len(fields) < 13 {
		return 0, fmt.Errorf("cpu time of pid %d: short stat %q", pid, b)
	}
	var ticks float64
	for _, f := range fields[11:13] { // utime, stime
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
		}
		ticks += float64(n)
	}
	return ticks / clockTicks(), nil
}

// peakRSSMiB is a process's peak resident set size over its lifetime
// (VmHWM in /proc/<pid>/status), in MiB.
func peakRSSMiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		if err != nil {
			return 0, fmt.Errorf("peak RSS of pid %d: %w", pid, err)
		}
		return kb / 1024, nil
	}
	return 0, fmt.Errorf("peak RSS of pid %d: no VmHWM in status", pid)
}

// cpuMeter measures the CPU time a set of processes use between start and
// stop.
type cpuMeter struct {
	pids  []int
	start []float64
}

func startCPU(pids ...int) (*cpuMeter, error) {
	m := &cpuMeter{pids: pids}
	for _, pid := range pids {
		s, err := cpuSeconds(pid)
		if err != nil {
			return nil, err
		}
		m.start = append(m.start, s)
	}
	return m, nil
}

// stop returns the CPU seconds each process used since startCPU.
func (m *cpuMeter) stop() ([]float64, error) {
	out := make([]float64, len(m.pids))
	for i, pid := range m.pids {
		s, err := cpuSeconds(pid)
		if err != nil {
			return nil, err
		}
		out[i] = s - m.start[i]
	}
	return out, nil
}

// peakRSS reports each target's peak RSS over the phase (the processes were
// started for it). The upstream row is the upstream, which served the
// whole phase for every target.
func (f *fleet) peakRSS(phase string) ([]Metric, error) {
	var ms []Metric
	for _, t := range f.targets {
		mib, err := peakRSSMiB(t.proc.Pid())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
		ms = append(ms, Metric{Phase: phase, Case: "process", Target: t.name,
			Name: "peak_rss", Unit: "MiB", Value: mib})
	}
	return ms, nil
}
