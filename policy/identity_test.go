package policy

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// identityPolicy is a keyless policy whose one identity is issuer
// https://token.actions.githubusercontent.com (line 9) and the lines
// given, indented under it, from line 10 on.
func identityPolicy(lines ...string) string {
	src := []string{
		"policies:", // 1
		"  - name: p",
		"    images: [r.example/**]",
		"    authorities:",
		"      - name: ci", // 5
		"        trustRoot: public-good",
		"        keyless:",
		"          identities:",
		"            - issuer: https://token.actions.githubusercontent.com", // 9
	}
	for _, l := range lines {
		src = append(src, "              "+l)
	}
	return y(src...)
}

// problemStrings formats problems one per string.
func problemStrings(problems []Problem) []string {
	out := make([]string, len(problems))
	for i, p := range problems {
		out[i] = p.String()
	}
	return out
}

// checkProblems compares the problems of src, linted as policy.yaml with
// files, against want, in order: each problem is its want, or starts with
// it when the want ends in "..." (messages quoting cel-go or regexp). Parse
// must fail iff one of them is an error.
func checkProblems(t *testing.T, src string, files map[string]string, want []string) {
	t.Helper()
	got := problemStrings(Lint([]byte(src), "policy.yaml", mapFS(files)))
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		if prefix, cut := strings.CutSuffix(want[i], "..."); cut {
			ok = strings.HasPrefix(got[i], prefix)
		} else {
			ok = got[i] == want[i]
		}
	}
	if !ok {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	hasError := false
	for _, w := range want {
		hasError = hasError || !strings.Contains(w, ": warning: ")
	}
	if _, err := Parse([]byte(src), "policy.yaml", mapFS(files)); (err != nil) != hasError {
		t.Errorf("Parse error = %v, want an error: %v", err, hasError)
	}
}

const idPath = "policies[0].authorities[0].keyless.identities[0]"

