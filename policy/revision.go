package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"maps"
	"slices"
)

// revision hashes the policy file and every file it references, so that a
// change to any of them is a new revision: lower-case hex SHA-256 over the
// policy bytes, then each referenced file in order of absolute path. Each
// part is framed by its name and length, so that no two different sets of
// files hash alike by moving bytes from one file to the next.
func revision(policy []byte, files map[string][]byte) string {
	h := sha256.New()
	frame(h, "policy", policy) // referenced files have absolute names
	for _, name := range slices.Sorted(maps.Keys(files)) {
		frame(h, name, files[name])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// frame writes len(name), name, len(data), data to h.
func frame(h hash.Hash, name string, data []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	h.Write(n[:])
	h.Write([]byte(name))
	binary.BigEndian.PutUint64(n[:], uint64(len(data)))
	h.Write(n[:])
	h.Write(data)
}
