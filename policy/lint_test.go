package policy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/lint/*.golden")

// TestLintGolden lints each testdata/lint/*.yaml and compares the problems,
// one per line, with the .golden file beside it.
func TestLintGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/lint/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			problems := lintFile(t, file)
			var b strings.Builder
			hasError := false
			for _, p := range problems {
				b.WriteString(p.String() + "\n")
				hasError = hasError || p.Severity == Error
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./policy -update)", err)
			}
			if b.String() != string(want) {
				t.Errorf("Lint(%s):\n%s\nwant:\n%s", file, b.String(), want)
			}
			data, _ := os.ReadFile(file)
			if _, err := Parse(data, file, os.DirFS(".")); (err != nil) != hasError {
				t.Errorf("Parse error %v, but Lint found an error: %v", err, hasError)
			}
		})
	}
}

func TestLintSorted(t *testing.T) {
	problems := lintFile(t, "testdata/lint/authorities.yaml")
	for i := 1; i < len(problems); i++ {
		if problems[i].Line < problems[i-1].Line {
			t.Errorf("problem %d (line %d) after line %d", i, problems[i].Line, problems[i-1].Line)
		}
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "f.yaml", Line: 3, Path: "policies[0]", Message: "m"}, "f.yaml:3: policies[0]: m"},
		{Problem{File: "f.yaml", Line: 3, Path: "default", Message: "m", Severity: Warning}, "f.yaml:3: warning: default: m"},
		{Problem{File: "f.yaml", Message: "m"}, "f.yaml: m"},
	}
	for _, tc := range tests {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// TestAliasBudget checks that aliases repeating aliases cannot make
// parsing explode, and that the problems they repeat are capped.
func TestAliasBudget(t *testing.T) {
	const n = 200
	rep := func(s string) string { return strings.TrimSuffix(strings.Repeat(s+", ", n), ", ") }
	src := y(
		"trustRoots: [{name: r, tuf: {}}]",
		"policies: [&p {name: p, images: [r.example/**], authorities: [",
		"  &a {name: a, trustRoot: r, keyless: {identities: [&i {issuer: i, subject: s}, "+rep("*i")+"]}},",
		"  "+rep("*a")+"]},",
		"  "+rep("*p")+"]",
	)
	start := time.Now()
	_, err := Parse([]byte(src), "bomb.yaml", nil)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Parse took %v", d)
	}
	if err == nil || !strings.Contains(err.Error(), "file is too complex") || !strings.Contains(err.Error(), "more problems not shown") {
		t.Errorf("err = %.500v", err)
	}
}

// TestCheck: a caller's Check runs over the policy as compiled even when
// the file has an error of its own (a key file missing), sees every
// authority with its Line and Path, and its problems join the file's:
// sorted by line, named by the file, failing Parse when one is an Error.
func TestCheck(t *testing.T) {
	const src = `policies:
  - name: app
    images: ["registry.example/**"]
    authorities:
      - name: missing
        key: {path: missing.pub}
      - name: other
        key: {path: other.pub}
`
	var seen []string
	check := func(p *Policy) []Problem {
		var out []Problem
		for _, a := range p.Policies[0].Authorities {
			seen = append(seen, fmt.Sprintf("%s@%d:%s", a.Name, a.Line, a.Path))
			out = append(out, Problem{Line: a.Line, Path: a.Path, Severity: Warning, Message: "seen " + a.Name})
		}
		out[1].Severity = Error
		return out
	}
	var got []string
	files := mapFS(map[string]string{"other.pub": newKey(t, "p256")})
	for _, p := range Lint([]byte(src), "p.yaml", files, check) {
		got = append(got, p.String())
	}
	want := []string{
		"p.yaml:5: warning: policies[0].authorities[0]: seen missing",
		`p.yaml:6: policies[0].authorities[0].key.path: cannot read "missing.pub": file does not exist`,
		"p.yaml:7: policies[0].authorities[1]: seen other",
	}
	wantSeen := []string{"missing@5:policies[0].authorities[0]", "other@7:policies[0].authorities[1]"}
	if !slices.Equal(seen, wantSeen) || len(got) != 3 || got[0] != want[0] || !strings.HasPrefix(got[1], "p.yaml:6: ") || got[2] != want[2] {
		t.Errorf("Lint with a check:\nseen %q\ngot  %q\nwant %q (seen %q)", seen, got, want, wantSeen)
	}
	noKey := strings.Replace(src, "missing.pub", "other.pub", 1)
	if _, err := Parse([]byte(noKey), "p.yaml", files, check); err == nil || !strings.Contains(err.Error(), "p.yaml:7: policies[0].authorities[1]: seen other") || strings.Contains(err.Error(), "seen missing") {
		t.Errorf("Parse with a check's error: %v", err)
	}
	if _, err := Parse([]byte(noKey), "p.yaml", files); err != nil {
		t.Errorf("Parse without the check: %v", err)
	}
}