// TestLintIdentityExtensions: every mistake in github: and extensions: is
// reported at its line and path; the subject is optional only with either.
func TestLintIdentityExtensions(t *testing.T) {
	const anyWorkflow = ".github: pins no repository: with no subject, github.repository or repository extension (sourceRepositoryURI, buildConfigURI, ...), a certificate from any repository of the issuer matches"
	tests := []struct {
		desc  string
		lines []string
		want  []string
	}{
		// Valid.
		{"github alone, no subject", []string{"github: {repository: acme/app}"}, nil},
		{"github in full", []string{
			"github:",
			"  repository: acme/app",
			"  workflow: .github/workflows/release.yml",
			"  ref: refs/tags/v*",
			"  runner: github-hosted",
		}, nil},
		{"github globs", []string{"github: {workflow: .github/workflows/*.yml, ref: refs/heads/**, runner: self-hosted}"}, nil},
		{"extensions alone, no subject", []string{"extensions: {sourceRepositoryOwnerURI: https://github.com/acme}"}, nil},
		{"extensions anchored RegExp", []string{"extensions: {buildSignerURIRegExp: ^https://github\\.com/acme/}"}, nil},
		{"github, extensions and a subject", []string{
			"subjectRegExp: ^https://github\\.com/acme/",
			"github: {ref: refs/tags/v*}",
			"extensions: {buildTrigger: push}",
		}, nil},
		{"github and subject", []string{"subject: https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main", "github: {runner: github-hosted}"}, nil},

		// Subject.
		{"neither: subject required", nil, []string{
			"policy.yaml:9: " + idPath + `: needs one of "subject" or "subjectRegExp"`,
		}},
		{"two issuers, no subject", []string{"issuerRegExp: ^x$"}, []string{
			"policy.yaml:9: " + idPath + `: needs one of "subject" or "subjectRegExp"`,
			"policy.yaml:10: " + idPath + `: set only one of "issuer" and "issuerRegExp"`,
		}},
		{"github: still at most one subject", []string{
			"subject: s",
			"subjectRegExp: ^s$",
			"github: {repository: acme/app}",
		}, []string{
			"policy.yaml:11: " + idPath + `: set only one of "subject" and "subjectRegExp"`,
		}},
		{"extensions: still at most one subject", []string{
			"extensions: {buildTrigger: push}",
			"subjectRegExp: ^s$",
			"subject: s",
		}, []string{
			"policy.yaml:12: " + idPath + `: set only one of "subject" and "subjectRegExp"`,
		}},

		// extensions:
		{"extensions.issuer", []string{"extensions:", "  issuer: https://token.actions.githubusercontent.com"}, []string{
			"policy.yaml:11: " + idPath + `.extensions.issuer: extension "issuer": the identity's issuer is its "issuer" (or "issuerRegExp"), not an extension`,
		}},
		{"extensions.issuerRegExp", []string{"extensions:", "  buildTrigger: push", "  issuerRegExp: ^https://"}, []string{
			"policy.yaml:12: " + idPath + `.extensions.issuerRegExp: extension "issuerRegExp": the identity's issuer is its "issuer" (or "issuerRegExp"), not an extension`,
		}},
		{"unknown extension, suggested", []string{"extensions:", "  buildTrigger: push", "  sourceRepositoryURL: https://github.com/acme/app"}, []string{
			"policy.yaml:12: " + idPath + `.extensions: unknown field "sourceRepositoryURL" (did you mean "sourceRepositoryURI"?)`,
		}},
		// With no known one left, the mapping also sets nothing.
		{"unknown extension RegExp, suggested", []string{"extensions:", "  buildSignerURIRegexp: ^https://"}, []string{
			"policy.yaml:11: " + idPath + `.extensions: unknown field "buildSignerURIRegexp" (did you mean "buildSignerURIRegExp"?)`,
			"policy.yaml:11: " + idPath + ".extensions: sets nothing; give at least one Fulcio extension, such as sourceRepositoryURI",
		}},
		{"unknown extension, nothing near", []string{"extensions: {workflow: release.yml}"}, []string{
			"policy.yaml:10: " + idPath + `.extensions: unknown field "workflow"`,
			"policy.yaml:10: " + idPath + ".extensions: sets nothing; give at least one Fulcio extension, such as sourceRepositoryURI",
		}},
		{"bad RegExp", []string{"extensions:", "  sourceRepositoryURIRegExp: ^https://github\\.com/(acme"}, []string{
			"policy.yaml:11: " + idPath + `.extensions.sourceRepositoryURIRegExp: extension "sourceRepositoryURIRegExp": bad regular expression (Go RE2 syntax): missing closing ): ` + "`^https://github\\.com/(acme`",
		}},
		{"RE2 only", []string{"extensions:", "  buildConfigURIRegExp: ^https://github\\.com/acme/(?!evil)"}, []string{
			"policy.yaml:11: " + idPath + `.extensions.buildConfigURIRegExp: extension "buildConfigURIRegExp": bad regular expression (Go RE2 syntax): invalid or unsupported Perl syntax: ...`,
		}},
		{"unanchored RegExp warns", []string{"extensions:", "  buildTrigger: push", "  buildSignerURIRegExp: https://github\\.com/acme/"}, []string{
			"policy.yaml:12: warning: " + idPath + `.extensions.buildSignerURIRegExp: "https://github\\.com/acme/" is not anchored with "^", so it matches anywhere in the value; start it with "^"`,
		}},
		{"empty extensions", []string{"extensions: {}"}, []string{
			"policy.yaml:10: " + idPath + ".extensions: sets nothing; give at least one Fulcio extension, such as sourceRepositoryURI",
		}},
		{"null extensions", []string{"extensions:"}, []string{
			"policy.yaml:10: " + idPath + ".extensions: want a mapping of settings, got nothing",
		}},
		{"extensions list", []string{"extensions: [buildTrigger]"}, []string{
			"policy.yaml:10: " + idPath + ".extensions: want a mapping of settings, got a list",
		}},
		{"empty extension value", []string{"extensions:", `  buildTrigger: ""`}, []string{
			"policy.yaml:11: " + idPath + ".extensions.buildTrigger: must not be empty",
		}},
		{"extension set twice", []string{"extensions:", "  buildTrigger: push", "  buildTrigger: tag"}, []string{
			"policy.yaml:12: " + idPath + `.extensions: field "buildTrigger" is already set at line 11`,
		}},

		// github:
		{"empty github", []string{"github: {}"}, []string{
			"policy.yaml:10: " + idPath + ".github: sets nothing; give at least one of repository, workflow, ref and runner",
			"policy.yaml:10: warning: " + idPath + anyWorkflow,
		}},
		{"null github", []string{"github:"}, []string{
			"policy.yaml:10: " + idPath + ".github: want a mapping of settings, got nothing",
			"policy.yaml:10: warning: " + idPath + anyWorkflow,
		}},
		{"github repository URL", []string{"github:", "  repository: https://github.com/acme/app"}, []string{
			"policy.yaml:10: " + idPath + `.github: github repository "https://github.com/acme/app": write owner/name, such as "acme/app"`,
		}},
		{"github repository owner only", []string{"github: {repository: acme}"}, []string{
			"policy.yaml:10: " + idPath + `.github: github repository "acme": write owner/name, such as "acme/app"`,
		}},
		{"github repository too deep", []string{"github: {repository: github.com/acme/app}"}, []string{
			"policy.yaml:10: " + idPath + `.github: github repository "github.com/acme/app": write owner/name, such as "acme/app"`,
		}},
		{"github repository leading slash", []string{"github: {repository: /acme}"}, []string{
			"policy.yaml:10: " + idPath + `.github: github repository "/acme": write owner/name, such as "acme/app"`,
		}},
		{"github repository trailing slash", []string{"github: {repository: acme/}"}, []string{
			"policy.yaml:10: " + idPath + `.github: github repository "acme/": write owner/name, such as "acme/app"`,
		}},
		{"github workflow with a ref", []string{"github:", "  repository: acme/app", "  workflow: .github/workflows/release.yml@refs/heads/main"}, []string{
			"policy.yaml:10: " + idPath + `.github: github workflow ".github/workflows/release.yml@refs/heads/main": write the file's path in the repository, such as ".github/workflows/release.yml" (the ref is "ref")`,
		}},
		{"github workflow absolute", []string{"github: {workflow: /.github/workflows/release.yml}"}, []string{
			"policy.yaml:10: " + idPath + `.github: github workflow "/.github/workflows/release.yml": write the file's path in the repository...`,
		}},
		{"github workflow empty segment", []string{"github: {repository: acme/app, workflow: .github//release.yml}"}, []string{
			"policy.yaml:10: " + idPath + `.github: github workflow: ".github//release.yml" has an empty path segment`,
		}},
		{"github ref bad **", []string{"github: {repository: acme/app, ref: refs/tags/v**}"}, []string{
			"policy.yaml:10: " + idPath + `.github: github ref: "refs/tags/v**": "**" must be a whole path segment`,
		}},
		{"github runner", []string{"github: {repository: acme/app, runner: GitHub-hosted}"}, []string{
			"policy.yaml:10: " + idPath + `.github: github runner "GitHub-hosted": want "github-hosted" or "self-hosted"`,
		}},
		{"github runner ubuntu", []string{"github: {repository: acme/app, runner: ubuntu-latest}"}, []string{
			"policy.yaml:10: " + idPath + `.github: github runner "ubuntu-latest": want "github-hosted" or "self-hosted"`,
		}},
		{"github unknown field", []string{"github:", "  repository: acme/app", "  workflows: .github/workflows/release.yml"}, []string{
			"policy.yaml:12: " + idPath + `.github: unknown field "workflows" (did you mean "workflow"?)`,
		}},
		{"github empty field", []string{"github:", "  repository: acme/app", `  ref: ""`}, []string{
			"policy.yaml:12: " + idPath + ".github.ref: must not be empty",
		}},
		{"github not a mapping", []string{"github: acme/app"}, []string{
			"policy.yaml:10: " + idPath + `.github: want a mapping of settings, got "acme/app"`,
			"policy.yaml:10: warning: " + idPath + anyWorkflow,
		}},
		{"github runner only, no subject: warns", []string{"github: {runner: github-hosted}"}, []string{
			"policy.yaml:10: warning: " + idPath + anyWorkflow,
		}},
		{"github ref only, no subject: warns", []string{"github: {ref: refs/tags/v*}"}, []string{
			"policy.yaml:10: warning: " + idPath + anyWorkflow,
		}},
		{"github and extensions errors together", []string{
			"github:",
			"  repository: acme",
			"extensions:",
			"  issuer: x",
			"  sourceRepositoryURIRegExp: '*'",
		}, []string{
			"policy.yaml:10: " + idPath + `.github: github repository "acme"...`,
			"policy.yaml:13: " + idPath + `.extensions.issuer: extension "issuer"...`,
			"policy.yaml:14: " + idPath + `.extensions.sourceRepositoryURIRegExp: extension "sourceRepositoryURIRegExp": bad regular expression (Go RE2 syntax): missing argument to repetition operator: ` + "`*`",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			want := tc.want
			if !slices.ContainsFunc(want, func(w string) bool { return strings.Contains(w, "pins no repository") }) {
				// The cases that are about something else pin no
				// repository either: expect that warning where it falls.
				want = withPinWarning(t, identityPolicy(tc.lines...), want)
			}
			checkProblems(t, identityPolicy(tc.lines...), nil, want)
		})
	}
}

