package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
)

// The methods in this file let the Gate read the registry through the same
// routing, authentication, caches, single-flight and digest checks as
// clients do (signature discovery reads .sig tags, referrers and their
// layers). They serve no HTTP: they are the proxy's upstream reader.

// ErrNotFound is returned by the reader methods when the upstream does not
// have what was asked for.
var ErrNotFound = oci.ErrNotFound

// manifestAccept is what the reader asks for: every manifest and index type.
var manifestAccept = []string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}

// readerRoute routes a repository the way a path-prefix client would.
func (p *Proxy) readerRoute(repo Repository, ref string) (*route, error) {
	up, ok := p.upstreams[oci.NormalizeRegistry(repo.Registry)]
	if !ok {
		return nil, fmt.Errorf("registry %q is not configured", repo.Registry)
	}
	if !nameRE.MatchString(repo.Name) {
		return nil, fmt.Errorf("invalid repository name %q", repo.Name)
	}
	return &route{repo: Repository{Registry: up.registry, Name: repo.Name}, ref: ref, up: up,
		clientName: up.registry + "/" + repo.Name}, nil
}

// readerError turns a 404 into ErrNotFound and keeps other errors, which
// mean no answer could be had (the caller must not decide on them).
func readerError(err error) error {
	var re *regError
	if errors.As(err, &re) && re.Status == http.StatusNotFound {
		return fmt.Errorf("%s: %w", re.Message, ErrNotFound)
	}
	return err
}

// Manifest returns a manifest of repo by tag or digest: its digest, media
// type and exact bytes, hashed and checked.
func (p *Proxy) Manifest(ctx context.Context, repo Repository, ref string) (v1.Hash, string, []byte, error) {
	rt, err := p.readerRoute(repo, ref)
	if err != nil {
		return v1.Hash{}, "", nil, err
	}
	m, err := p.loadManifest(ctx, rt, manifestAccept)
	if err != nil {
		return v1.Hash{}, "", nil, readerError(err)
	}
	return m.digest, m.mediaType, m.bytes, nil
}

// Referrers returns the referrers index of subject in repo: the upstream's
// API, else the fallback tag, else an empty index.
func (p *Proxy) Referrers(ctx context.Context, repo Repository, subject v1.Hash) ([]byte, error) {
	rt, err := p.readerRoute(repo, subject.String())
	if err != nil {
		return nil, err
	}
	b, _, err := p.referrers(ctx, rt, subject, "", true)
	return b, readerError(err)
}

// Blob returns a whole blob of repo, checked against its digest, and fails
// if it is larger than max bytes.
func (p *Proxy) Blob(ctx context.Context, repo Repository, d v1.Hash, max int64) ([]byte, error) {
	rt, err := p.readerRoute(repo, d.String())
	if err != nil {
		return nil, err
	}
	resp, err := p.blobRequest(ctx, rt, d, nil)
	if err != nil {
		return nil, readerError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readerError(fromUpstreamResponse(rt.up.registry, resp, codeBlobUnknown))
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d allowed", d, resp.ContentLength, max)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s from %s: %w", d, rt.up.registry, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("blob %s is more than the %d bytes allowed", d, max)
	}
	if got := digestOf(d.Algorithm, b); got != d {
		p.metrics.digestMismatch.WithLabelValues(rt.up.registry, routeBlob).Inc()
		return nil, fmt.Errorf("upstream %s sent blob %s whose bytes hash to %s", rt.up.registry, d, got)
	}
	return b, nil
}
