package gate

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/verify"
)

// Checker is the proxy's view of a verify.Gate: it turns a refusal into
// proxy.DeniedError (403 DENIED with the verdict's message and detail, or
// 404 for wrong-shaped signature material) and passes errors on (503: no
// decision, nothing served).
type Checker struct{ g *verify.Gate }

var _ proxy.Gate = (*Checker)(nil)

// NewChecker returns the proxy.Gate deciding with g.
func NewChecker(g *verify.Gate) *Checker { return &Checker{g: g} }

// CheckManifest implements proxy.Gate.
func (a *Checker) CheckManifest(ctx context.Context, m *proxy.Manifest) error {
	v, err := a.g.Manifest(ctx, &verify.ManifestRequest{
		Repo: m.Repo, Reference: m.Reference,
		Digest: m.Digest, MediaType: m.MediaType, Bytes: m.Bytes,
	})
	return refusal(v, err)
}

// CheckBlob implements proxy.Gate.
func (a *Checker) CheckBlob(ctx context.Context, repo proxy.Repository, d v1.Hash) (proxy.BlobPermit, error) {
	v, err := a.g.Blob(ctx, repo, d)
	if err := refusal(v, err); err != nil {
		return proxy.BlobPermit{}, err
	}
	return proxy.BlobPermit{MaxBytes: v.MaxBytes}, nil
}

// CheckReferrers implements proxy.Gate.
func (a *Checker) CheckReferrers(ctx context.Context, repo proxy.Repository, subject v1.Hash, body []byte) error {
	v, err := a.g.Referrers(ctx, repo, subject, body)
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
