package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// evalPolicy is a policy without files: keys are inline data.
func evalPolicy(t *testing.T, key string) *Policy {
	t.Helper()
	indented := "            " + strings.ReplaceAll(strings.TrimSpace(key), "\n", "\n            ")
	src := y(
		"policies:",
		"  - name: acme",
		"    images: [registry.example/acme/**]",
		"    excludeImages: [registry.example/acme/sandbox/**]",
		"    authorities:",
		"      - name: k1",
		"        key:",
		"          data: |",
		indented,
		"      - name: k2",
		"        key:",
		"          data: |",
		indented,
		"  - name: acme-two",
		"    images: [registry.example/acme/prod/**]",
		"    threshold: 2",
		"    authorities:",
		"      - name: k1",
		"        key:",
		"          data: |",
		indented,
		"      - name: ci",
		"        trustRoot: public-good",
		"        keyless:",
		"          identities: [{issuer: https://issuer.example, subjectRegExp: ^https://github\\.com/acme/}]",
		"  - name: audit",
		"    mode: warn",
		"    images: [registry.example/audit/**]",
		"    authorities:",
		"      - name: k1",
		"        key:",
		"          data: |",
		indented,
		"  - name: vendor",
		"    images: [registry.example/vendor/**, registry.example/audit/**]",
		"    allow: unsigned",
		"  - name: vendor-only",
		"    images: [registry.example/vendor/**]",
		"    allow: unsigned",
		"allowDigests: [sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff]",
	)
	p, err := Parse([]byte(src), "eval.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func names(ps []*ImagePolicy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestFor(t *testing.T) {
	p := evalPolicy(t, newKey(t, "p256"))
	tests := []struct {
		image, digest string
		matched       []string
		breakGlass    bool
		authorities   int
	}{
		{"registry.example/acme/app", digest, []string{"acme"}, false, 2},
		{"Registry.Example/acme/app", digest, []string{"acme"}, false, 2},
		{"registry.example/acme/prod/app", digest, []string{"acme", "acme-two"}, false, 4},
		{"registry.example/acme/sandbox/x", digest, nil, false, 0},
		{"registry.example/vendor/x", digest, []string{"vendor", "vendor-only"}, false, 0},
		{"registry.example/audit/x", digest, []string{"audit", "vendor"}, false, 1},
		{"registry.example/other", digest, nil, false, 0},
		{"registry.example/other", "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", nil, true, 0},
	}
	for _, tc := range tests {
		pl := p.For(tc.image, tc.digest)
		if got := names(pl.Matched); !slices.Equal(got, tc.matched) {
			t.Errorf("For(%q).Matched = %v, want %v", tc.image, got, tc.matched)
		}
		if pl.BreakGlass != tc.breakGlass || len(pl.Authorities()) != tc.authorities || pl.Revision != p.Revision {
			t.Errorf("For(%q) = break-glass %v, %d authorities, revision %q", tc.image, pl.BreakGlass, len(pl.Authorities()), pl.Revision)
		}
	}
}

func TestAuthoritiesDeduplicated(t *testing.T) {
	a, b := &Authority{Name: "a"}, &Authority{Name: "b"}
	pl := &Plan{Matched: []*ImagePolicy{
		{Name: "one", Authorities: []*Authority{a, b}},
		{Name: "unsigned", AllowUnsigned: true, Authorities: []*Authority{{Name: "ignored"}}},
		{Name: "two", Authorities: []*Authority{b, a}},
	}}
	if got := pl.Authorities(); !reflect.DeepEqual(got, []*Authority{a, b}) {
		t.Errorf("Authorities() = %v", got)
	}
}

func TestDecide(t *testing.T) {
	k1, k2, k3 := &Authority{Name: "k1"}, &Authority{Name: "k2"}, &Authority{Name: "k3"}
	pass := AuthorityResult{Passed: true, Identity: "key abc="}
	fail := AuthorityResult{Reasons: []string{"no signature", "wrong key"}}
	enforce := &ImagePolicy{Name: "enforce", Threshold: 1, Authorities: []*Authority{k1, k2}}
	two := &ImagePolicy{Name: "two-of-three", Threshold: 2, Authorities: []*Authority{k1, k2, k3}}
	warn := &ImagePolicy{Name: "warn", Mode: Warn, Threshold: 1, Authorities: []*Authority{k3}}
	unsigned := &ImagePolicy{Name: "unsigned", AllowUnsigned: true}
	tests := []struct {
		desc         string
		plan         Plan
		results      map[*Authority]AuthorityResult
		allowed      bool
		reason       Reason
		firstFailure string
		warnings     []string
	}{
		{"default deny", Plan{}, nil, false, DefaultDeny, "", nil},
		{"default allow", Plan{defaultAllow: true}, nil, true, DefaultAllow, "", nil},
		{"break-glass beats a failure", Plan{BreakGlass: true, Matched: []*ImagePolicy{enforce}}, nil, true, BreakGlass, "enforce", nil},
		{"break-glass beats default deny", Plan{BreakGlass: true}, nil, true, BreakGlass, "", nil},
		{"any one authority", Plan{Matched: []*ImagePolicy{enforce}}, map[*Authority]AuthorityResult{k2: pass}, true, Verified, "", nil},
		{"no authority", Plan{Matched: []*ImagePolicy{enforce}}, map[*Authority]AuthorityResult{k1: fail, k2: fail}, false, Denied, "enforce", nil},
		{"missing results", Plan{Matched: []*ImagePolicy{enforce}}, map[*Authority]AuthorityResult{}, false, Denied, "enforce", nil},
		{"threshold met", Plan{Matched: []*ImagePolicy{two}}, map[*Authority]AuthorityResult{k1: pass, k3: pass}, true, Verified, "", nil},
		{"threshold not met", Plan{Matched: []*ImagePolicy{two}}, map[*Authority]AuthorityResult{k1: pass, k2: fail, k3: fail}, false, Denied, "two-of-three", nil},
		{"AND: second fails", Plan{Matched: []*ImagePolicy{enforce, two}}, map[*Authority]AuthorityResult{k1: pass}, false, Denied, "two-of-three", nil},
		{"AND: both pass", Plan{Matched: []*ImagePolicy{enforce, two}}, map[*Authority]AuthorityResult{k1: pass, k2: pass}, true, Verified, "", nil},
		{"warn only", Plan{Matched: []*ImagePolicy{warn}}, nil, true, WarnViolation, "", []string{"warn"}},
		{"warn and enforce pass", Plan{Matched: []*ImagePolicy{enforce, warn}}, map[*Authority]AuthorityResult{k1: pass, k3: fail}, true, WarnViolation, "", []string{"warn"}},
		{"warn and enforce fail", Plan{Matched: []*ImagePolicy{warn, enforce}}, nil, false, Denied, "enforce", []string{"warn"}},
		{"warn passes", Plan{Matched: []*ImagePolicy{warn}}, map[*Authority]AuthorityResult{k3: pass}, true, Verified, "", nil},
		{"unsigned only", Plan{Matched: []*ImagePolicy{unsigned}}, nil, true, AllowedUnsigned, "", nil},
		{"unsigned and signed", Plan{Matched: []*ImagePolicy{unsigned, enforce}}, map[*Authority]AuthorityResult{k1: pass}, true, Verified, "", nil},
		{"unsigned does not excuse signed", Plan{Matched: []*ImagePolicy{unsigned, enforce}}, nil, false, Denied, "enforce", nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			o := tc.plan.Decide(tc.results)
			if o.Allowed != tc.allowed || o.Reason != tc.reason {
				t.Errorf("got allowed %v, %v; want %v, %v", o.Allowed, o.Reason, tc.allowed, tc.reason)
			}
			if len(o.Policies) != len(tc.plan.Matched) {
				t.Errorf("got %d policy results for %d matched", len(o.Policies), len(tc.plan.Matched))
			}
			first := ""
			if f := o.FirstFailure(); f != nil {
				first = f.Policy
			}
			if first != tc.firstFailure {
				t.Errorf("FirstFailure = %q, want %q", first, tc.firstFailure)
			}
			var warned []string
			for _, w := range o.Warnings() {
				warned = append(warned, w.Policy)
			}
			if !slices.Equal(warned, tc.warnings) {
				t.Errorf("Warnings = %v, want %v", warned, tc.warnings)
			}
		})
	}
}