// withPinWarning adds to want the "pins no repository" warning Lint gives
// for src, if it gives one, in line order.
func withPinWarning(t *testing.T, src string, want []string) []string {
	t.Helper()
	for _, p := range problemStrings(Lint([]byte(src), "policy.yaml", nil)) {
		if strings.Contains(p, "pins no repository") {
			out := append([]string{}, want...)
			i := 0
			for i < len(out) && lineOf(out[i]) <= lineOf(p) && !(lineOf(out[i]) == lineOf(p) && strings.Contains(out[i], ": warning: ")) {
				i++
			}
			return slices.Insert(out, i, p)
		}
	}
	return want
}

func lineOf(problem string) int {
	var n int
	fmt.Sscanf(strings.TrimPrefix(problem, "policy.yaml:"), "%d", &n)
	return n
}

// TestParseIdentityExtensions: what github: and extensions: say is in the
// compiled Identity, as written, and compiled.
func TestParseIdentityExtensions(t *testing.T) {
	p := mustLoad(t, y(
		"policies:",
		"  - name: p",
		"    images: [r.example/**]",
		"    authorities:",
		"      - name: ci",
		"        trustRoot: public-good",
		"        keyless:",
		"          identities:",
		"            - issuer: https://token.actions.githubusercontent.com",
		"              github:",
		"                repository: acme/app",
		"                workflow: .github/workflows/release.yml",
		"                ref: refs/tags/v*",
		"                runner: github-hosted",
		"              extensions:",
		"                sourceRepositoryOwnerURI: https://github.com/acme",
		"                buildSignerURIRegExp: ^https://github\\.com/acme/",
		"            - issuer: https://accounts.example",
		"              subject: s",
	), nil)
	if len(p.Warnings) != 0 {
		t.Errorf("Warnings = %v", p.Warnings)
	}
	ids := p.Policies[0].Authorities[0].Keyless.Identities
	if len(ids) != 2 {
		t.Fatalf("identities = %+v", ids)
	}
	id := ids[0]
	wantGH := &GitHubIdentity{Repository: "acme/app", Workflow: ".github/workflows/release.yml", Ref: "refs/tags/v*", Runner: "github-hosted"}
	wantExt := map[string]string{"sourceRepositoryOwnerURI": "https://github.com/acme", "buildSignerURIRegExp": `^https://github\.com/acme/`}
	if id.Issuer != "https://token.actions.githubusercontent.com" || id.Subject != "" || id.SubjectRegExp != "" ||
		!reflect.DeepEqual(id.GitHub, wantGH) || !maps.Equal(id.Extensions, wantExt) || !id.HasExtensions() {
		t.Errorf("identity = %+v, GitHub %+v", id, id.GitHub)
	}
	if id.github == nil || id.github.workflow == nil || id.github.ref == nil || len(id.exts) != 2 {
		t.Errorf("not compiled: github %+v, exts %+v", id.github, id.exts)
	}
	plain := ids[1]
	if plain.GitHub != nil || plain.Extensions != nil || plain.HasExtensions() || plain.ExtensionsMismatch(nil) != "" {
		t.Errorf("plain identity = %+v", plain)
	}
}

