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
// change to any of them is a new revision, while where they are mounted is
// not (replicas that mount them at other directories agree): lower-case hex
// SHA-256 over the policy bytes, then each referenced file in order of the
// YAML path of the setting that names it, such as
// "policies[0].authorities[1].key.path". The policy bytes fix which
// settings name files, and each part is framed by its name and length, so
// that no two different policies and sets of files hash alike by moving
// bytes from one to the next.
func revision(policy []byte, files map[string][]byte) string {
	h := sha256.New()
	frame(h, "policy", policy) // not a setting path
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
