package gate

import (
	"errors"
	"fmt"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/portcullis-dev/portcullis/policy"
	"github.com/portcullis-dev/portcullis/verify"
)

// NewSnapshot compiles a policy into what the Gate decides under: its
// trusted_root.json roots are parsed once (no network, ever), roots
// distributed by TUF come from tuf (nil if the caller has none), and every
// authority is compiled up front so that a bad key, regexp or missing root
// fails the load, not a pull.
func NewSnapshot(p *policy.Policy, tuf verify.TrustProvider) (*Snapshot, error) {
	files := map[string][]byte{}
	for name, tr := range p.TrustRoots {
		if tr.TUF == nil {
			files[name] = tr.TrustedRootJSON
		}
	}
	static, err := verify.StaticTrust(files)
	if err != nil {
		return nil, err
	}
	trust := &policyTrust{policy: p, files: static, tuf: tuf}
	checker, err := verify.NewChecker(trust)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ip := range p.Policies {
		for _, a := range ip.Authorities {
			err := checker.Prepare(a)
			if tnl := (*verify.TrustNotLoadedError)(nil); errors.As(err, &tnl) {
				continue // it loads later; until then its decisions are 503s
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("policy %q authority %q: %w", ip.Name, a.Name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Snapshot{Policy: p, Checker: checker, Revision: p.Revision}, nil
}

// policyTrust serves a policy's trust roots: files from the parsed static
// roots, TUF ones from the caller's provider.
type policyTrust struct {
	policy *policy.Policy
	files  verify.TrustProvider
	tuf    verify.TrustProvider
}

func (t *policyTrust) TrustedMaterial(name string) (root.TrustedMaterial, error) {
	tr, ok := t.policy.TrustRoots[name]
	if !ok {
		return nil, fmt.Errorf("trust root %q is not defined in the policy", name)
	}
	if tr.TUF == nil {
		return t.files.TrustedMaterial(name)
	}
	if t.tuf == nil {
		return nil, fmt.Errorf("trust root %q is distributed by TUF, and no TUF client is configured", name)
	}
	return t.tuf.TrustedMaterial(name)
}