func TestDecideReasons(t *testing.T) {
	k1, k2, k3 := &Authority{Name: "k1"}, &Authority{Name: "k2"}, &Authority{Name: "k3"}
	pl := &Plan{Matched: []*ImagePolicy{{Name: "p", Threshold: 2, Authorities: []*Authority{k1, k2, k3}}}}
	o := pl.Decide(map[*Authority]AuthorityResult{
		k1: {Passed: true, Identity: "issuer https://i.example subject s"},
		k2: {Reasons: []string{"no signature", "tlog missing"}},
	})
	want := PolicyResult{
		Policy:    "p",
		Threshold: 2,
		PassedBy:  []string{"k1 (issuer https://i.example subject s)"},
		Reasons:   []string{"k2: no signature; tlog missing", "k3: not checked"},
	}
	if !reflect.DeepEqual(o.Policies, []PolicyResult{want}) {
		t.Errorf("got  %+v\nwant %+v", o.Policies, []PolicyResult{want})
	}
	if o.Allowed || o.Reason.String() != "denied" {
		t.Errorf("got %v %v", o.Allowed, o.Reason)
	}
}

// TestDecideCountsSignersOnce: two authorities that report the same signer
// (say, both name one key, one passing on a .sig and one on a bundle) count
// once toward threshold, and the refusal says so; different signers count
// each.
func TestDecideCountsSignersOnce(t *testing.T) {
	a, b, c := &Authority{Name: "release"}, &Authority{Name: "release-again"}, &Authority{Name: "ci"}
	const key = "key sha256:0a1b"
	byKey := func(format string) AuthorityResult {
		return AuthorityResult{Passed: true, Identity: "key abc=, " + format, Signer: key}
	}
	byCI := AuthorityResult{Passed: true, Identity: "issuer https://i.example subject ci", Signer: CertSigner("https://i.example", "ci")}
	two := &ImagePolicy{Name: "two", Threshold: 2, Authorities: []*Authority{a, b, c}}
	pl := &Plan{Matched: []*ImagePolicy{two}}

	o := pl.Decide(map[*Authority]AuthorityResult{a: byKey("legacy .sig"), b: byKey("sigstore bundle")})
	want := PolicyResult{
		Policy:    "two",
		Threshold: 2,
		PassedBy:  []string{"release (key abc=, legacy .sig)"},
		Reasons: []string{
			"release-again: passed, but its signer (key sha256:0a1b) already counted for release; a signer is counted once toward threshold",
			"ci: not checked",
		},
	}
	if o.Allowed || !reflect.DeepEqual(o.Policies, []PolicyResult{want}) {
		t.Errorf("one signer, two authorities: allowed %v\ngot  %+v\nwant %+v", o.Allowed, o.Policies, []PolicyResult{want})
	}

	o = pl.Decide(map[*Authority]AuthorityResult{a: byKey("legacy .sig"), b: byKey("sigstore bundle"), c: byCI})
	if !o.Allowed || len(o.Policies[0].PassedBy) != 2 {
		t.Errorf("two signers: allowed %v, %+v", o.Allowed, o.Policies)
	}
}

func TestZeroOutcomeDenies(t *testing.T) {
	var o Outcome
	if o.Allowed || o.Reason != Denied {
		t.Errorf("zero Outcome = %+v", o)
	}
}

func TestHandBuiltPolicyMatches(t *testing.T) {
	p := &Policy{Policies: []*ImagePolicy{{Name: "x", Images: []string{"r.example/**"}, ExcludeImages: []string{"r.example/tmp/*"}}}}
	if got := names(p.For("r.example/a/b", digest).Matched); !slices.Equal(got, []string{"x"}) {
		t.Errorf("matched %v", got)
	}
	if got := p.For("r.example/tmp/b", digest).Matched; len(got) != 0 {
		t.Errorf("matched excluded image: %v", names(got))
	}
}
