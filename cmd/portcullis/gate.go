package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/verify"
)

// gateAdapter lets the proxy ask verify's Gate: it turns a refusal into
// proxy.DeniedError (403 DENIED with the verdict's message and detail) and
// passes errors on (503: no decision, nothing served). The gate is set
// after the proxy exists, because the gate reads through the proxy.
type gateAdapter struct{ g *verify.Gate }

var _ proxy.Gate = (*gateAdapter)(nil)

func (a *gateAdapter) CheckManifest(ctx context.Context, m *proxy.Manifest) error {
	v, err := a.g.Manifest(ctx, &verify.ManifestRequest{
		Repo: verify.Repository(m.Repo), Reference: m.Reference,
		Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes,
	})
	return refusal(v, err)
}

func (a *gateAdapter) CheckBlob(ctx context.Context, repo proxy.Repository, d v1.Hash) error {
	v, err := a.g.Blob(ctx, verify.Repository(repo), d)
	return refusal(v, err)
}

func refusal(v *verify.Verdict, err error) error {
	if err != nil {
		return err
	}
	if v.Allowed() {
		return nil
	}
	var detail any
	if d := v.Detail(); len(d) > 0 {
		detail = d
	}
	return &proxy.DeniedError{Message: v.Message(), Detail: detail}
}

// readerAdapter is verify's view of the registry, served by the proxy's
// upstream reader (same routing, auth, caches and digest checks).
type readerAdapter struct{ p *proxy.Proxy }

var _ verify.Reader = readerAdapter{}

func (r readerAdapter) Manifest(ctx context.Context, repo verify.Repository, ref string) (*verify.Manifest, error) {
	d, mt, b, err := r.p.Manifest(ctx, proxy.Repository(repo), ref)
	if err != nil {
		return nil, notFound(err)
	}
	return &verify.Manifest{Digest: d, MediaType: mt, Bytes: b}, nil
}

func (r readerAdapter) Referrers(ctx context.Context, repo verify.Repository, subject v1.Hash) (*v1.IndexManifest, error) {
	b, err := r.p.Referrers(ctx, proxy.Repository(repo), subject)
	if err != nil {
		return nil, notFound(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, err
	}
	return &idx, nil
}

func (r readerAdapter) Blob(ctx context.Context, repo verify.Repository, d v1.Hash, max int64) ([]byte, error) {
	b, err := r.p.Blob(ctx, proxy.Repository(repo), d, max)
	return b, notFound(err)
}

// notFound maps the proxy's ErrNotFound to verify's.
func notFound(err error) error {
	if err != nil && errors.Is(err, proxy.ErrNotFound) {
		return fmt.Errorf("%w: %v", verify.ErrNotFound, err)
	}
	return err
}
