package verify

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"golang.org/x/sync/errgroup"
)

// Default limits, used for zero Limits fields.
const (
	DefaultMaxSignatures       = 32
	DefaultMaxLayerBytes int64 = 1 << 20
	// DefaultMaxArtifactEntries bounds the layers or entries of signature
	// material (and of what is judged as such).
	DefaultMaxArtifactEntries = 1000
)

// fetchConcurrency bounds parallel upstream requests of one Discover.
const fetchConcurrency = 8

// Limits bound the work of one Discover. Zero fields take the defaults.
type Limits struct {
	// MaxSignatures is how many signature candidates (legacy layers and
	// referrer manifests together) are examined per image; the rest are
	// counted in Discovery.Skipped. Default 32.
	MaxSignatures int
	// MaxLayerBytes is the largest payload or bundle blob read, and the
	// largest layer or entry signature material may list. Default 1 MiB.
	MaxLayerBytes int64
	// MaxArtifactEntries is the most layers or entries signature material
	// may have; larger artifacts are refused. Default 1,000.
	MaxArtifactEntries int
	// Attestations makes Discover also read cosign's legacy
	// "sha256-<hex>.att" tag (attestations stored as referrers are found
	// with the signatures either way). The gate sets it when a policy
	// requires attestations.
	Attestations bool
}

// WithDefaults is l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxSignatures <= 0 {
		l.MaxSignatures = DefaultMaxSignatures
	}
	if l.MaxLayerBytes <= 0 {
		l.MaxLayerBytes = DefaultMaxLayerBytes
	}
	if l.MaxArtifactEntries <= 0 {
		l.MaxArtifactEntries = DefaultMaxArtifactEntries
	}
	return l
}

// Format is the storage format of a signature.
type Format int

const (
	// Legacy is a layer of a cosign "sha256-<hex>.sig" tag.
	Legacy Format = iota + 1
	// Bundle is a cosign v3 Sigstore bundle stored as an OCI referrer.
	Bundle
	// Envelope is a DSSE envelope layer with cosign's annotations: a layer
	// of a legacy "sha256-<hex>.att" tag, or of an in-toto referrer.
	Envelope
)

