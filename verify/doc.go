// Package verify decides whether an image digest carries a valid cosign
// signature from a policy authority.
//
// It has two halves:
//
//   - Discover finds the signature material of a digest upstream, in both
//     formats cosign writes, every time: cosign v3 Sigstore bundles stored as
//     OCI referrers (predicate https://sigstore.dev/cosign/sign/v1; other
//     predicates are attestations, counted but not signatures), and legacy
//     "sha256-<hex>.sig" tags with one simple-signing layer per signature.
//     It reads through a Reader (package upstream's Client, the one the
//     proxy serves from) and does bounded work (Limits). A legacy payload
//     that is the document cosign writes by default for the image is
//     rebuilt from the digest its layer gives rather than read, also when
//     the signatures are stored in another repository (DiscoverFrom; payload.go;
//     a Reader that keeps what is read, a Keeper, is handed it). Malformed
//     material is reported per signature, not as an error; an error means
//     the upstream could not be read, so nothing can be decided.
//
//   - Checker.Check decides one policy.Authority (a key, or keyless Fulcio
//     identities) against a Discovery, in process, with sigstore-go: the
//     signature, the certificate chain at a trusted signing time (Rekor SET
//     or RFC 3161 timestamp, never the wall clock), the transparency log
//     entry, the identity, and that the signed payload names the digest
//     being served. The result carries reasons an administrator can act on.
//     Legacy layers are verified through a SignedEntity of this package (a
//     message signature over the payload, with the layer's certificate,
//     chain, Rekor SET and timestamp); bundles through sigstore-go's own.
//
// Decisions (verdicts, grants, the policy outcome) are package gate's;
// verify only finds and checks signatures. The package knows no HTTP server
// and never fetches TUF metadata: trust roots come from a TrustProvider
// (StaticTrust parses trusted_root.json bytes). It does not import cosign.
// Its test fixtures are shared with gate's through verifytest.
package verify
