package policy

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
)

// This file is about who signed: the signer names that threshold counts
// (one signer counts once, however many authorities it passes).

// KeySigner is the signer of a signature verified with the public key pub:
// "key sha256:<hex of the SHA-256 of its DER SubjectPublicKeyInfo>", the
// same whatever file, encoding or signature format the key came with; ""
// if pub cannot be encoded.
func KeySigner(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return "key sha256:" + hex.EncodeToString(sum[:])
}

// CertSigner is the signer of a signature verified with a (Fulcio)
// certificate for subject (the SAN) from the OIDC issuer:
// "cert <issuer> <subject>". Certificates are short-lived, so every
// signature from one identity has a certificate of its own; the identity
// is the signer.
func CertSigner(issuer, subject string) string {
	return "cert " + issuer + " " + subject
}