// attestDemo are the Fulcio extensions of a certificate GitHub issued to
// malancas/attest-demo's shared.yml, which calls GitHub's reusable
// attest.yml: the build signer is the reusable workflow, the build config
// the caller's.
func attestDemo() map[string]string {
	const sha = "8a2b2b0ad7aa05e9a0e2d8fb3b7d2f61c0a7e18d"
	return map[string]string{
		"githubWorkflowTrigger":               "push",
		"githubWorkflowSHA":                   sha,
		"githubWorkflowName":                  "Shared",
		"githubWorkflowRepository":            "malancas/attest-demo",
		"githubWorkflowRef":                   "refs/heads/main",
		"buildSignerURI":                      "https://github.com/github/artifact-attestations-workflows/.github/workflows/attest.yml@09b495c3f12c7881b3cc17209a327792065c1a1d",
		"buildSignerDigest":                   "09b495c3f12c7881b3cc17209a327792065c1a1d",
		"runnerEnvironment":                   "github-hosted",
		"sourceRepositoryURI":                 "https://github.com/malancas/attest-demo",
		"sourceRepositoryDigest":              sha,
		"sourceRepositoryRef":                 "refs/heads/main",
		"sourceRepositoryIdentifier":          "751212354",
		"sourceRepositoryOwnerURI":            "https://github.com/malancas",
		"sourceRepositoryOwnerIdentifier":     "12345678",
		"buildConfigURI":                      "https://github.com/malancas/attest-demo/.github/workflows/shared.yml@refs/heads/main",
		"buildConfigDigest":                   sha,
		"buildTrigger":                        "push",
		"runInvocationURI":                    "https://github.com/malancas/attest-demo/actions/runs/9386146423/attempts/1",
		"sourceRepositoryVisibilityAtSigning": "public",
	}
}

