package oci

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotFound is what readers of a registry return (possibly wrapped) when
// the manifest, tag or blob asked for does not exist. Any other error means
// the registry could not be read.
var ErrNotFound = errors.New("not found")

// digestHexLen is the hex length of each algorithm registries use (0
// for any other).
func digestHexLen(alg string) int {
	switch alg {
	case "sha256":
		return 64
	case "sha512":
		return 128
	}
	return 0
}

// ParseDigest accepts "sha256:<64 hex>" and "sha512:<128 hex>", lower-case.
func ParseDigest(s string) (v1.Hash, error) {
	alg, hx, ok := strings.Cut(s, ":")
	want := digestHexLen(alg)
	if !ok || want == 0 || len(hx) != want || !lowerHex(hx) {
		return v1.Hash{}, fmt.Errorf("invalid digest %q", s)
	}
	return v1.Hash{Algorithm: alg, Hex: hx}, nil
}

// lowerHex reports whether s is lower-case hexadecimal (without
// allocating, as hex.DecodeString would: every request parses a digest).
func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// IsDigest reports whether a manifest reference is a digest ("alg:hex")
// rather than a tag (tags cannot hold a colon).
func IsDigest(ref string) bool { return strings.Contains(ref, ":") }

// NewHasher is the hash of alg: sha512 for "sha512", sha256 otherwise.
func NewHasher(alg string) hash.Hash {
	if alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// Digest digests b with alg ("sha256" or "sha512").
func Digest(alg string, b []byte) (v1.Hash, error) {
	if digestHexLen(alg) == 0 {
		return v1.Hash{}, fmt.Errorf("unsupported digest algorithm %q", alg)
	}
	h := NewHasher(alg)
	h.Write(b)
	return v1.Hash{Algorithm: alg, Hex: hex.EncodeToString(h.Sum(nil))}, nil
}
