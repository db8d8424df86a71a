package verify

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/portcullis-dev/portcullis/oci"
)

// cutDigest splits "alg:hex".
func cutDigest(d string) (alg, hex string, ok bool) {
	return strings.Cut(d, ":")
}

// sameRepository reports whether a signed docker-reference (possibly with a
// tag or digest) and the served image ("registry/repo") name the same
// repository once normalised: tag and digest dropped, Docker Hub spellings
// (docker.io, index.docker.io, registry-1.docker.io, no registry) unified
// and "library/" added to official images.
func sameRepository(ref, image string) bool {
	a, ok1 := normalizeRepository(ref)
	b, ok2 := normalizeRepository(image)
	return ok1 && ok2 && a == b
}

func normalizeRepository(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if i := strings.LastIndex(s, "@"); i >= 0 {
		s = s[:i]
	}
	ref, err := name.ParseReference(s, name.WeakValidation)
	if err != nil {
		return "", false
	}
	repo := ref.Context()
	return oci.NormalizeImage(repo.RegistryStr() + "/" + repo.RepositoryStr()), true
}
