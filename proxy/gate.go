package proxy

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
)

// Repository names a repository as clients name it through the proxy (the
// one type, oci.Repository).
type Repository = oci.Repository

// Gate decides whether content may be served. The proxy calls it after it
// has the bytes (or, for a blob, before it contacts the upstream) and
// before a byte or header of the content reaches the client. A nil error
// allows; a Refusal refuses (403 DENIED, or 404 when it says notFound);
// any other error means no decision could be made and the client gets 503
// UNAVAILABLE (fail closed). package gate's Gate is the one that verifies.
type Gate interface {
	// CheckManifest is asked about every manifest response, GET or HEAD, by
	// tag or by digest: reference is what the client asked for (a tag, or
	// a digest string), m the exact bytes about to be served. image
	// reports an allow as an image (or a child of an allowed index), not
	// as signature material: only such a manifest is kept by a content
	// store. sources are the other repositories its signatures were read
	// from (its policies' signaturesFrom): a content store keeps what was
	// read there with it.
	CheckManifest(ctx context.Context, repo Repository, reference string, m *oci.Manifest) (image bool, sources []Repository, err error)
	// CheckBlob is asked about every blob response, GET or HEAD, full or
	// ranged. maxBytes, when positive, is the most the blob may have (a
	// blob allowed only as signature material is served only up to the
	// size its artifact lists); a larger one is refused.
	CheckBlob(ctx context.Context, repo Repository, digest v1.Hash) (maxBytes int64, err error)
	// CheckReferrers is asked about every referrers answer, with the exact
	// bytes about to be served.
	CheckReferrers(ctx context.Context, repo Repository, subject v1.Hash, body []byte) error
}

// Preparer is a Gate that can start, for a manifest asked for by digest,
// the part of its decision that needs only the digest (finding its
// signatures) while the proxy fetches its bytes. It changes no decision:
// CheckManifest still decides on the bytes. release is called when the
// request is done.
type Preparer interface {
	PrepareManifest(ctx context.Context, repo Repository, digest v1.Hash) (release func())
}

// Refusal is how a Gate refuses: an error with a Refused method. Its
// Error() is the message the client reads; detail (any JSON-marshalable
// value, may be nil) goes in the error body; notFound answers 404
// MANIFEST_UNKNOWN instead of 403 DENIED (a manifest kept where signature
// material is, but not of its shape: clients read 404 there as "no
// signatures"). The proxy's own DeniedError is one.
type Refusal interface {
	error
	Refused() (detail any, notFound bool)
}

// AllowAllUnsafe is the Gate of a plain mirror: it allows everything, so
// nothing is verified. It is never a default: New requires a Gate, and a
// deployment gets this one only with "unverified: true" in its config.
type AllowAllUnsafe struct{}

var _ Gate = AllowAllUnsafe{}

// CheckManifest allows every manifest, as an image.
func (AllowAllUnsafe) CheckManifest(context.Context, Repository, string, *oci.Manifest) (bool, []Repository, error) {
	return true, nil, nil
}

// CheckBlob allows every blob.
func (AllowAllUnsafe) CheckBlob(context.Context, Repository, v1.Hash) (int64, error) { return 0, nil }

// CheckReferrers allows every referrers answer.
func (AllowAllUnsafe) CheckReferrers(context.Context, Repository, v1.Hash, []byte) error { return nil }
