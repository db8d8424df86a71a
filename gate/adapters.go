package gate

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/verify"
)

// Late is the proxy's view of a verify.Gate bound after the proxy exists
// (the gate reads signatures through the proxy): it turns a refusal into
// proxy.DeniedError (403 DENIED with the verdict's message and detail, or
// 404 for wrong-shaped signature material) and passes errors on (503: no
// decision, nothing served). Until Bind, every check fails closed.
type Late struct{ g atomic.Pointer[verify.Gate] }

var _ proxy.Gate = (*Late)(nil)

// Bind sets the gate that decides.
func (a *Late) Bind(g *verify.Gate) { a.g.Store(g) }

var errUnbound = errors.New("gate: no verification gate bound yet")

// CheckManifest implements proxy.Gate.
func (a *Late) CheckManifest(ctx context.Context, m *proxy.Manifest) error {
	g := a.g.Load()
	if g == nil {
		return errUnbound
	}
	v, err := g.Manifest(ctx, &verify.ManifestRequest{
		Repo: m.Repo, Reference: m.Reference,
		Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes,
	})
	return refusal(v, err)
}

// CheckBlob implements proxy.Gate.
func (a *Late) CheckBlob(ctx context.Context, repo proxy.Repository, d v1.Hash) (proxy.BlobPermit, error) {
	g := a.g.Load()
	if g == nil {
		return proxy.BlobPermit{}, errUnbound
	}
	v, err := g.Blob(ctx, repo, d)
	if err := refusal(v, err); err != nil {
		return proxy.BlobPermit{}, err
	}
	return proxy.BlobPermit{MaxBytes: v.MaxBytes}, nil
}

// CheckReferrers implements proxy.Gate.
func (a *Late) CheckReferrers(ctx context.Context, repo proxy.Repository, subject v1.Hash, body []byte) error {
	g := a.g.Load()
	if g == nil {
		return errUnbound
	}
	v, err := g.Referrers(ctx, repo, subject, body)
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
	return &proxy.DeniedError{Message: v.Message(), Detail: detail, NotFound: v.NotFound()}
}

// Reader is verify's view of the registry, served by the proxy's upstream
// reader (same routing, auth, caches and digest checks).
type Reader struct{ P *proxy.Proxy }

var _ verify.Reader = Reader{}

// Manifest implements verify.Reader.
func (r Reader) Manifest(ctx context.Context, repo verify.Repository, ref string) (*verify.Manifest, error) {
	d, mt, b, err := r.P.Manifest(ctx, repo, ref)
	if err != nil {
		return nil, err // oci.ErrNotFound, shared by both sides, when absent
	}
	return &verify.Manifest{Digest: d, MediaType: mt, Bytes: b}, nil
}

// Referrers implements verify.Reader.
func (r Reader) Referrers(ctx context.Context, repo verify.Repository, subject v1.Hash) (*v1.IndexManifest, error) {
	b, err := r.P.Referrers(ctx, repo, subject)
	if err != nil {
		return nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, err
	}
	return &idx, nil
}

// Blob implements verify.Reader.
func (r Reader) Blob(ctx context.Context, repo verify.Repository, d v1.Hash, max int64) ([]byte, error) {
	return r.P.Blob(ctx, repo, d, max)
}