// with is attestDemo with changes: a value of "" deletes the extension.
func with(changes map[string]string) map[string]string {
	ext := attestDemo()
	for k, v := range changes {
		if v == "" {
			delete(ext, k)
		} else {
			ext[k] = v
		}
	}
	return ext
}

// TestExtensionsMismatch matches github: and extensions: against GitHub's
// certificates, for identities compiled by Parse and built by hand.
func TestExtensionsMismatch(t *testing.T) {
	const (
		demoRepo   = "https://github.com/malancas/attest-demo"
		demoConfig = demoRepo + "/.github/workflows/shared.yml@refs/heads/main"
		signer     = "https://github.com/github/artifact-attestations-workflows/.github/workflows/attest.yml@09b495c3f12c7881b3cc17209a327792065c1a1d"
	)
	type gh = GitHubIdentity
	tests := []struct {
		desc   string
		github *GitHubIdentity
		exts   map[string]string
		ext    map[string]string // the certificate's; nil for attestDemo()
		want   string            // "" to match
	}{
		{"nothing constrained", nil, nil, nil, ""},
		{"nothing constrained, no extensions", nil, nil, map[string]string{}, ""},

		// repository
		{"repository", &gh{Repository: "malancas/attest-demo"}, nil, nil, ""},
		{"another repository", &gh{Repository: "acme/app"}, nil, nil,
			"source repository is " + demoRepo + ", not https://github.com/acme/app"},
		{"repository prefix", &gh{Repository: "malancas/attest"}, nil, nil,
			"source repository is " + demoRepo + ", not https://github.com/malancas/attest"},
		{"repository is exact", &gh{Repository: "Malancas/Attest-Demo"}, nil, nil,
			"source repository is " + demoRepo + ", not https://github.com/Malancas/Attest-Demo"},
		{"repository of a longer name", &gh{Repository: "malancas/attest-demo"}, nil, with(map[string]string{"sourceRepositoryURI": demoRepo + "-fork"}),
			"source repository is " + demoRepo + "-fork, not " + demoRepo},
		{"no source repository", &gh{Repository: "malancas/attest-demo"}, nil, with(map[string]string{"sourceRepositoryURI": ""}),
			"source repository is (none), not " + demoRepo},
		{"no extensions at all", &gh{Repository: "malancas/attest-demo"}, nil, map[string]string{},
			"source repository is (none), not " + demoRepo},

		// workflow: the build config, never the build signer
		{"workflow", &gh{Repository: "malancas/attest-demo", Workflow: ".github/workflows/shared.yml"}, nil, nil, ""},
		{"workflow without repository", &gh{Workflow: ".github/workflows/shared.yml"}, nil, nil, ""},
		{"workflow glob", &gh{Workflow: ".github/workflows/*.yml"}, nil, nil, ""},
		{"workflow glob **", &gh{Workflow: ".github/**"}, nil, nil, ""},
		{"the reusable workflow signs as itself", &gh{Repository: "malancas/attest-demo", Workflow: ".github/workflows/attest.yml"}, nil, nil,
			"build config is " + demoConfig + ", not workflow .github/workflows/attest.yml of " + demoRepo},
		{"the reusable workflow, without repository", &gh{Workflow: ".github/workflows/attest.yml"}, nil, nil,
			"build config is " + demoConfig + ", not workflow .github/workflows/attest.yml of " + demoRepo},
		{"file name only", &gh{Workflow: "shared.yml"}, nil, nil,
			"build config is " + demoConfig + ", not workflow shared.yml of " + demoRepo},
		{"glob within one segment", &gh{Workflow: ".github/*.yml"}, nil, nil,
			"build config is " + demoConfig + ", not workflow .github/*.yml of " + demoRepo},
		{"build config of another repository, same path", &gh{Workflow: ".github/workflows/shared.yml"}, nil,
			with(map[string]string{"buildConfigURI": "https://github.com/evil/attest-demo/.github/workflows/shared.yml@refs/heads/main"}),
			"build config is https://github.com/evil/attest-demo/.github/workflows/shared.yml@refs/heads/main, not workflow .github/workflows/shared.yml of " + demoRepo},
		{"build config of another repository, with repository", &gh{Repository: "malancas/attest-demo", Workflow: ".github/workflows/shared.yml"}, nil,
			with(map[string]string{"buildConfigURI": "https://github.com/evil/attest-demo/.github/workflows/shared.yml@refs/heads/main"}),
			"build config is https://github.com/evil/attest-demo/.github/workflows/shared.yml@refs/heads/main, not workflow .github/workflows/shared.yml of " + demoRepo},
		{"build config of a repository sharing the prefix", &gh{Workflow: ".github/workflows/shared.yml"}, nil,
			with(map[string]string{"buildConfigURI": demoRepo + "-fork/.github/workflows/shared.yml@refs/heads/main"}),
			"build config is " + demoRepo + "-fork/.github/workflows/shared.yml@refs/heads/main, not workflow .github/workflows/shared.yml of " + demoRepo},
		{"the signer's workflow as build config", &gh{Workflow: ".github/workflows/attest.yml"}, nil,
			with(map[string]string{"buildConfigURI": signer}),
			"build config is " + signer + ", not workflow .github/workflows/attest.yml of " + demoRepo},
		{"build config without a ref", &gh{Workflow: ".github/workflows/shared.yml"}, nil,
			with(map[string]string{"buildConfigURI": demoRepo + "/.github/workflows/shared.yml"}),
			"build config is " + demoRepo + "/.github/workflows/shared.yml, not workflow .github/workflows/shared.yml of " + demoRepo},
		{"no build config", &gh{Workflow: ".github/workflows/shared.yml"}, nil, with(map[string]string{"buildConfigURI": ""}),
			"build config is (none), not workflow .github/workflows/shared.yml of " + demoRepo},
		{"no source repository for the workflow", &gh{Workflow: ".github/workflows/shared.yml"}, nil, with(map[string]string{"sourceRepositoryURI": ""}),
			"build config is " + demoConfig + ", not workflow .github/workflows/shared.yml of (none)"},
		{"workflow on a tag", &gh{Workflow: ".github/workflows/shared.yml"}, nil,
			with(map[string]string{"buildConfigURI": demoRepo + "/.github/workflows/shared.yml@refs/tags/v1.2.3"}), ""},
		// A ref may hold "@" (a changesets tag, a Dependabot branch): the
		// path ends at the first one.
		{"workflow on a ref with @", &gh{Workflow: ".github/workflows/shared.yml"}, nil,
			with(map[string]string{"buildConfigURI": demoRepo + "/.github/workflows/shared.yml@refs/tags/@acme/app@1.2.3"}), ""},
		{"workflow on a dependabot branch", &gh{Workflow: ".github/workflows/shared.yml"}, nil,
			with(map[string]string{"buildConfigURI": demoRepo + "/.github/workflows/shared.yml@refs/heads/dependabot/npm_and_yarn/@babel/core-7.22.0"}), ""},

		// ref
		{"ref exact", &gh{Ref: "refs/heads/main"}, nil, nil, ""},
		{"ref glob", &gh{Ref: "refs/heads/*"}, nil, nil, ""},
		{"ref glob **", &gh{Ref: "refs/**"}, nil, nil, ""},
		{"ref of tags", &gh{Ref: "refs/tags/v*"}, nil, nil, "source ref is refs/heads/main, not refs/tags/v*"},
		{"ref prefix", &gh{Ref: "refs/heads/mai"}, nil, nil, "source ref is refs/heads/main, not refs/heads/mai"},
		{"ref * within one segment", &gh{Ref: "refs/*"}, nil, nil, "source ref is refs/heads/main, not refs/*"},
		{"tag ref", &gh{Ref: "refs/tags/v*"}, nil, with(map[string]string{"sourceRepositoryRef": "refs/tags/v1.2.3"}), ""},
		{"tag ref, branch glob", &gh{Ref: "refs/heads/*"}, nil, with(map[string]string{"sourceRepositoryRef": "refs/tags/v1.2.3"}),
			"source ref is refs/tags/v1.2.3, not refs/heads/*"},
		{"tag ref with a slash", &gh{Ref: "refs/tags/v*"}, nil, with(map[string]string{"sourceRepositoryRef": "refs/tags/v1/evil"}),
			"source ref is refs/tags/v1/evil, not refs/tags/v*"},
		{"no ref", &gh{Ref: "refs/heads/*"}, nil, with(map[string]string{"sourceRepositoryRef": ""}),
			"source ref is (none), not refs/heads/*"},

		// runner
		{"runner", &gh{Runner: "github-hosted"}, nil, nil, ""},
		{"self-hosted runner", &gh{Runner: "self-hosted"}, nil, nil, "runner environment is github-hosted, not self-hosted"},
		{"no runner", &gh{Runner: "github-hosted"}, nil, with(map[string]string{"runnerEnvironment": ""}),
			"runner environment is (none), not github-hosted"},

		{"all of github", &gh{Repository: "malancas/attest-demo", Workflow: ".github/workflows/shared.yml", Ref: "refs/heads/*", Runner: "github-hosted"}, nil, nil, ""},
		{"all of github, first mismatch", &gh{Repository: "malancas/attest-demo", Workflow: ".github/workflows/shared.yml", Ref: "refs/tags/*", Runner: "self-hosted"}, nil, nil,
			"source ref is refs/heads/main, not refs/tags/*"},

		// extensions
		{"extension exact", nil, map[string]string{"sourceRepositoryOwnerURI": "https://github.com/malancas"}, nil, ""},
		{"the signer, by extension", nil, map[string]string{"buildSignerURI": signer, "buildTrigger": "push"}, nil, ""},
		{"extension differs", nil, map[string]string{"sourceRepositoryOwnerURI": "https://github.com/acme"}, nil,
			"extension sourceRepositoryOwnerURI is https://github.com/malancas, not https://github.com/acme"},
		{"extension is exact", nil, map[string]string{"sourceRepositoryVisibilityAtSigning": "Public"}, nil,
			"extension sourceRepositoryVisibilityAtSigning is public, not Public"},
		{"extension RegExp", nil, map[string]string{"buildSignerURIRegExp": `^https://github\.com/github/artifact-attestations-workflows/`}, nil, ""},
		{"extension RegExp mismatch", nil, map[string]string{"sourceRepositoryURIRegExp": `^https://github\.com/acme/`}, nil,
			`extension sourceRepositoryURI is ` + demoRepo + `, which does not match ^https://github\.com/acme/`},
		{"extension RegExp is unanchored", nil, map[string]string{"sourceRepositoryURIRegExp": `attest-demo`}, nil, ""},
		{"one of several extensions differs", nil, map[string]string{"buildTrigger": "push", "runnerEnvironment": "self-hosted"}, nil,
			"extension runnerEnvironment is github-hosted, not self-hosted"},
		{"missing extension", nil, map[string]string{"buildTrigger": "push"}, with(map[string]string{"buildTrigger": ""}),
			"extension buildTrigger is (none), not push"},
		{"missing extension, RegExp .*", nil, map[string]string{"buildTriggerRegExp": ".*"}, with(map[string]string{"buildTrigger": ""}),
			"extension buildTrigger is (none), which does not match .*"},
		{"missing extension, RegExp ^$", nil, map[string]string{"buildTriggerRegExp": "^$"}, with(map[string]string{"buildTrigger": ""}),
			"extension buildTrigger is (none), which does not match ^$"},
		{"empty extension, RegExp .*", nil, map[string]string{"runnerEnvironmentRegExp": ".*"}, map[string]string{"runnerEnvironment": ""},
			"extension runnerEnvironment is (none), which does not match .*"},
		{"no extensions, RegExp .*", nil, map[string]string{"runnerEnvironmentRegExp": ".*"}, map[string]string{},
			"extension runnerEnvironment is (none), which does not match .*"},

		// both
		{"github and extensions", &gh{Repository: "malancas/attest-demo"}, map[string]string{"buildSignerURI": signer}, nil, ""},
		{"github matches, extensions do not", &gh{Repository: "malancas/attest-demo"}, map[string]string{"buildTrigger": "release"}, nil,
			"extension buildTrigger is push, not release"},
		{"github is checked first", &gh{Repository: "acme/app"}, map[string]string{"buildTrigger": "release"}, nil,
			"source repository is " + demoRepo + ", not https://github.com/acme/app"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ext := tc.ext
			if ext == nil {
				ext = attestDemo()
			}
			byHand := Identity{Issuer: "https://token.actions.githubusercontent.com", GitHub: tc.github, Extensions: tc.exts}
			if got := byHand.ExtensionsMismatch(ext); got != tc.want {
				t.Errorf("by hand: ExtensionsMismatch = %q, want %q", got, tc.want)
			}
			if byHand.HasExtensions() != (tc.github != nil || len(tc.exts) > 0) {
				t.Errorf("HasExtensions = %v", byHand.HasExtensions())
			}
			if tc.github == nil && len(tc.exts) == 0 {
				return // Parse needs a subject then
			}
			compiled := parsedIdentity(t, tc.github, tc.exts)
			if got := compiled.ExtensionsMismatch(ext); got != tc.want {
				t.Errorf("parsed: ExtensionsMismatch = %q, want %q", got, tc.want)
			}
		})
	}
}

