package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
)

// Machine describes where the figures were taken.
type Machine struct {
	NProc       int     `json:"nproc"`
	CPUModel    string  `json:"cpu_model"`
	Kernel      string  `json:"kernel"`
	GoVersion   string  `json:"go_version"`
	Platform    string  `json:"platform"`
	MemTotal    string  `json:"mem_total"`
	ClockTicks  float64 `json:"clock_ticks_per_s"`
	LoadAvgFrom string  `json:"loadavg_at_start"` // /proc/loadavg: other work on the box
	LoadAvgTo   string  `json:"loadavg_at_end"`
}

func currentMachine() Machine {
	return Machine{
		NProc:       runtime.NumCPU(),
		CPUModel:    procField("/proc/cpuinfo", "model name"),
		Kernel:      readTrim("/proc/sys/kernel/osrelease"),
		GoVersion:   runtime.Version(),
		Platform:    runtime.GOOS + "/" + runtime.GOARCH,
		MemTotal:    procField("/proc/meminfo", "MemTotal"),
		ClockTicks:  clockTicks(),
		LoadAvgFrom: loadAvg(),
	}
}

// procField is the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// toolVersions names the version of every server and library measured.
func toolVersions(ctx context.Context, bins binaries, root string) map[string]string {
	v := map[string]string{
		"registry":      moduleVersion(ctx, bins.registry, "github.com/distribution/distribution/v3"),
		"portcullis":    commandOutput(ctx, bins.portcullis, "version") + gitRevision(ctx, root),
		"reverse-proxy": "net/http/httputil.ReverseProxy " + runtime.Version(),
	}
	if bins.cosign != "" {
		v["cosign"] = moduleVersion(ctx, bins.cosign, "github.com/sigstore/cosign/v3")
		if v["cosign"] == "unknown" {
			v["cosign"] = moduleVersion(ctx, bins.cosign, "github.com/sigstore/cosign/v2")
		}
	} else {
		v["cosign"] = "not measured: " + bins.cosignMissing
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			switch dep.Path {
			case "github.com/google/go-containerregistry":
				v["go-containerregistry (fixtures)"] = dep.Version
			case "github.com/sigstore/sigstore-go":
				v["sigstore-go (verify-cost, in process)"] = dep.Version
			}
		}
	}
	return v
}

// moduleVersion reads mod's version from a Go binary's build information.
func moduleVersion(ctx context.Context, bin, mod string) string {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return "unknown"
	}
	for line := range bytes.Lines(out) {
		f := strings.Fields(string(line))
		if len(f) >= 3 && f[0] == "mod" && f[1] == mod {
			return mod + " " + f[2]
		}
	}
	return "unknown"
}

func commandOutput(ctx context.Context, bin string, args ...string) string {
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// gitRevision is " (git <commit>[+dirty])", or "" outside a git checkout.
func gitRevision(ctx context.Context, root string) string {
	git := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		return cmd.Output()
	}
	rev, err := git("rev-parse", "--short=12", "HEAD")
	if err != nil {
		return ""
	}
	s := " (git " + strings.TrimSpace(string(rev))
	if st, err := git("status", "--porcelain"); err == nil && len(st) > 0 {
		s += "+dirty"
	}
	return s + ")"
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
