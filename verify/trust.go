package verify

import (
	"fmt"
	"sort"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// TrustProvider gives the Sigstore trusted material (Fulcio CAs, Rekor and
// CT log keys, TSAs) of a named trust root: a policy TrustRoot name, or
// policy.PublicGood.
//
// Checker builds its sigstore-go verifiers once per (authority, material)
// and rebuilds them when the provider returns a different material, so a
// provider should return the same value until the root changes (a
// root.LiveTrustedRoot refreshes itself in place).
type TrustProvider interface {
	TrustedMaterial(name string) (root.TrustedMaterial, error)
}

// TrustNotLoadedError is a TrustProvider's answer for a trust root it
// has not been able to load yet (a TUF repository that cannot be reached,
// with no cache): decisions that need it are not made (503) until it
// loads, rather than refused.
type TrustNotLoadedError struct {
	Name string
	Err  error
}

func (e *TrustNotLoadedError) Error() string {
	return fmt.Sprintf("trust root %q not loaded yet: %v", e.Name, e.Err)
}

func (e *TrustNotLoadedError) Unwrap() error { return e.Err }

// TrustMap is a TrustProvider over materials already built, by name.
type TrustMap map[string]root.TrustedMaterial

var _ TrustProvider = TrustMap(nil)

// TrustedMaterial implements TrustProvider.
func (m TrustMap) TrustedMaterial(name string) (root.TrustedMaterial, error) {
	tm, ok := m[name]
	if !ok || tm == nil {
		return nil, fmt.Errorf("trust root %q not available", name)
	}
	return tm, nil
}

// StaticTrust parses trusted_root.json documents, by name, once. It never
// touches the network: air-gapped roots, or roots the caller fetched.
func StaticTrust(roots map[string][]byte) (TrustProvider, error) {
	names := make([]string, 0, len(roots))
	for n := range roots {
		names = append(names, n)
	}
	sort.Strings(names)
	m := make(TrustMap, len(roots))
	for _, n := range names {
		tr, err := root.NewTrustedRootFromJSON(roots[n])
		if err != nil {
			return nil, fmt.Errorf("trust root %q: %w", n, err)
		}
		m[n] = tr
	}
	return m, nil
}
