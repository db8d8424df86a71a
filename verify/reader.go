package verify

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
)

// ErrNotFound is returned (possibly wrapped) by a Reader when the manifest,
// tag or blob asked for does not exist upstream. Any other error means the
// upstream could not be read: the decision cannot be made.
var ErrNotFound = oci.ErrNotFound

// Repository names an upstream repository as clients name it, e.g.
// {Registry: "registry.example", Name: "acme/app"} (the one type,
// oci.Repository).
type Repository = oci.Repository

// Manifest is a manifest as the upstream served it: the exact bytes, their
// digest (computed over the bytes, never taken from a header) and the media
// type the registry reported (the one type, oci.Manifest).
type Manifest = oci.Manifest

// Reader reads what discovery needs from an upstream registry: the
// upstream package's Client implements it (the same client, caches and
// digest checks the proxy serves from).
//
// Implementations return ErrNotFound (errors.Is) for absent content and any
// other error when the upstream cannot answer; the latter propagates out of
// Discover and must make the caller answer "unavailable", never "unsigned".
type Reader interface {
	// Manifest fetches a manifest by tag or by "sha256:<hex>". The bytes
	// are hashed and, for a digest reference, checked against it.
	Manifest(ctx context.Context, repo Repository, ref string) (*Manifest, error)
	// Referrers lists the manifests whose subject is subject: the referrers
	// API, else the "sha256-<hex>" fallback tag index, else an empty index.
	Referrers(ctx context.Context, repo Repository, subject v1.Hash) (*v1.IndexManifest, error)
	// Blob fetches a whole blob, checked against d. It fails when the blob
	// is larger than max bytes.
	Blob(ctx context.Context, repo Repository, d v1.Hash, max int64) ([]byte, error)
}

// legacyTag is the cosign signature tag of digest d: "sha256-<hex>.sig".
func legacyTag(d v1.Hash) string {
	return d.Algorithm + "-" + d.Hex + ".sig"
}

// attestationTag is the cosign attestation tag of digest d:
// "sha256-<hex>.att".
func attestationTag(d v1.Hash) string {
	return d.Algorithm + "-" + d.Hex + ".att"
}

// checkDigest verifies that b hashes to want.
func checkDigest(b []byte, want v1.Hash) error {
	got, err := oci.Digest(want.Algorithm, b)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("content digest %s does not match %s", got, want)
	}
	return nil
}
