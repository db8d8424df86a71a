package policy

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/portcullis-dev/portcullis/internal/yamlfile"
)

// This file is about who signed: the signer names that threshold counts
// (one signer counts once, however many authorities it passes), and the
// lint warning about authorities of one policy that name the same signer.

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

// checkSameSigners warns when two authorities of one policy name the same
// key, or share an identity: a signature by that signer passes both, but
// counts once toward threshold, so the policy asks for fewer distinct
// signers than it seems to. auths are the compiled rp.authorities.
func (c *compiler) checkSameSigners(rp *rawPolicy, auths []*Authority) {
	keys := make(map[string]int)   // KeySigner -> index of the first authority with it
	ids := make(map[string]string) // identity (identityKey) -> path of its first occurrence
	owner := make(map[string]int)  // that path -> index of its authority
	for i, a := range auths {
		ra := rp.authorities[i]
		if a.Key != nil && a.Key.Public != nil {
			if s := KeySigner(a.Key.Public); s != "" {
				if first, dup := keys[s]; dup {
					ff := rp.authorities[first]
					c.Warnf(yamlfile.Join(ra.path, "key"), "same key as %s %s (line %d); %s",
						ff.path, yamlfile.Quote(ff.name), c.Line(ff.path), countedOnce)
				} else {
					keys[s] = i
				}
			}
		}
		if ra.keyless == nil {
			continue
		}
		for _, ri := range ra.keyless.identities {
			id := identityKey(ri)
			first, dup := ids[id]
			switch {
			case !dup:
				ids[id], owner[ri.path] = ri.path, i
			case owner[first] != i: // a repeat within one authority is harmless
				c.Warnf(ri.path, "same identity as %s (line %d) of authority %s; %s",
					first, c.Line(first), yamlfile.Quote(rp.authorities[owner[first]].name), countedOnce)
			}
		}
	}
}

// countedOnce ends the warnings of checkSameSigners.
const countedOnce = "a signer counts once toward threshold, however many authorities it passes"

// identityKey is what an identity accepts, as a map key: its fields
// without its path (fmt prints maps sorted by key).
func identityKey(ri *rawIdentity) string {
	var gh GitHubIdentity
	if ri.github != nil {
		gh = *ri.github
	}
	return fmt.Sprintf("%q %q %q %q %+v %v", ri.issuer, ri.issuerRegExp, ri.subject, ri.subjectRegExp, gh, ri.extensions)
}