// parsedIdentity parses a policy whose identity has github and exts, and
// returns it.
func parsedIdentity(t *testing.T, github *GitHubIdentity, exts map[string]string) Identity {
	t.Helper()
	var lines []string
	if g := github; g != nil {
		lines = append(lines, "github:")
		for k, v := range map[string]string{"repository": g.Repository, "workflow": g.Workflow, "ref": g.Ref, "runner": g.Runner} {
			if v != "" {
				lines = append(lines, "  "+k+": '"+v+"'")
			}
		}
	}
	if len(exts) > 0 {
		lines = append(lines, "extensions:")
		for k, v := range exts {
			lines = append(lines, "  "+k+": '"+v+"'")
		}
	}
	p, err := Parse([]byte(identityPolicy(lines...)), "policy.yaml", nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	id := p.Policies[0].Authorities[0].Keyless.Identities[0]
	if (github != nil) != (id.github != nil) || len(exts) != len(id.exts) {
		t.Fatalf("identity not compiled: %+v", id)
	}
	return id
}

// TestExtensionsMismatchByHandInvalid: an identity built by hand with
// constraints that do not compile never matches.
func TestExtensionsMismatchByHandInvalid(t *testing.T) {
	tests := []struct {
		id   Identity
		want string
	}{
		{Identity{GitHub: &GitHubIdentity{Repository: "https://github.com/malancas/attest-demo"}}, `github repository "https://github.com/malancas/attest-demo": write owner/name`},
		{Identity{GitHub: &GitHubIdentity{Workflow: ".github/workflows/shared.yml@refs/heads/main"}}, `github workflow ".github/workflows/shared.yml@refs/heads/main"`},
		{Identity{GitHub: &GitHubIdentity{Runner: "any"}}, `github runner "any"`},
		{Identity{Extensions: map[string]string{"issuer": "https://token.actions.githubusercontent.com"}}, `extension "issuer": the identity's issuer is its "issuer"`},
		{Identity{Extensions: map[string]string{"sourceRepositoryURL": "https://github.com/malancas/attest-demo"}}, `unknown Fulcio extension "sourceRepositoryURL" (known: githubWorkflowTrigger, `},
		{Identity{Extensions: map[string]string{"sourceRepositoryURIRegExp": "("}}, `extension "sourceRepositoryURIRegExp": bad regular expression (Go RE2 syntax): missing closing )`},
	}
	for _, tc := range tests {
		if got := tc.id.ExtensionsMismatch(attestDemo()); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%+v: ExtensionsMismatch = %q, want %q...", tc.id, got, tc.want)
		}
	}
}

