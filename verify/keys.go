package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/signature"
)

// keyMaterial is the trusted material of one key authority: it answers
// every key hint with the key. The hint is only a lookup aid (legacy
// signatures have none; bundles' hints are not standardised); the signature
// check decides.
func keyMaterial(pub crypto.PublicKey) (*root.TrustedPublicKeyMaterial, error) {
	v, err := keyVerifier(pub)
	if err != nil {
		return nil, err
	}
	// A policy key does not expire: zero validity bounds.
	k := root.NewExpiringKey(v, time.Time{}, time.Time{})
	return root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return k, nil
	}), nil
}

// keyVerifier returns a verifier for pub that accepts the hash choices
// cosign and sigstore-go signers make for that key type: ECDSA with the
// curve's hash or SHA-256 (old clients), Ed25519 pure or pre-hashed, RSA
// PKCS#1 v1.5 with SHA-256.
func keyVerifier(pub crypto.PublicKey) (signature.Verifier, error) {
	var vs []signature.Verifier
	add := func(v signature.Verifier, err error) {
		if err == nil {
			vs = append(vs, v)
		}
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		add(signature.LoadECDSAVerifier(k, curveHash(k.Curve)))
		if curveHash(k.Curve) != crypto.SHA256 {
			add(signature.LoadECDSAVerifier(k, crypto.SHA256))
		}
	case ed25519.PublicKey:
		add(signature.LoadED25519Verifier(k))
		add(signature.LoadED25519phVerifier(k))
	case *rsa.PublicKey:
		add(signature.LoadRSAPKCS1v15Verifier(k, crypto.SHA256))
	default:
		return nil, fmt.Errorf("unsupported key type %T", pub)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("unusable %T key", pub)
	}
	if len(vs) == 1 {
		return vs[0], nil
	}
	return &anyVerifier{pub: pub, vs: vs}, nil
}

func curveHash(c elliptic.Curve) crypto.Hash {
	switch c {
	case elliptic.P384():
		return crypto.SHA384
	case elliptic.P521():
		return crypto.SHA512
	}
	return crypto.SHA256
}

// anyVerifier accepts a signature any of its verifiers accepts.
type anyVerifier struct {
	pub crypto.PublicKey
	vs  []signature.Verifier
}

func (a *anyVerifier) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return a.pub, nil
}

func (a *anyVerifier) VerifySignature(sig, msg io.Reader, opts ...signature.VerifyOption) error {
	sigb, err := io.ReadAll(sig)
	if err != nil {
		return fmt.Errorf("reading signature: %w", err)
	}
	msgb, err := io.ReadAll(msg)
	if err != nil {
		return fmt.Errorf("reading message: %w", err)
	}
	var errs []error
	for _, v := range a.vs {
		err := v.VerifySignature(bytes.NewReader(sigb), bytes.NewReader(msgb), opts...)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
