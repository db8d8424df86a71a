// Package tuftrust serves Sigstore trusted roots distributed by TUF: the
// public-good instance, or a mirror an air-gapped site runs. It fetches
// trusted_root.json through sigstore-go's TUF client (metadata verified from
// the pinned root.json, cached on disk), refreshes it in the background, and
// keeps the last good root while the repository cannot be reached.
//
// It is the only part of Portcullis that fetches trust material; package
// verify only consumes root.TrustedMaterial.
package tuftrust

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tuf"

	"github.com/portcullis-dev/portcullis/verify"
)

// trustedRootTarget is the TUF target holding the Sigstore trusted root.
const trustedRootTarget = "trusted_root.json"

// Source is one TUF repository serving a trusted root.
type Source struct {
	// Name is the trust root's name in the policy.
	Name string
	// URL is the repository; "" is the public-good instance.
	URL string
	// Root is the initial root.json to trust; nil is the one sigstore-go
	// embeds for the public-good instance.
	Root []byte
	// CacheDir holds the TUF metadata and targets on disk; "" uses
	// $HOME/.sigstore/root.
	CacheDir string
}

// Provider serves the trusted roots of its sources by name. It is a
// verify.TrustProvider, safe for concurrent use.
type Provider struct {
	mu    sync.RWMutex
	roots map[string]*fetched
}

type fetched struct {
	src      Source
	material root.TrustedMaterial // nil until loaded
	json     []byte
	err      error // why it is not loaded yet (material nil)
}

// New fetches every source's trusted root once. A source whose repository
// cannot be reached starts from its on-disk cache, if it has a valid one;
// without either it is pending: TrustedMaterial answers a
// *verify.TrustNotLoadedError for it, and every Refresh tries again. So a
// proxy started without the network starts, and verifies once the root
// arrives.
func New(sources []Source) *Provider {
	p := &Provider{roots: map[string]*fetched{}}
	for _, s := range sources {
		f := &fetched{src: s}
		if err := f.refresh(false); err != nil {
			if cerr := f.refresh(true); cerr != nil {
				f.err = fmt.Errorf("%w (and no usable cache: %v)", err, cerr)
			}
		}
		p.roots[s.Name] = f
	}
	return p
}

// TrustedMaterial implements verify.TrustProvider.
func (p *Provider) TrustedMaterial(name string) (root.TrustedMaterial, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	f, ok := p.roots[name]
	if !ok {
		return nil, fmt.Errorf("trust root %q is not a TUF source", name)
	}
	if f.material == nil {
		return nil, &verify.TrustNotLoadedError{Name: name, Err: f.err}
	}
	return f.material, nil
}

// Pending lists the trust roots not loaded yet, each as why
// ("trust root "public-good" not loaded yet: ..."), sorted.
func (p *Provider) Pending() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []string
	for name, f := range p.roots {
		if f.material == nil {
			out = append(out, (&verify.TrustNotLoadedError{Name: name, Err: f.err}).Error())
		}
	}
	sort.Strings(out)
	return out
}

// Fetch fetches src's trusted_root.json from its repository (verified
// through TUF from its root), for `portcullis trust fetch`: what an
// air-gapped site then names with trustedRootFile.
func Fetch(src Source) ([]byte, error) {
	f := &fetched{src: src}
	if err := f.refresh(false); err != nil {
		return nil, err
	}
	return f.json, nil
}

// Revision identifies the trusted roots in force: it changes when a
// refresh brings a different trusted_root.json.
func (p *Provider) Revision() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	names := make([]string, 0, len(p.roots))
	for n := range p.roots {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%d:%s%d:", len(n), n, len(p.roots[n].json))
		h.Write(p.roots[n].json)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Refresh asks every repository for updates. A source that fails keeps its
// last good root; the errors are returned joined.
func (p *Provider) Refresh() error {
	p.mu.RLock()
	sources := make([]*fetched, 0, len(p.roots))
	for _, f := range p.roots {
		sources = append(sources, f)
	}
	p.mu.RUnlock()
	var errs []error
	for _, f := range sources {
		next := &fetched{src: f.src}
		err := next.refresh(false)
		if err != nil && f.material == nil {
			p.mu.Lock()
			f.err = err // still pending: say why now
			p.mu.Unlock()
			errs = append(errs, fmt.Errorf("trust root %q: %w (not loaded yet)", f.src.Name, err))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("trust root %q: %w (keeping the last good root)", f.src.Name, err))
			continue
		}
		p.mu.Lock()
		p.roots[f.src.Name] = next
		p.mu.Unlock()
	}
	return errors.Join(errs...)
}

// refresh fetches the trusted root, from the repository or, with
// cacheOnly, from the on-disk cache alone.
func (f *fetched) refresh(cacheOnly bool) error {
	opts := tuf.DefaultOptions()
	if f.src.URL != "" {
		opts.RepositoryBaseURL = f.src.URL
	}
	if f.src.Root != nil {
		opts.Root = f.src.Root
	}
	if f.src.CacheDir != "" {
		opts.CachePath = f.src.CacheDir
	}
	if cacheOnly {
		opts.ForceCache = true
		if _, err := os.Stat(filepath.Join(opts.CachePath, tuf.URLToPath(opts.RepositoryBaseURL))); err != nil {
			return fmt.Errorf("no cache: %w", err)
		}
	}
	client, err := tuf.New(opts)
	if err != nil {
		return err
	}
	if !cacheOnly {
		if err := client.Refresh(); err != nil {
			return err
		}
	}
	b, err := client.GetTarget(trustedRootTarget)
	if err != nil {
		return err
	}
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		return fmt.Errorf("%s from %s: %w", trustedRootTarget, opts.RepositoryBaseURL, err)
	}
	f.material, f.json = tr, b
	return nil
}