// TestFulcioExtensionNames: every name is accepted by extensions:, with
// and without RegExp, and "issuer" is not among them.
func TestFulcioExtensionNames(t *testing.T) {
	for _, name := range FulcioExtensions {
		if name == "issuer" || strings.HasSuffix(name, "RegExp") {
			t.Errorf("FulcioExtensions has %q", name)
		}
		for _, key := range []string{name, name + "RegExp"} {
			if _, err := load(t, identityPolicy("extensions: {"+key+": ^x$}"), nil); err != nil {
				t.Errorf("%s: %v", key, err)
			}
		}
	}
}

// TestLintPinsRepository: an identity whose github:/extensions: pin no
// repository (a workflow path alone matches that path in any repository)
// is warned about; one pinning it by any field is not; github: under
// another issuer is warned about.
func TestLintPinsRepository(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		warn  string // "" for none
	}{
		{[]string{"github: {workflow: .github/workflows/release.yml}"}, "pins no repository"},
		{[]string{"extensions: {runnerEnvironment: github-hosted}"}, "pins no repository"},
		{[]string{"github: {repository: acme/app}"}, ""},
		{[]string{"extensions: {sourceRepositoryOwnerURI: https://github.com/acme}"}, ""},
		{[]string{"extensions: {buildConfigURIRegExp: '^https://github\\.com/acme/'}"}, ""},
		{[]string{"subjectRegExp: ^https://github\\.com/acme/", "github: {ref: refs/tags/v*}"}, ""},
	} {
		src := identityPolicy(tc.lines...)
		var got []string
		for _, p := range problemStrings(Lint([]byte(src), "policy.yaml", nil)) {
			if strings.Contains(p, "pins no repository") {
				got = append(got, p)
			}
		}
		if (tc.warn == "") != (len(got) == 0) {
			t.Errorf("%q: pin warnings %q, want %q", tc.lines, got, tc.warn)
		}
	}
	other := strings.Replace(identityPolicy("github: {repository: acme/app}"), "https://token.actions.githubusercontent.com", "https://issuer.example", 1)
	if ps := problemStrings(Lint([]byte(other), "policy.yaml", nil)); !slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, "not GitHub Actions'") }) {
		t.Errorf("github: under another issuer: %q", ps)
	}
}