func (f Format) String() string {
	switch f {
	case Legacy:
		return "legacy .sig"
	case Bundle:
		return "sigstore bundle"
	case Envelope:
		return "legacy .att"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Signature is one signature found for an image. Everything in it is a
// claim until Checker.Check has verified it.
type Signature struct {
	Format Format
	// Source says where it was found, for messages: "tag sha256-<hex>.sig
	// layer 0" or "referrer sha256:<hex>".
	Source string
	// Entity is what sigstore-go verifies; nil when Malformed != "".
	Entity sgverify.SignedEntity
	// Malformed says why this signature cannot be used ("" when usable).
	Malformed string

	// DockerManifestDigest and DockerReference are the legacy payload's
	// critical.image.docker-manifest-digest and critical.identity.docker-reference.
	DockerManifestDigest, DockerReference string
	// PredicateType is a bundle statement's predicateType.
	PredicateType string
	// SubjectDigests are a bundle statement's subject digests ("sha256:<hex>").
	SubjectDigests []string
	// Signer describes the (unverified) signer for messages: "key <hint>",
	// "key (unidentified)" or "certificate issuer <iss> subject <san>".
	Signer string
	// Attestation is true for an in-toto statement that is not a cosign
	// image signature (by its claimed predicate type; the verified one
	// decides).
	Attestation bool

	claimType string // legacy critical.type
	payload   []byte // legacy signed payload
	facts     sigFacts
}

// malformed is a signature that cannot be used, and why.
func malformed(f Format, source, why string) *Signature {
	return &Signature{Format: f, Source: source, Malformed: why}
}

// sigFacts are unverified properties used to pick verifiers and explain
// failures.
type sigFacts struct {
	hasCert      bool
	summary      *certificate.Summary // certificate identity; nil without a certificate
	issuer, san  string               // certificate OIDC issuer and SAN
	keyHint      string               // key hint (bundle publicKey.hint or derived from Rekor entry)
	notAfter     time.Time            // certificate expiry
	hasTlog      bool                 // has at least one transparency log entry
	hasSET       bool                 // has an entry with an inclusion promise (SET)
	hasTimestamp bool                 // has an RFC 3161 timestamp
}

// Discovery is the signature material found for one image digest.
type Discovery struct {
	Digest     v1.Hash
	Signatures []*Signature
	// Attestations are the in-toto statements of other predicate types than
	// a cosign signature, in every format (attestations are not
	// signatures; an authority with attestation requirements checks them).
	Attestations []*Signature
	// Skipped counts candidates not examined because of Limits.MaxSignatures;
	// Examined counts those that were.
	Skipped, Examined int
	// Looked lists where signatures were looked for, for messages:
	// "referrers of sha256:<hex>", "tag sha256-<hex>.sig".
	Looked []string
}

// candidate is one thing to fetch and parse into a signature.
type candidate interface {
	// examine fetches and parses the candidate: nil when it is not
	// signature material, else one Signature per signature it holds.
	examine(ctx context.Context, e *examiner) ([]*Signature, error)
}

// examiner carries what every candidate needs.
type examiner struct {
	r      Reader
	repo   Repository // where the signatures are read
	image  Repository // the image's own repository (repo, or signed from another)
	digest v1.Hash
	lim    Limits
	// spare is what is left of MaxSignatures once the candidates are
	// planned: a referrer holding several envelopes takes the rest of
	// them from it; overflow counts what it had no budget for.
	spare, overflow atomic.Int64
}

// Discover finds the signatures of image digest d in repo, in both formats,
// every time. It returns an error only when the upstream could not be read.
func Discover(ctx context.Context, r Reader, repo Repository, d v1.Hash, lim Limits) (*Discovery, error) {
	return DiscoverFrom(ctx, r, repo, repo, d, lim)
}

// DiscoverFrom is Discover of the signatures of image's digest d that are
// stored in src: image itself, or another repository (a policy's
// signaturesFrom; cosign puts them there under COSIGN_REPOSITORY). It
// reads src only; image is what the signer named, which is what a legacy
// payload names (rebuiltPayload).
func DiscoverFrom(ctx context.Context, r Reader, src, image Repository, d v1.Hash, lim Limits) (*Discovery, error) {
	e := &examiner{r: r, repo: src, image: image, digest: d, lim: lim.WithDefaults()}
	disc := &Discovery{Digest: d, Looked: []string{"referrers of " + d.String(), "tag " + legacyTag(d)}}
	if e.lim.Attestations {
		disc.Looked = append(disc.Looked, "tag "+attestationTag(d))
	}
	refs, sigTag, attTag, err := e.list(ctx)
	if err != nil {
		return nil, err
	}
	cands := e.plan(refs, sigTag, attTag, disc)
	if err := e.examineAll(ctx, cands, disc); err != nil {
		return nil, err
	}
	return disc, nil
}

// list fetches the referrers index and the legacy signature tag (and the
// attestation tag, when asked for) together.
func (e *examiner) list(ctx context.Context) (*v1.IndexManifest, *Manifest, *Manifest, error) {
	var refs *v1.IndexManifest
	var sigTag, attTag *Manifest
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if refs, err = e.r.Referrers(gctx, e.repo, e.digest); err != nil {
			return fmt.Errorf("referrers of %s in %s: %w", e.digest, e.repo, err)
		}
		return nil
	})
	g.Go(func() error {
		var err error
		sigTag, err = e.tagManifest(gctx, legacyTag(e.digest))
		return err
	})
	if e.lim.Attestations {
		g.Go(func() error {
			var err error
			attTag, err = e.tagManifest(gctx, attestationTag(e.digest))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, nil, err
	}
	return refs, sigTag, attTag, nil
}

// plan orders the candidates (referrers annotated as signatures, then
// legacy layers, then unannotated referrers, then legacy attestation
// layers) and applies the budget, which attestations count toward too.
func (e *examiner) plan(refs *v1.IndexManifest, sigTag, attTag *Manifest, disc *Discovery) []candidate {
	signed, unknown := sortReferrers(refs)
	legacy, bad := legacyCandidates(sigTag, e.digest)
	if bad != nil {
		disc.Signatures = append(disc.Signatures, bad)
	}
	atts, bad := envelopeCandidates(attTag, "tag "+attestationTag(e.digest), e.lim.MaxSignatures)
	if bad != nil {
		disc.Attestations = append(disc.Attestations, bad)
	}
	all := slices.Concat(signed, legacy, unknown, atts)
	if n := e.lim.MaxSignatures; len(all) > n {
		disc.Skipped = len(all) - n
		all = all[:n]
	}
	disc.Examined = len(all)
	e.spare.Store(int64(e.lim.MaxSignatures - len(all)))
	return all
}

// examineAll fetches and parses candidates concurrently, keeping their order.
func (e *examiner) examineAll(ctx context.Context, cands []candidate, disc *Discovery) error {
	found := make([][]*Signature, len(cands))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchConcurrency)
	for i, c := range cands {
		g.Go(func() error {
			var err error
			found[i], err = c.examine(gctx, e)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	disc.Skipped += int(e.overflow.Load())
	for _, s := range slices.Concat(found...) {
		if s.Attestation {
			disc.Attestations = append(disc.Attestations, s)
		} else {
			disc.Signatures = append(disc.Signatures, s)
		}
	}
	return nil
}

// sortReferrers orders referrer descriptors: those annotated as cosign
// signatures first, then those that may be bundles (no annotation: fallback
// indexes and registries that do not copy annotations), then those
// annotated with another predicate type (most likely attestations, but the
// annotation is a claim: the bundle's statement decides). Descriptors whose
// artifactType is neither a bundle nor the empty-config type some
// registries report are not Sigstore material and are dropped.
func sortReferrers(refs *v1.IndexManifest) (signed, rest []candidate) {
	if refs == nil {
		return nil, nil
	}
	descs := append([]v1.Descriptor(nil), refs.Manifests...)
	sort.SliceStable(descs, func(i, j int) bool { return descs[i].Digest.String() < descs[j].Digest.String() })
	var unknown, others []candidate
	for i, d := range descs {
		if i > 0 && descs[i-1].Digest == d.Digest {
			continue // listed twice
		}
		if !maybeSigstoreArtifact(d.ArtifactType) {
			continue // not Sigstore material
		}
		// The annotation only orders candidates: the bundle's own
		// (verified) statement decides what it is.
		switch pt := d.Annotations[annBundlePredicateType]; {
		case pt == SignPredicateType:
			signed = append(signed, referrerCandidate{desc: d})
		case pt != "":
			others = append(others, referrerCandidate{desc: d})
		default:
			unknown = append(unknown, referrerCandidate{desc: d})
		}
	}
	return signed, append(unknown, others...)
}
