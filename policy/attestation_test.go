package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestParseAttestations parses the schema of the issue: every field is in
// the compiled Authority and Identity as written, with its line.
func TestParseAttestations(t *testing.T) {
	p := mustLoad(t, y(
		"policies:", // 1
		"  - name: p",
		"    images: [ghcr.io/acme/**]",
		"    authorities:",
		"      - name: ci", // 5
		"        trustRoot: public-good",
		"        keyless:",
		"          identities:",
		"            - issuer: https://token.actions.githubusercontent.com",
		"              github:", // 10
		"                repository: acme/app",
		"                workflow: .github/workflows/release.yml",
		"                ref: refs/tags/v*",
		"                runner: github-hosted",
		"              extensions:", // 15
		"                sourceRepositoryOwnerURI: https://github.com/acme",
		"        attestations:",
		"          - name: provenance",
		"            predicateType: slsaprovenance",
		`            condition: 'predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app"'`, // 20
		"            maxAge: 720h",
		"          - name: sbom",
		"            predicateType: https://example.com/sbom/v1",
	), nil)
	if len(p.Warnings) != 0 {
		t.Errorf("Warnings = %v", p.Warnings)
	}
	a := p.Policies[0].Authorities[0]
	if len(a.Attestations) != 2 {
		t.Fatalf("Attestations = %+v", a.Attestations)
	}
	prov, sbom := a.Attestations[0], a.Attestations[1]
	if prov.Name != "provenance" || prov.PredicateType != "slsaprovenance" || prov.MaxAge != 720*time.Hour || prov.Line != 18 ||
		prov.Condition != `predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app"` {
		t.Errorf("provenance = %+v", prov)
	}
	if prov.prog == nil || !reflect.DeepEqual(prov.uris, PredicateAliases["slsaprovenance"]) {
		t.Errorf("provenance not compiled: %+v", prov)
	}
	if sbom.Name != "sbom" || sbom.PredicateType != "https://example.com/sbom/v1" || sbom.Condition != "" || sbom.MaxAge != 0 || sbom.Line != 22 || sbom.prog != nil {
		t.Errorf("sbom = %+v", sbom)
	}
	if got := prov.Describe(); got != `"provenance" (slsaprovenance)` {
		t.Errorf("Describe() = %q", got)
	}
	id := a.Keyless.Identities[0]
	wantGH := &GitHubIdentity{Repository: "acme/app", Workflow: ".github/workflows/release.yml", Ref: "refs/tags/v*", Runner: "github-hosted"}
	if id.Subject != "" || id.SubjectRegExp != "" || !reflect.DeepEqual(id.GitHub, wantGH) ||
		!maps.Equal(id.Extensions, map[string]string{"sourceRepositoryOwnerURI": "https://github.com/acme"}) {
		t.Errorf("identity = %+v, GitHub %+v", id, id.GitHub)
	}
	// The policy's own example, end to end.
	ext := map[string]string{
		"sourceRepositoryURI":      "https://github.com/acme/app",
		"sourceRepositoryOwnerURI": "https://github.com/acme",
		"buildConfigURI":           "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3",
		"sourceRepositoryRef":      "refs/tags/v1.2.3",
		"runnerEnvironment":        "github-hosted",
	}
	if why := id.ExtensionsMismatch(ext); why != "" {
		t.Errorf("ExtensionsMismatch = %q", why)
	}
	if err := prov.Holds(&Statement{Predicate: slsaPredicate(t)}, time.Now()); err != nil {
		t.Errorf("Holds = %v", err)
	}
}

// attestationPolicy is a keyless policy whose authority has the lines
// given, from line 9 on.
func attestationPolicy(lines ...string) string {
	src := []string{
		"policies:", // 1
		"  - name: p",
		"    images: [r.example/**]",
		"    authorities:",
		"      - name: ci", // 5
		"        trustRoot: public-good",
		"        keyless:",
		"          identities: [{issuer: https://token.actions.githubusercontent.com, subject: s}]",
	}
	for _, l := range lines {
		src = append(src, "        "+l)
	}
	return y(src...)
}

const atPath = "policies[0].authorities[0].attestations"

