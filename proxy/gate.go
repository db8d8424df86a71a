package proxy

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
)

// Repository names a repository as clients name it through the proxy (the
// one type, oci.Repository).
type Repository = oci.Repository

// Manifest is what the Gate is asked about: the exact bytes the proxy is about
// to serve, with the digest they hash to.
type Manifest struct {
	Repo Repository
	// Reference is what the client asked for: a tag, or a digest string.
	Reference string
	Digest    v1.Hash
	MediaType string
	Bytes     []byte
}

// BlobPermit is a Gate's allowance of one blob response.
type BlobPermit struct {
	// MaxBytes, when positive, is the most the blob may have: a blob
	// allowed only as signature material is served only up to the size
	// its artifact lists (a larger upstream answer is cut off).
	MaxBytes int64
}

// Gate decides whether content may be served. The proxy calls it after it has
// the bytes (or, for a blob, before it contacts the upstream) and before a
// byte or header of the content reaches the client. A nil error allows; a
// *DeniedError refuses (403 DENIED, or 404 when it says NotFound); any
// other error means no decision could be made and the client gets 503
// UNAVAILABLE (fail closed).
type Gate interface {
	// CheckManifest is asked about every manifest response, GET or HEAD, by
	// tag or by digest.
	CheckManifest(ctx context.Context, m *Manifest) error
	// CheckBlob is asked about every blob response, GET or HEAD, full or ranged.
	CheckBlob(ctx context.Context, repo Repository, digest v1.Hash) (BlobPermit, error)
	// CheckReferrers is asked about every referrers answer, with the exact
	// bytes about to be served.
	CheckReferrers(ctx context.Context, repo Repository, subject v1.Hash, body []byte) error
}

// AllowAllUnsafe is the Gate of a plain mirror: it allows everything, so
// nothing is verified. It is never a default: New requires a Gate, and a
// deployment gets this one only with "unverified: true" in its config.
type AllowAllUnsafe struct{}

var _ Gate = AllowAllUnsafe{}

// CheckManifest allows every manifest.
func (AllowAllUnsafe) CheckManifest(context.Context, *Manifest) error { return nil }

// CheckBlob allows every blob.
func (AllowAllUnsafe) CheckBlob(context.Context, Repository, v1.Hash) (BlobPermit, error) {
	return BlobPermit{}, nil
}

// CheckReferrers allows every referrers answer.
func (AllowAllUnsafe) CheckReferrers(context.Context, Repository, v1.Hash, []byte) error { return nil }
