package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/portcullis-dev/portcullis/oci"
)

// RemoteReader is a Reader over go-containerregistry's remote client, for
// tools that talk to a registry directly (`portcullis verify`, tests). The
// proxy uses its own upstream client instead.
type RemoteReader struct {
	puller   *remote.Puller
	opts     []remote.Option
	nameOpts []name.Option
}

var _ Reader = (*RemoteReader)(nil)

// NewRemoteReader returns a Reader using remote options opts (auth,
// transport, user agent). insecure allows plain-HTTP registries.
func NewRemoteReader(insecure bool, opts ...remote.Option) (*RemoteReader, error) {
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, fmt.Errorf("remote reader: %w", err)
	}
	r := &RemoteReader{puller: p, opts: append(opts[:len(opts):len(opts)], remote.Reuse(p))}
	if insecure {
		r.nameOpts = []name.Option{name.Insecure}
	}
	return r, nil
}

// Manifest implements Reader.
func (r *RemoteReader) Manifest(ctx context.Context, repo Repository, ref string) (*Manifest, error) {
	nref, err := r.reference(repo, ref)
	if err != nil {
		return nil, err
	}
	desc, err := r.puller.Get(ctx, nref)
	if err != nil {
		return nil, notFound(fmt.Errorf("manifest %s: %w", nref, err))
	}
	m := &Manifest{MediaType: string(desc.MediaType), Bytes: desc.Manifest}
	if m.Digest, err = hashOf(m.Bytes, "sha256"); err != nil {
		return nil, err
	}
	if oci.IsDigest(ref) && m.Digest.String() != ref {
		return nil, fmt.Errorf("manifest %s: got content with digest %s", nref, m.Digest)
	}
	return m, nil
}

// Referrers implements Reader.
func (r *RemoteReader) Referrers(ctx context.Context, repo Repository, subject v1.Hash) (*v1.IndexManifest, error) {
	nref, err := r.reference(repo, subject.String())
	if err != nil {
		return nil, err
	}
	d, ok := nref.(name.Digest)
	if !ok {
		return nil, fmt.Errorf("referrers: %s is not a digest", subject)
	}
	idx, err := remote.Referrers(d, append(r.opts, remote.WithContext(ctx))...)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", d, err)
	}
	return im, nil
}

// Blob implements Reader.
func (r *RemoteReader) Blob(ctx context.Context, repo Repository, d v1.Hash, max int64) ([]byte, error) {
	nref, err := r.reference(repo, d.String())
	if err != nil {
		return nil, err
	}
	layer, err := r.puller.Layer(ctx, nref.(name.Digest))
	if err != nil {
		return nil, notFound(fmt.Errorf("blob %s: %w", nref, err))
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, notFound(fmt.Errorf("blob %s: %w", nref, err))
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, notFound(fmt.Errorf("blob %s: %w", nref, err))
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("blob %s: larger than %d bytes", nref, max)
	}
	if err := checkDigest(b, d); err != nil {
		return nil, fmt.Errorf("blob %s: %w", nref, err)
	}
	return b, nil
}

func (r *RemoteReader) reference(repo Repository, ref string) (name.Reference, error) {
	s := repo.String() + ":" + ref
	if oci.IsDigest(ref) {
		s = repo.String() + "@" + ref
	}
	nref, err := name.ParseReference(s, r.nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", s, err)
	}
	return nref, nil
}

// notFound marks err as ErrNotFound when the registry answered 404 or with a
// "unknown" error code.
func notFound(err error) error {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return err
	}
	if terr.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	for _, d := range terr.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return err
}

// hashOf digests b with algorithm alg ("sha256" or "sha512").
func hashOf(b []byte, alg string) (v1.Hash, error) { return oci.Digest(alg, b) }
