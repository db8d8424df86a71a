package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
)

// This file is about attestations: what an authority's `attestations:`
// entry requires of an in-toto statement (its predicate type, a CEL
// condition, a maximum age), and how a condition is compiled and
// evaluated. Package verify finds and verifies the statements; it hands
// each verified one here as a Statement.

// Attestation is one entry of an authority's `attestations:`: a verified
// in-toto statement signed by the authority, naming the served digest,
// must satisfy it.
type Attestation struct {
	Name string
	// PredicateType is the type as written: an alias (see
	// [PredicateAliases]) or a URI.
	PredicateType string
	// Condition is the CEL expression as written ("" for none).
	Condition string
	// MaxAge is the oldest a statement may be, from its verified signing
	// time (0 for no limit).
	MaxAge time.Duration
	// Line is where the entry starts in the file, for messages.
	Line int

	uris []string    // the predicate types PredicateType stands for
	prog cel.Program // nil without a condition
}

// PredicateAliases are the predicate type aliases an attestation may
// name, with the URIs each stands for (cosign attest --type names them).
// spdx also matches the versioned forms "https://spdx.dev/Document/v<ver>"
// that GitHub writes.
var PredicateAliases = map[string][]string{
	"slsaprovenance": {"https://slsa.dev/provenance/v0.2", "https://slsa.dev/provenance/v1"},
	"spdx":           {spdxDocument},
	"cyclonedx":      {"https://cyclonedx.org/bom"},
	"vuln":           {"https://cosign.sigstore.dev/attestation/vuln/v1"},
	"openvex":        {"https://openvex.dev/ns"},
	"link":           {"https://in-toto.io/Link/v1"},
}

const spdxDocument = "https://spdx.dev/Document"

// NewAttestation compiles an attestation requirement: predicateType is an
// alias or a URI, condition a CEL expression ("" for none). Parse calls
// it for each entry; it is exported for callers that build a Policy by
// hand.
func NewAttestation(name, predicateType, condition string, maxAge time.Duration) (*Attestation, error) {
	a := &Attestation{Name: name, PredicateType: predicateType, Condition: condition, MaxAge: maxAge}
	uris, err := predicateURIs(predicateType)
	if err != nil {
		return nil, err
	}
	a.uris = uris
	if maxAge < 0 {
		return nil, fmt.Errorf("maxAge %s is negative", maxAge)
	}
	if condition != "" {
		if a.prog, err = compileCondition(condition); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// predicateURIs resolves an alias, or checks a URI.
func predicateURIs(pt string) ([]string, error) {
	if uris, ok := PredicateAliases[pt]; ok {
		return uris, nil
	}
	if !strings.Contains(pt, ":") {
		return nil, fmt.Errorf("predicate type %q is neither an alias (%s) nor a URI", pt, strings.Join(aliasNames(), ", "))
	}
	return []string{pt}, nil
}

func aliasNames() []string {
	return []string{"slsaprovenance", "spdx", "cyclonedx", "vuln", "openvex", "link"}
}

// Describe is the attestation for messages: `"provenance" (slsaprovenance)`.
func (a *Attestation) Describe() string {
	return fmt.Sprintf("%q (%s)", a.Name, a.PredicateType)
}

// MatchesPredicateType reports whether a statement of predicate type pt
// can satisfy a.
func (a *Attestation) MatchesPredicateType(pt string) bool {
	uris := a.uris
	if uris == nil { // built by hand
		uris, _ = predicateURIs(a.PredicateType)
	}
	for _, u := range uris {
		if pt == u {
			return true
		}
		if u == spdxDocument {
			if v, ok := strings.CutPrefix(pt, spdxDocument+"/v"); ok && v != "" {
				return true
			}
		}
	}
	return false
}

// Statement is a verified in-toto statement, as conditions see it.
type Statement struct {
	PredicateType string
	// Predicate is the predicate decoded from JSON (map[string]any,
	// []any, string, float64, bool, nil).
	Predicate any
	// Subject is the statement's subjects, decoded from JSON: each a map
	// with "name" and "digest" (a map of algorithm to hex).
	Subject []any
	// Signer is who signed it: the verified certificate's issuer, subject
	// (SAN) and Fulcio extensions by sigstore-go's JSON names; for a key,
	// Subject is the key's signer name and the rest empty.
	Signer StatementSigner
}

// StatementSigner is who signed a Statement.
type StatementSigner struct {
	Issuer, Subject string
	Extensions      map[string]string
}

// conditionTimeLimit bounds one condition evaluation; comprehensions check
// it every conditionCheckEvery steps. An expression that would loop too
// long over a large or hostile predicate stops with an error, which
// refuses. This is the limit rather than cel-go's runtime cost limit,
// whose tracker is quadratic in the length of a loop in cel-go v0.31: an
// `.exists()` over a 20,000-package SBOM took 0.8 s with it (measured once)
// and takes 9 to 20 ms without (BenchmarkHoldsLargeSBOM), and a nested loop over 10,000 elements ten
// seconds before the limit stops it.
const (
	conditionTimeLimit  = 500 * time.Millisecond
	conditionCheckEvery = 100
)

// conditionEnv is the CEL environment of conditions: the variables below
// and cel-go's string extensions. Built once; an Env is safe for
// concurrent use.
var conditionEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("predicateType", cel.StringType),
		cel.Variable("predicate", cel.DynType),
		cel.Variable("subject", cel.ListType(cel.DynType)),
		cel.Variable("signer", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("now", cel.TimestampType),
		ext.Strings(),
	)
	if err != nil {
		panic(fmt.Sprintf("policy: CEL environment: %v", err))
	}
	return env
}()

// compileCondition compiles and type-checks a condition, which must
// return a bool.
func compileCondition(expr string) (cel.Program, error) {
	ast, iss := conditionEnv.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("condition is not valid CEL: %s", strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("condition returns %s, not bool", t)
	}
	prog, err := conditionEnv.Program(ast, cel.InterruptCheckFrequency(conditionCheckEvery))
	if err != nil {
		return nil, fmt.Errorf("condition: %w", err)
	}
	return prog, nil
}

// ErrConditionFalse is Holds' error for a condition that evaluated to false.
var ErrConditionFalse = errors.New("condition false")

// Holds evaluates a's condition on st at time now: nil when there is none
// or it is true; ErrConditionFalse when false; another error when it
// cannot be evaluated (a missing field, a run over conditionTimeLimit, a
// result that is not a bool), which counts as not satisfied.
func (a *Attestation) Holds(st *Statement, now time.Time) error {
	if a.Condition == "" {
		return nil
	}
	prog := a.prog
	if prog == nil { // built by hand
		var err error
		if prog, err = compileCondition(a.Condition); err != nil {
			return err
		}
	}
	ext := make(map[string]any, len(st.Signer.Extensions))
	for k, v := range st.Signer.Extensions {
		ext[k] = v
	}
	subject := st.Subject
	if subject == nil {
		subject = []any{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), conditionTimeLimit)
	defer cancel()
	out, _, err := prog.ContextEval(ctx, map[string]any{
		"predicateType": st.PredicateType,
		"predicate":     st.Predicate,
		"subject":       subject,
		"signer":        map[string]any{"issuer": st.Signer.Issuer, "subject": st.Signer.Subject, "extensions": ext},
		"now":           now,
	})
	if err != nil {
		return fmt.Errorf("condition could not be evaluated: %w", err)
	}
	b, ok := out.Value().(bool)
	switch {
	case !ok:
		return fmt.Errorf("condition returned %s, not bool", out.Type().TypeName())
	case !b:
		return ErrConditionFalse
	}
	return nil
}
