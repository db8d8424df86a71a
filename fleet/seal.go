package fleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
)

// Sealer authenticates values with an HMAC-SHA256 keyed from the replicas'
// shared key. A sealed value is the MAC of (name, payload) followed by the
// payload, so a value copied under another Redis key does not open.
type Sealer struct{ key []byte }

// NewSealer returns a Sealer keyed with key (the contents of hmacKeyFile).
func NewSealer(key []byte) *Sealer { return &Sealer{key: append([]byte(nil), key...)} }

// errBadSeal says a value's MAC does not match: it was not written by a
// replica holding the key, or not for this name.
var errBadSeal = errors.New("HMAC does not match")

func (s *Sealer) mac(name string, payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

// Seal returns payload sealed for name.
func (s *Sealer) Seal(name string, payload []byte) []byte {
	return append(s.mac(name, payload), payload...)
}

// Open returns the payload of a value sealed for name, or errBadSeal.
func (s *Sealer) Open(name string, sealed []byte) ([]byte, error) {
	if len(sealed) < sha256.Size {
		return nil, errBadSeal
	}
	payload := sealed[sha256.Size:]
	if !hmac.Equal(sealed[:sha256.Size], s.mac(name, payload)) {
		return nil, errBadSeal
	}
	return payload, nil
}
