package proxy

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
)

// parseDigest is oci.ParseDigest, refused as 400 DIGEST_INVALID.
func parseDigest(s string) (v1.Hash, *regError) {
	d, err := oci.ParseDigest(s)
	if err != nil {
		return v1.Hash{}, newError(codeDigestInvalid, "%v", err)
	}
	return d, nil
}
