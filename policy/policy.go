package policy

import (
	"crypto"

	"github.com/portcullis-dev/portcullis/oci"
)

// Policy is a compiled policy file: everything resolved, read and checked,
// ready to evaluate. It is immutable once built; a reload builds a new one.
type Policy struct {
	// Revision identifies this policy: a hash of the policy file and of
	// the contents of every file it references (keys, trusted roots), not
	// of where they are. Verdicts are cached under it, so a change to any
	// of those files is a new revision, and replicas that mount the same
	// files at other paths agree on it.
	Revision string
	// TrustRoots by name.
	TrustRoots map[string]*TrustRoot
	// Policies in file order.
	Policies []*ImagePolicy
	// AllowDigests are break-glass digests ("sha256:<hex>") served whatever
	// the policies say.
	AllowDigests map[string]bool
	// DefaultAllow is true when `default: allow`: images no policy matches
	// are served. The default is deny.
	DefaultAllow bool
	// Warnings are the file's warnings (see [Lint]), for the caller to log
	// on load and reload.
	Warnings []Problem
}

// Mode says what a failing policy does.
type Mode int

const (
	// Enforce refuses images that fail the policy (the default).
	Enforce Mode = iota
	// Warn serves them, logging and counting the violation.
	Warn
)

func (m Mode) String() string {
	if m == Warn {
		return "warn"
	}
	return "enforce"
}

// ImagePolicy is one entry of `policies:`.
// PseudoPolicyPrefix starts the names that metrics, logs and decision
// records use for verdicts no policy of the file made (a default deny, a
// child of an allowed index, a blob no manifest references). No policy of
// a file may use it, so the two never mix.
const PseudoPolicyPrefix = "portcullis:"

type ImagePolicy struct {
	Name string
	// Images and ExcludeImages are the patterns as written (compiled
	// matchers are unexported).
	Images, ExcludeImages []string
	Mode                  Mode
	// Threshold is how many Authorities must pass (default 1).
	Threshold int
	// AllowUnsigned is `allow: unsigned`: matching images pass without a
	// signature check.
	AllowUnsigned bool
	// MatchRepository requires the signed payload's docker-reference to
	// name the image's repository.
	MatchRepository bool
	Authorities     []*Authority
	// Line is where the policy starts in the file, for messages.
	Line int

	images, exclude []*glob
}

// Authority is one trusted signer: a key, or a keyless (Fulcio) identity set.
// Exactly one of Key and Keyless is set.
type Authority struct {
	Name    string
	Key     *Key
	Keyless *Keyless
	// RequireTlog requires a transparency-log entry (Rekor) for the
	// signature. Default false for keys, true for keyless.
	RequireTlog bool
	// TrustRoot names the trust root (TrustRoots key) used to verify; for
	// keyless without one, the public-good instance via TUF (PublicGood).
	// A key authority uses it, when set, for RFC 3161 timestamps (the
	// signing time an attestation's maxAge needs) even without RequireTlog.
	TrustRoot string
	// SignaturesFrom, when set, is the repository the authority's
	// signatures and attestations are read from instead of the image's own
	// (cosign's COSIGN_REPOSITORY): `signaturesFrom:
	// registry.example/signatures/app`.
	SignaturesFrom oci.Repository
	// Line is where the authority starts in the file, and Path its place
	// in the YAML ("policies[0].authorities[1]"), for messages.
	Line int
	Path string
	// Attestations, when set, are what the authority requires instead of
	// an image signature: each must be satisfied by a verified in-toto
	// statement the authority signed whose subject names the served
	// digest.
	Attestations []*Attestation
}

// PublicGood is the TrustRoot name of the public Sigstore instance, used
// by keyless authorities that name no trust root (and by key authorities
// with RequireTlog that name none). When an authority uses it and the file
// does not define it, Policy.TrustRoots has an implicit entry
// {Name: PublicGood, TUF: &TUF{}}. A file may define "public-good" itself
// only as a tuf entry (to set a mirror, root file or cache directory).
const PublicGood = "public-good"

// Key is a public key authority.
type Key struct {
	// PEM is the key as written, or as read from the file `path` names.
	PEM []byte
	// Public is the parsed key: *ecdsa.PublicKey (P-256/384/521),
	// ed25519.PublicKey or *rsa.PublicKey.
	Public crypto.PublicKey
	// Hint is a short printable identifier of the key for messages:
	// base64(sha256(DER SubjectPublicKeyInfo)), the same hint cosign puts
	// in a bundle's publicKey.hint.
	Hint string
}

// Keyless is a Fulcio identity authority: a certificate chaining to the
// trust root, with one of Identities.
type Keyless struct {
	Identities []Identity
	// RequireSCT requires a signed certificate timestamp when the trust
	// root has CT logs (default true; `requireSCT: false` waives it).
	RequireSCT bool
}

// Identity is an issuer and a subject, each exact or a Go RE2 regular
// expression matched as written (unanchored: write ^ and $), and
// optionally Fulcio certificate extensions. Exactly one of
// Issuer/IssuerRegExp is set; at most one of Subject/SubjectRegExp, and
// one of them unless GitHub or Extensions is set (then the subject, the
// certificate's SAN, may be anything).
type Identity struct {
	Issuer, IssuerRegExp   string
	Subject, SubjectRegExp string
	// GitHub constrains GitHub's extensions (see GitHubIdentity).
	GitHub *GitHubIdentity
	// Extensions constrains extensions by sigstore-go's JSON name (see
	// FulcioExtensions): the value exactly, or for a key ending in
	// "RegExp" the extension without that suffix by a Go RE2 regexp.
	Extensions map[string]string

	github *compiledGitHub // compiled GitHub; nil when unset or built by hand
	exts   []extMatcher    // compiled Extensions
}

// TrustRoot is a named Sigstore trust root: a trusted_root.json file (air
// gap: never any network call) or a TUF repository.
type TrustRoot struct {
	Name string
	// TrustedRootJSON is the content of the trusted_root.json that
	// trustedRootFile names (read by Parse, part of Revision); nil for a
	// TUF root.
	TrustedRootJSON []byte
	// TUF is set for a TUF-distributed root.
	TUF *TUF
}

// TUF names a TUF repository serving a trusted root.
type TUF struct {
	// URL is the repository (mirror) URL; "" means the public-good instance.
	URL string
	// RootJSON is the content of the initial root.json to trust for a
	// mirror, which rootFile names (read by Parse, part of Revision); nil
	// uses the one embedded for the public-good instance.
	RootJSON []byte
	// CacheDir is where TUF metadata is cached: cacheDir resolved like the
	// names of files (see [Parse]), so a name in the files given to Parse,
	// not a path on disk (package internal/policyfile maps it to one); ""
	// lets the caller pick a default.
	CacheDir string
}
