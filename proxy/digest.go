package proxy

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// parseDigest accepts "sha256:<64 hex>" and "sha512:<128 hex>", lower-case,
// the algorithms registries use.
func parseDigest(s string) (v1.Hash, *regError) {
	alg, hx, ok := strings.Cut(s, ":")
	want := map[string]int{"sha256": 64, "sha512": 128}[alg]
	if !ok || want == 0 || len(hx) != want || strings.ToLower(hx) != hx {
		return v1.Hash{}, newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q", s)
	}
	if _, err := hex.DecodeString(hx); err != nil {
		return v1.Hash{}, newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q", s)
	}
	return v1.Hash{Algorithm: alg, Hex: hx}, nil
}

// isDigest reports whether a manifest reference is a digest rather than a tag.
func isDigest(ref string) bool { return strings.Contains(ref, ":") }

func newHasher(alg string) hash.Hash {
	if alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

func digestOf(alg string, b []byte) v1.Hash {
	h := newHasher(alg)
	h.Write(b)
	return v1.Hash{Algorithm: alg, Hex: hex.EncodeToString(h.Sum(nil))}
}
