package policy_test

import (
	"fmt"
	"os"

	"github.com/portcullis-dev/portcullis/policy"
)

func Example() {
	pol, err := policy.Parse([]byte(`
policies:
  - name: acme
    images: ["registry.example/acme/**"]
    authorities:
      - name: ci
        trustRoot: public-good
        keyless:
          identities:
            - issuer: https://token.actions.githubusercontent.com
              subjectRegExp: ^https://github\.com/acme/
  - name: vendor
    images: ["registry.example/vendor/**"]
    allow: unsigned
`), "policy.yaml", nil) // nil: the policy names no files (keys, trusted roots)
	if err != nil {
		fmt.Println(err)
		return
	}
	plan := pol.For("registry.example/acme/app", "sha256:0000000000000000000000000000000000000000000000000000000000000000")
	results := make(map[*policy.Authority]policy.AuthorityResult)
	for _, a := range plan.Authorities() {
		// Package verify checks the signatures; here the one identity fails.
		results[a] = policy.AuthorityResult{Reasons: []string{"no signature from a matching identity"}}
	}
	out := plan.Decide(results)
	fmt.Println(out.Allowed, out.Reason, out.FirstFailure().Reasons)

	out = pol.For("registry.example/vendor/tool", "sha256:0000000000000000000000000000000000000000000000000000000000000000").Decide(nil)
	fmt.Println(out.Allowed, out.Reason)
	// Output:
	// false denied [ci: no signature from a matching identity]
	// true allowed-unsigned
}

func ExampleLint() {
	data, err := os.ReadFile("testdata/lint/policies.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	// Files the policy names are read from os.DirFS("."), relative to
	// testdata/lint/.
	for _, p := range policy.Lint(data, "testdata/lint/policies.yaml", os.DirFS("."))[:2] {
		fmt.Println(p)
	}
	// Output:
	// testdata/lint/policies.yaml:4: policies[0].mode: want "enforce" or "warn", got "Enforce" (did you mean "enforce"?)
	// testdata/lint/policies.yaml:5: policies[0].allow: the only value is "unsigned", got "all"
}