// TestLintAttestations: every mistake in attestations: is reported at its
// line and path.
func TestLintAttestations(t *testing.T) {
	const aliases = "(slsaprovenance, spdx, cyclonedx, vuln, openvex, link)"
	tests := []struct {
		desc  string
		lines []string
		want  []string
	}{
		{"every alias and a URI", []string{
			"attestations:",
			"  - {name: a, predicateType: slsaprovenance}",
			"  - {name: b, predicateType: spdx}",
			"  - {name: c, predicateType: cyclonedx}",
			"  - {name: d, predicateType: vuln}",
			"  - {name: e, predicateType: openvex}",
			"  - {name: f, predicateType: link}",
			"  - {name: g, predicateType: 'https://example.com/predicate/v1'}",
			"  - {name: h, predicateType: 'urn:example:predicate'}",
		}, nil},
		{"condition and maxAge", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: spdx",
			`    condition: 'predicate.packages.exists(p, p.name == "openssl") && now > timestamp("2024-01-01T00:00:00Z")'`,
			"    maxAge: 1h30m",
		}, nil},
		{"dyn condition", []string{"attestations: [{name: a, predicateType: spdx, condition: predicate.ok}]"}, nil},
		{"YAML true is the CEL true", []string{"attestations: [{name: a, predicateType: spdx, condition: true}]"}, nil},

		{"unknown alias", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: slsa",
		}, []string{
			"policy.yaml:11: " + atPath + `[0].predicateType: predicate type "slsa" is neither an alias ` + aliases + " nor a URI",
		}},
		{"aliases are case-sensitive", []string{"attestations: [{name: a, predicateType: SPDX}]"}, []string{
			"policy.yaml:9: " + atPath + `[0].predicateType: predicate type "SPDX" is neither an alias ` + aliases + " nor a URI",
		}},
		{"cosign's slsaprovenance1 is not an alias", []string{"attestations: [{name: a, predicateType: slsaprovenance1}]"}, []string{
			"policy.yaml:9: " + atPath + `[0].predicateType: predicate type "slsaprovenance1" is neither an alias ` + aliases + " nor a URI",
		}},
		{"CEL syntax error", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: slsaprovenance",
			"    condition: 'predicate.x =='",
		}, []string{
			"policy.yaml:12: " + atPath + "[0].condition: condition is not valid CEL: ERROR: <input>:1:15: Syntax error: mismatched input '<EOF>'...",
		}},
		{"CEL undeclared variable", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: slsaprovenance",
			"    condition: 'statement.predicate.x == 1'",
		}, []string{
			"policy.yaml:12: " + atPath + "[0].condition: condition is not valid CEL: ERROR: <input>:1:1: undeclared reference to 'statement'...",
		}},
		{"CEL type error: returns int", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: slsaprovenance",
			"    condition: '1 + 1'",
		}, []string{
			"policy.yaml:12: " + atPath + "[0].condition: condition returns int, not bool",
		}},
		{"CEL type error: no overload", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: slsaprovenance",
			"    condition: 'predicateType == 1'",
		}, []string{
			"policy.yaml:12: " + atPath + "[0].condition: condition is not valid CEL: ERROR: <input>:1:15: found no matching overload for '_==_' applied to '(string, int)'...",
		}},
		{"non-bool field: predicateType", []string{"attestations: [{name: a, predicateType: spdx, condition: predicateType}]"}, []string{
			"policy.yaml:9: " + atPath + "[0].condition: condition returns string, not bool",
		}},
		{"non-bool field: subject", []string{"attestations: [{name: a, predicateType: spdx, condition: subject}]"}, []string{
			"policy.yaml:9: " + atPath + "[0].condition: condition returns list(dyn), not bool",
		}},
		{"non-bool field: now", []string{"attestations: [{name: a, predicateType: spdx, condition: now}]"}, []string{
			"policy.yaml:9: " + atPath + "[0].condition: condition returns google.protobuf.Timestamp, not bool",
		}},
		{"condition not a string", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: spdx",
			"    condition: [predicate.ok]",
		}, []string{
			"policy.yaml:12: " + atPath + "[0].condition: want a string, got a list",
		}},
		{"empty condition", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: spdx",
			`    condition: ""`,
		}, []string{
			"policy.yaml:12: " + atPath + "[0].condition: must not be empty",
		}},
		{"duplicate names", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: spdx",
			"  - name: b",
			"    predicateType: spdx",
			"  - name: a",
			"    predicateType: slsaprovenance",
		}, []string{
			"policy.yaml:14: " + atPath + `[2].name: attestation name "a" is already used by ` + atPath + "[0] (line 10)",
		}},
		{"empty list", []string{"attestations: []"}, []string{
			"policy.yaml:9: " + atPath + `: must list at least one attestation (or leave "attestations" out to require an image signature)`,
		}},
		{"null list", []string{"attestations:"}, []string{
			"policy.yaml:9: " + atPath + `: must list at least one attestation (or leave "attestations" out to require an image signature)`,
		}},
		{"not a list", []string{"attestations: {name: a, predicateType: spdx}"}, []string{
			"policy.yaml:9: " + atPath + ": want a list, got a mapping",
		}},
		{"maxAge 0", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: spdx",
			"    maxAge: 0",
		}, []string{
			"policy.yaml:12: " + atPath + `[0].maxAge: must be greater than 0 (leave it out for no limit), got "0"`,
		}},
		{"maxAge -1h", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: spdx",
			"    maxAge: -1h",
		}, []string{
			"policy.yaml:12: " + atPath + `[0].maxAge: must be greater than 0 (leave it out for no limit), got "-1h"`,
		}},
		{"maxAge 30", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: spdx",
			"    maxAge: 30",
		}, []string{
			"policy.yaml:12: " + atPath + `[0].maxAge: invalid duration "30": a number needs a unit (want a duration such as "30s", "10m" or "1h30m")`,
		}},
		{"maxAge 30d", []string{"attestations: [{name: a, predicateType: spdx, maxAge: 30d}]"}, []string{
			"policy.yaml:9: " + atPath + `[0].maxAge: invalid duration "30d" (want a duration such as "30s", "10m" or "1h30m")`,
		}},
		{"maxAge null", []string{"attestations: [{name: a, predicateType: spdx, maxAge: null}]"}, []string{
			"policy.yaml:9: " + atPath + `[0].maxAge: want a duration such as "30s", got nothing`,
		}},
		{"missing name", []string{
			"attestations:",
			"  - predicateType: spdx",
		}, []string{
			"policy.yaml:10: " + atPath + `[0]: missing required field "name"`,
		}},
		// Missing predicateType is left out: see TestLintMissingPredicateType.
		{"misspelt field", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: spdx",
			"    conditon: predicate.ok",
		}, []string{
			"policy.yaml:12: " + atPath + `[0]: unknown field "conditon" (did you mean "condition"?)`,
		}},
		{"every entry is checked", []string{
			"attestations:",
			"  - name: a",
			"    predicateType: nope",
			"  - name: b",
			"    predicateType: spdx",
			"    condition: '1'",
			"    maxAge: 0s",
		}, []string{
			"policy.yaml:11: " + atPath + `[0].predicateType: predicate type "nope" is neither an alias ` + aliases + " nor a URI",
			"policy.yaml:14: " + atPath + "[1].condition: condition returns int, not bool",
			"policy.yaml:15: " + atPath + `[1].maxAge: must be greater than 0 (leave it out for no limit), got "0s"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			checkProblems(t, attestationPolicy(tc.lines...), nil, tc.want)
		})
	}
}

// TestLintMissingPredicateType: a missing predicateType is reported once,
// on the entry's line.
func TestLintMissingPredicateType(t *testing.T) {
	problems := problemStrings(Lint([]byte(attestationPolicy(
		"attestations:",
		"  - name: a",
		"    condition: predicate.ok",
	)), "policy.yaml", nil))
	want := "policy.yaml:10: " + atPath + `[0]: missing required field "predicateType"`
	if len(problems) != 1 || problems[0] != want {
		t.Errorf("problems = %q, want only %q", problems, want)
	}
}

// TestAttestationNamesPerAuthority: attestation names are unique within
// an authority, not across authorities.
func TestAttestationNamesPerAuthority(t *testing.T) {
	p := mustLoad(t, y(
		"policies:",
		"  - name: p",
		"    images: [r.example/**]",
		"    authorities:",
		"      - name: a",
		"        trustRoot: public-good",
		"        keyless: {identities: [{issuer: i, subject: s}]}",
		"        attestations: [{name: provenance, predicateType: slsaprovenance}]",
		"      - name: b",
		"        trustRoot: public-good",
		"        keyless: {identities: [{issuer: i, subject: t}]}",
		"        attestations: [{name: provenance, predicateType: slsaprovenance}]",
	), nil)
	if len(p.Warnings) != 0 || p.Policies[0].Authorities[1].Attestations[0].Line != 12 {
		t.Errorf("Warnings = %v, attestations %+v", p.Warnings, p.Policies[0].Authorities[1].Attestations)
	}
}

// TestLintMaxAgeWithoutSigningTime: a key authority has a verified
// signing time only from a trust root (an RFC 3161 timestamp or a log
// entry), so maxAge without one warns.
func TestLintMaxAgeWithoutSigningTime(t *testing.T) {
	files := map[string]string{
		"cosign.pub":        newKey(t, "p256"),
		"trusted_root.json": `{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`,
	}
	const unused = `policy.yaml:1: warning: trustRoots[0].name: trust root "corp" is not used by any authority`
	keyPolicy := func(lines ...string) string {
		src := []string{
			"trustRoots: [{name: corp, trustedRootFile: trusted_root.json}]", // 1
			"policies:",
			"  - name: p",
			"    images: [r.example/**]",
			"    authorities:", // 5
			"      - name: release",
			"        key: {path: cosign.pub}",
		}
		for _, l := range lines {
			src = append(src, "        "+l)
		}
		return y(src...)
	}
	tests := []struct {
		desc  string
		src   string
		files map[string]string
		want  []string
	}{
		{"key without trustRoot", keyPolicy(
			"attestations:",
			"  - name: a",
			"    predicateType: slsaprovenance",
			"    maxAge: 720h",
			"  - name: b",
			"    predicateType: spdx",
		), files, []string{
			unused,
			"policy.yaml:11: warning: " + atPath + "[0].maxAge: a key authority without a trustRoot has no verified signing time (RFC 3161 timestamp or Rekor entry), so this attestation never passes; name the trustRoot of your timestamp authority or log",
		}},
		{"key with trustRoot", keyPolicy(
			"trustRoot: corp",
			"attestations: [{name: a, predicateType: slsaprovenance, maxAge: 720h}]",
		), files, nil},
		{"key with requireTlog: the public-good log", keyPolicy(
			"requireTlog: true",
			"attestations: [{name: a, predicateType: slsaprovenance, maxAge: 720h}]",
		), files, []string{
			unused,
			"policy.yaml:6: warning: policies[0].authorities[0]: no trustRoot: the transparency log entry is checked against the public-good Sigstore instance, whose trusted root is fetched via TUF over the internet",
		}},
		{"key without maxAge", keyPolicy(
			"attestations: [{name: a, predicateType: slsaprovenance}]",
		), files, []string{unused}},
		{"keyless", attestationPolicy(
			"attestations: [{name: a, predicateType: slsaprovenance, maxAge: 720h}]",
		), nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			checkProblems(t, tc.src, tc.files, tc.want)
		})
	}
}

// TestNewAttestation: what Parse checks, NewAttestation does for callers
// that build a Policy by hand.
func TestNewAttestation(t *testing.T) {
	tests := []struct {
		predicateType, condition string
		maxAge                   time.Duration
		err                      string // "" for none; else a prefix
	}{
		{"slsaprovenance", "", 0, ""},
		{"https://example.com/p", `predicate.x == "y"`, time.Hour, ""},
		{"provenance", "", 0, `predicate type "provenance" is neither an alias (slsaprovenance, spdx, cyclonedx, vuln, openvex, link) nor a URI`},
		{"", "", 0, `predicate type "" is neither an alias`},
		{"spdx", "", -time.Second, "maxAge -1s is negative"},
		{"spdx", "predicate.x ==", 0, "condition is not valid CEL: "},
		{"spdx", "'x'", 0, "condition returns string, not bool"},
	}
	for _, tc := range tests {
		a, err := NewAttestation("n", tc.predicateType, tc.condition, tc.maxAge)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("NewAttestation(%q, %q, %v) = %v", tc.predicateType, tc.condition, tc.maxAge, err)
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
			t.Errorf("NewAttestation(%q, %q, %v) = %v, want %q", tc.predicateType, tc.condition, tc.maxAge, err, tc.err)
		case err == nil && (a.Name != "n" || a.PredicateType != tc.predicateType || a.Condition != tc.condition || a.MaxAge != tc.maxAge):
			t.Errorf("NewAttestation = %+v", a)
		}
	}
}

// TestMatchesPredicateType: each alias matches the URIs it stands for
// (spdx also versioned), a URI only itself; compiled or built by hand.
func TestMatchesPredicateType(t *testing.T) {
	tests := []struct {
		predicateType string
		match, not    []string
	}{
		{"slsaprovenance",
			[]string{"https://slsa.dev/provenance/v0.2", "https://slsa.dev/provenance/v1"},
			[]string{"https://slsa.dev/provenance/v0.1", "https://slsa.dev/provenance/v1.0", "https://slsa.dev/provenance/v1/", "https://slsa.dev/provenance", "slsaprovenance", "https://SLSA.dev/provenance/v1", ""}},
		{"spdx",
			[]string{"https://spdx.dev/Document", "https://spdx.dev/Document/v2.3", "https://spdx.dev/Document/v2.2", "https://spdx.dev/Document/v3.0"},
			[]string{"https://spdx.dev/DocumentX", "https://spdx.dev/Document/", "https://spdx.dev/Document/v", "https://spdx.dev/Document/2.3", "https://spdx.dev/document", "https://spdx.dev/Documents/v2.3", "spdx", "https://spdx.dev/Document.v2.3", "http://spdx.dev/Document"}},
		{"cyclonedx",
			[]string{"https://cyclonedx.org/bom"},
			[]string{"https://cyclonedx.org/bom/v1.4", "https://cyclonedx.org/bomb", "cyclonedx", "https://spdx.dev/Document"}},
		{"vuln",
			[]string{"https://cosign.sigstore.dev/attestation/vuln/v1"},
			[]string{"https://cosign.sigstore.dev/attestation/vuln/v2", "https://cosign.sigstore.dev/attestation/v1", "vuln"}},
		{"openvex",
			[]string{"https://openvex.dev/ns"},
			[]string{"https://openvex.dev/ns/v0.2.0", "https://openvex.dev/ns/", "openvex"}},
		{"link",
			[]string{"https://in-toto.io/Link/v1"},
			[]string{"https://in-toto.io/Link/v0.3", "https://in-toto.io/link/v1", "link"}},
		{"https://example.com/predicate/v1",
			[]string{"https://example.com/predicate/v1"},
			[]string{"https://example.com/predicate/v1/", "https://example.com/predicate/v1.0", "https://example.com/predicate", "https://example.com/predicate/V1", " https://example.com/predicate/v1", "https://example.com/predicate/v1/v2"}},
		{"https://example.com/predicate",
			[]string{"https://example.com/predicate"},
			[]string{"https://example.com/predicate/v1", "https://example.com/predicateX"}},
	}
	for _, tc := range tests {
		compiled, err := NewAttestation("a", tc.predicateType, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		byHand := &Attestation{Name: "a", PredicateType: tc.predicateType}
		for _, a := range []*Attestation{compiled, byHand} {
			for _, pt := range tc.match {
				if !a.MatchesPredicateType(pt) {
					t.Errorf("%s does not match %q", tc.predicateType, pt)
				}
			}
			for _, pt := range tc.not {
				if a.MatchesPredicateType(pt) {
					t.Errorf("%s matches %q", tc.predicateType, pt)
				}
			}
		}
	}
	// A hand-built attestation of an unknown type matches nothing.
	if (&Attestation{PredicateType: "nope"}).MatchesPredicateType("nope") {
		t.Error("unknown predicate type matches itself")
	}
	// Every alias resolves, and is listed in messages.
	for alias := range PredicateAliases {
		if _, err := NewAttestation("a", alias, "", 0); err != nil {
			t.Errorf("alias %s: %v", alias, err)
		}
	}
}

// slsaV1 is a SLSA v1 provenance predicate as GitHub's
// actions/attest-build-provenance writes it.
const slsaV1 = `{
  "buildDefinition": {
    "buildType": "https://actions.github.io/buildtypes/workflow/v1",
    "externalParameters": {
      "workflow": {
        "ref": "refs/tags/v1.2.3",
        "repository": "https://github.com/acme/app",
        "path": ".github/workflows/release.yml"
      }
    },
    "internalParameters": {
      "github": {
        "event_name": "push",
        "repository_id": "751212354",
        "repository_owner_id": "12345678",
        "runner_environment": "github-hosted"
      }
    },
    "resolvedDependencies": [
      {
        "uri": "git+https://github.com/acme/app@refs/tags/v1.2.3",
        "digest": {"gitCommit": "8a2b2b0ad7aa05e9a0e2d8fb3b7d2f61c0a7e18d"}
      }
    ]
  },
  "runDetails": {
    "builder": {"id": "https://github.com/actions/runner/github-hosted"},
    "metadata": {"invocationId": "https://github.com/acme/app/actions/runs/9386146423/attempts/1"}
  }
}`

const subjectDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// decodeJSON decodes s as a Statement's fields are: into any.
func decodeJSON(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func slsaPredicate(t testing.TB) any { return decodeJSON(t, slsaV1) }

// TestHolds evaluates conditions over realistic statements: a missing
// field, an index out of range or a result that is not a bool is an error,
// never true (nor ErrConditionFalse).
func TestHolds(t *testing.T) {
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	slsa := &Statement{
		PredicateType: "https://slsa.dev/provenance/v1",
		Predicate:     slsaPredicate(t),
		Subject:       decodeJSON(t, `[{"name": "ghcr.io/acme/app", "digest": {"sha256": "`+subjectDigest+`"}}]`).([]any),
		Signer: StatementSigner{
			Issuer:  "https://token.actions.githubusercontent.com",
			Subject: "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3",
			Extensions: map[string]string{
				"sourceRepositoryURI": "https://github.com/acme/app",
				"runnerEnvironment":   "github-hosted",
			},
		},
	}
	custom := &Statement{ // cosign attest --type custom
		PredicateType: "https://cosign.sigstore.dev/attestation/v1",
		Predicate:     decodeJSON(t, `{"Data": "scanned: x passed", "Timestamp": "2025-06-01T00:00:00Z"}`),
	}
	bare := &Statement{PredicateType: "https://example.com/p", Predicate: decodeJSON(t, `{"n": 3, "ok": true, "list": [1, 2, 3], "nothing": null}`)}
	const (
		holds   = "holds"
		isFalse = "false"
	)
	tests := []struct {
		st        *Statement
		condition string
		want      string // holds, isFalse, or a prefix of the error
	}{
		{slsa, `predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/app"`, holds},
		{slsa, `predicate.buildDefinition.externalParameters.workflow.repository == "https://github.com/acme/other"`, isFalse},
		{slsa, `predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/tags/")`, holds},
		{slsa, `predicate.buildDefinition.externalParameters.workflow.ref.startsWith("refs/heads/")`, isFalse},
		{slsa, `predicate.buildDefinition.internalParameters.github.runner_environment == "github-hosted"`, holds},
		{slsa, `predicate.buildDefinition.resolvedDependencies.exists(d, d.uri.startsWith("git+https://github.com/acme/app@"))`, holds},
		{slsa, `predicate.buildDefinition.resolvedDependencies.all(d, d.digest.gitCommit.size() == 40)`, holds},
		{slsa, `predicate.buildDefinition.buildType.lowerAscii().contains("workflow")`, holds},
		{slsa, `predicateType == "https://slsa.dev/provenance/v1"`, holds},
		{slsa, `predicateType.endsWith("v0.2")`, isFalse},

		// A missing field is an error, however negated.
		{slsa, `predicate.buildDefinition.externalParameters.workflow.branch == "main"`, "condition could not be evaluated: no such key: branch"},
		{slsa, `predicate.buildDefinition.externalParameters.workflow.branch != "main"`, "condition could not be evaluated: no such key: branch"},
		{slsa, `!(predicate.runDetails.metadata.finishedOn == "x")`, "condition could not be evaluated: no such key: finishedOn"},
		{slsa, `predicate.nope.deeper == 1`, "condition could not be evaluated: no such key: nope"},
		{slsa, `has(predicate.runDetails.metadata.finishedOn)`, isFalse},
		{slsa, `!has(predicate.runDetails.metadata.finishedOn)`, holds},

		// subject and signer
		{slsa, `subject[0].digest.sha256 == "` + subjectDigest + `"`, holds},
		{slsa, `subject[0].digest.sha256 == "` + strings.Repeat("0", 64) + `"`, isFalse},
		{slsa, `subject.exists(s, s.name == "ghcr.io/acme/app")`, holds},
		{slsa, `subject[1].name == "ghcr.io/acme/app"`, "condition could not be evaluated: index out of bounds: 1"},
		{slsa, `signer.extensions.sourceRepositoryURI == "https://github.com/acme/app"`, holds},
		{slsa, `signer.extensions.sourceRepositoryURI == predicate.buildDefinition.externalParameters.workflow.repository`, holds},
		{slsa, `signer.extensions.sourceRepositoryURI == "https://github.com/evil/app"`, isFalse},
		{slsa, `signer.extensions.buildTrigger == "push"`, "condition could not be evaluated: no such key: buildTrigger"},
		{slsa, `"buildTrigger" in signer.extensions`, isFalse},
		{slsa, `signer.issuer == "https://token.actions.githubusercontent.com" && signer.subject.endsWith("@refs/tags/v1.2.3")`, holds},

		// now
		{slsa, `now > timestamp("2025-01-01T00:00:00Z")`, holds},
		{slsa, `now < timestamp("2025-01-01T00:00:00Z")`, isFalse},
		{custom, `now - timestamp(predicate.Timestamp) < duration("720h")`, holds},
		{custom, `now - timestamp(predicate.Timestamp) < duration("24h")`, isFalse},
		{custom, `timestamp(predicate.Data) < now`, "condition could not be evaluated: "},

		// strings
		{custom, `predicate.Data.contains("x")`, holds},
		{custom, `predicate.Data.contains("y")`, isFalse},
		{custom, `predicate.Data.matches("^scanned: [a-z]+ passed$")`, holds},

		// results that are not bools
		{slsa, `predicate.buildDefinition.buildType`, "condition returned string, not bool"},
		{slsa, `predicate.runDetails`, "condition returned map, not bool"},
		{bare, `predicate.n`, "condition returned double, not bool"},
		{bare, `predicate.list`, "condition returned list, not bool"},
		{bare, `predicate.nothing`, "condition returned null_type, not bool"},
		{bare, `predicate.ok`, holds},
		{bare, `predicate.n == 3`, holds},
		{bare, `predicate.list.size() == 3 && 2.0 in predicate.list`, holds},
		{bare, `predicate.nothing == null`, holds},
		{bare, `predicate.n > "2"`, "condition could not be evaluated: no such overload"},

		// a statement without subjects or signer extensions
		{bare, `size(subject) == 0 && signer.extensions.size() == 0 && signer.issuer == ""`, holds},
	}
	for _, tc := range tests {
		compiled, err := NewAttestation("a", "slsaprovenance", tc.condition, 0)
		if err != nil {
			t.Errorf("%s: %v", tc.condition, err)
			continue
		}
		byHand := &Attestation{Name: "a", PredicateType: "slsaprovenance", Condition: tc.condition}
		for _, a := range []*Attestation{compiled, byHand} {
			err := a.Holds(tc.st, now)
			switch tc.want {
			case holds:
				if err != nil {
					t.Errorf("%s: %v, want it to hold", tc.condition, err)
				}
			case isFalse:
				if !errors.Is(err, ErrConditionFalse) {
					t.Errorf("%s: %v, want ErrConditionFalse", tc.condition, err)
				}
			default:
				if err == nil || errors.Is(err, ErrConditionFalse) || !strings.HasPrefix(err.Error(), tc.want) {
					t.Errorf("%s: %v, want an error %q...", tc.condition, err, tc.want)
				}
			}
		}
	}
}

// TestHoldsWithoutCondition: no condition holds for any statement.
func TestHoldsWithoutCondition(t *testing.T) {
	a, err := NewAttestation("a", "spdx", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []*Statement{{}, {Predicate: "x"}, {Predicate: slsaPredicate(t)}} {
		if err := a.Holds(st, time.Time{}); err != nil {
			t.Errorf("Holds(%+v) = %v", st, err)
		}
	}
	// A hand-built condition that does not compile never holds.
	bad := &Attestation{PredicateType: "spdx", Condition: "predicate.x =="}
	if err := bad.Holds(&Statement{Predicate: map[string]any{"x": 1.0}}, time.Now()); err == nil || errors.Is(err, ErrConditionFalse) {
		t.Errorf("bad condition: Holds = %v", err)
	}
	notBool := &Attestation{PredicateType: "spdx", Condition: "1"}
	if err := notBool.Holds(&Statement{}, time.Now()); err == nil || !strings.Contains(err.Error(), "not bool") {
		t.Errorf("int condition: Holds = %v", err)
	}
}

// TestHoldsTimeLimit: a condition that loops over a large predicate stops
// with an error within about conditionTimeLimit rather than running on:
// nested comprehensions over 100,000 elements, and a single one over
// 20,000 packages (a large SBOM) that fits easily in the limit finishes (cel-go's cost
// tracker, quadratic in loop length, is not used: with it, the first took
// 1m34s to stop and the second 51s).
func TestHoldsTimeLimit(t *testing.T) {
	list := make([]any, 100_000)
	for i := range list {
		list[i] = float64(i)
	}
	packages := make([]any, 20_000) // a large SBOM's
	for i := range packages {
		packages[i] = map[string]any{"name": fmt.Sprintf("pkg%d", i)}
	}
	st := &Statement{PredicateType: "https://example.com/p", Predicate: map[string]any{"l": list, "packages": packages}}
	tests := []struct {
		condition string
		want      string // "" to hold, "false" for ErrConditionFalse
	}{
		{"predicate.l.size() == 100000", ""},
		{"predicate.l[99999] == 99999.0", ""},
		{`predicate.packages.exists(p, p.name == "openssl")`, "false"},
		{"predicate.l.all(x, predicate.l.exists(y, y == x))", "condition could not be evaluated: operation interrupted"},
		{"predicate.l.all(x, predicate.l.all(y, y >= 0.0))", "condition could not be evaluated: operation interrupted"},
	}
	for _, tc := range tests {
		a, err := NewAttestation("a", "https://example.com/p", tc.condition, 0)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Holds(st, time.Now()) }()
		select {
		case err := <-done:
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s: %v", tc.condition, err)
			case tc.want == "false" && !errors.Is(err, ErrConditionFalse):
				t.Errorf("%s: %v, want false", tc.condition, err)
			case tc.want != "" && tc.want != "false" && (err == nil || errors.Is(err, ErrConditionFalse) || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("%s: %v, want %q", tc.condition, err, tc.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still evaluating after 10s", tc.condition)
		}
	}
}

// TestDecideValidUntil: an allow resting on maxAge ends at the earliest
// ValidUntil of the passes it counted; never from failures, nor from a
// pass whose signer already counted, nor from a policy that failed.
func TestDecideValidUntil(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	a, b, c := &Authority{Name: "a"}, &Authority{Name: "b"}, &Authority{Name: "c"}
	pass := func(until time.Time, signer string) AuthorityResult {
		return AuthorityResult{Passed: true, Identity: "key " + signer, Signer: signer, ValidUntil: until}
	}
	failAt := func(until time.Time) AuthorityResult {
		return AuthorityResult{Reasons: []string{"older than 720h"}, ValidUntil: until}
	}
	one := &ImagePolicy{Name: "one", Threshold: 1, Authorities: []*Authority{a, b, c}}
	two := &ImagePolicy{Name: "two", Threshold: 2, Authorities: []*Authority{a, b, c}}
	onlyA := &ImagePolicy{Name: "only-a", Threshold: 1, Authorities: []*Authority{a}}
	onlyB := &ImagePolicy{Name: "only-b", Threshold: 1, Authorities: []*Authority{b}}
	warnTwo := &ImagePolicy{Name: "warn-two", Mode: Warn, Threshold: 2, Authorities: []*Authority{b, c}}
	unsigned := &ImagePolicy{Name: "unsigned", AllowUnsigned: true}
	tests := []struct {
		desc    string
		matched []*ImagePolicy
		results map[*Authority]AuthorityResult
		allowed bool
		want    time.Time
	}{
		{"none has one", []*ImagePolicy{two}, map[*Authority]AuthorityResult{a: pass(time.Time{}, "ka"), b: pass(time.Time{}, "kb")}, true, time.Time{}},
		{"the one that has one", []*ImagePolicy{one}, map[*Authority]AuthorityResult{a: pass(time.Time{}, "ka"), b: pass(t1, "kb")}, true, t1},
		{"the earliest", []*ImagePolicy{two}, map[*Authority]AuthorityResult{a: pass(t2, "ka"), b: pass(t1, "kb"), c: pass(time.Time{}, "kc")}, true, t1},
		{"the earliest, whichever order", []*ImagePolicy{two}, map[*Authority]AuthorityResult{a: pass(t1, "ka"), b: pass(t2, "kb")}, true, t1},
		{"not from a failure", []*ImagePolicy{one}, map[*Authority]AuthorityResult{a: failAt(t0), b: pass(t2, "kb")}, true, t2},
		{"not from a failure, none passing has one", []*ImagePolicy{one}, map[*Authority]AuthorityResult{a: failAt(t0), b: pass(time.Time{}, "kb")}, true, time.Time{}},
		{"failures only", []*ImagePolicy{one}, map[*Authority]AuthorityResult{a: failAt(t0), b: failAt(t1)}, false, time.Time{}},
		{"not from a signer counted already", []*ImagePolicy{two},
			map[*Authority]AuthorityResult{a: pass(t2, "same"), b: pass(t0, "same"), c: pass(time.Time{}, "kc")}, true, t2},
		{"across policies", []*ImagePolicy{onlyA, onlyB}, map[*Authority]AuthorityResult{a: pass(t2, "ka"), b: pass(t1, "kb")}, true, t1},
		{"across policies, one without", []*ImagePolicy{onlyA, onlyB}, map[*Authority]AuthorityResult{a: pass(time.Time{}, "ka"), b: pass(t1, "kb")}, true, t1},
		{"not from a policy that failed", []*ImagePolicy{onlyA, warnTwo}, map[*Authority]AuthorityResult{a: pass(t2, "ka"), b: pass(t0, "kb")}, true, t2},
		{"unsigned", []*ImagePolicy{unsigned}, nil, true, time.Time{}},
		{"unsigned and signed", []*ImagePolicy{unsigned, onlyA}, map[*Authority]AuthorityResult{a: pass(t1, "ka")}, true, t1},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			o := (&Plan{Matched: tc.matched}).Decide(tc.results)
			if o.Allowed != tc.allowed {
				t.Errorf("Allowed = %v (%v), want %v", o.Allowed, o.Reason, tc.allowed)
			}
			if !o.ValidUntil.Equal(tc.want) {
				t.Errorf("ValidUntil = %v, want %v", o.ValidUntil, tc.want)
			}
		})
	}
}

// BenchmarkHoldsLargeSBOM is the README's figure for a condition over a
// large SBOM: an exists() over 20,000 packages that finds nothing.
//
//	go test ./policy -run '^$' -bench HoldsLargeSBOM
func BenchmarkHoldsLargeSBOM(b *testing.B) {
	packages := make([]any, 20_000)
	for i := range packages {
		packages[i] = map[string]any{"name": fmt.Sprintf("pkg%d", i)}
	}
	st := &Statement{PredicateType: "https://spdx.dev/Document", Predicate: map[string]any{"packages": packages}}
	a, err := NewAttestation("sbom", "spdx", `predicate.packages.exists(p, p.name == "openssl")`, 0)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for b.Loop() {
		if err := a.Holds(st, now); !errors.Is(err, ErrConditionFalse) {
			b.Fatal(err)
		}
	}
}
