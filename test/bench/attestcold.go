package main

// The attest-cold phase: what requiring an attestation adds to a first
// pull. Through a freshly started Portcullis, first GETs (by digest) of
// images signed with a bundle signature alone, under the bench policy,
// alternate with first GETs of images that also carry a SLSA provenance
// attestation, in a repository whose second policy requires it (with a
// CEL condition): the same decision plus finding the attestation
// (referrers and the legacy .att tag), verifying it and evaluating the
// condition. Both kinds of image sit in the same upstream and are asked
// for by the same client, one at a time, so the ratio of their medians is
// the cost of the attestation requirement.

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Repositories and cases of the phase.
const (
	attestRepo      = "attest-cold-attested" // the bench policy's provenance policy matches it
	attestPlainRepo = "attest-cold-signed"
	attestColdCase  = "first GET by digest"
	attestCase      = "bundle signature + SLSA attestation" // the targets compared
	attestPlainCase = "bundle signature only"
)

// attestColdImages caps -cold-images for the attest-cold phase, which
// pushes half of it of each kind (50 signed, 50 signed and attested): its
// goal is a ratio of two kinds of decision in one process, which needs
// fewer samples than a comparison of two processes.
const attestColdImages = 100

var attestFleet = fleetSpec{proxies: []string{targetPortcullis}}

func runAttestColdPhase(ctx context.Context, b *bench, f *fleet) ([]Metric, error) {
	n := max(4, min(b.cfg.coldImages, attestColdImages)/2)
	logf("phase attest-cold: pushing %d signed and %d signed and attested images", n, n)
	var plain, attested []signedImage
	for i := range n {
		im, err := b.signer.pushSigned(ctx, attestPlainRepo, fmt.Sprintf("p%02d", i), formatBundle)
		if err != nil {
			return nil, err
		}
		plain = append(plain, im)
		if im, err = b.signer.pushSigned(ctx, attestRepo, fmt.Sprintf("a%02d", i), formatBundle); err != nil {
			return nil, err
		}
		r, err := b.signer.repository(attestRepo)
		if err != nil {
			return nil, err
		}
		d, err := v1.NewHash(im.Digest)
		if err != nil {
			return nil, err
		}
		desc := v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: d, Size: im.Size}
		if err := b.signer.s.Attest(r, desc, benchSLSA, benchProvenance, remote.WithContext(ctx)); err != nil {
			return nil, fmt.Errorf("attest %s: %w", im.Digest, err)
		}
		attested = append(attested, im)
	}
	pc := f.target(targetPortcullis)
	client := noProxyClient()
	defer client.CloseIdleConnections()
	warm := manifestGetter(client, pc.base, b.fix.Repo, b.fix.ManifestDigest, b.fix.ManifestDigest)
	if err := warmUp(ctx, warm); err != nil {
		return nil, err
	}
	lat := map[string][]float64{}
	for i := range n {
		for _, c := range []struct {
			name string
			im   signedImage
		}{{attestPlainCase, plain[i]}, {attestCase, attested[i]}} {
			d, err := manifestGetter(client, pc.base, c.im.Repo, c.im.Digest, c.im.Digest)(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", c.name, c.im.Digest, err)
			}
			lat[c.name] = append(lat[c.name], ms(d))
		}
	}
	// An image of the attested repository without the attestation is
	// refused: the requirement is in force, not a no-op.
	bare, err := b.signer.pushSigned(ctx, attestRepo, "bare", formatBundle)
	if err != nil {
		return nil, err
	}
	if _, err := manifestGetter(client, pc.base, bare.Repo, bare.Digest, bare.Digest)(ctx); err == nil {
		return nil, fmt.Errorf("attest-cold: an image without the attestation was served")
	}
	var out []Metric
	for _, c := range []string{attestPlainCase, attestCase} {
		xs := lat[c]
		logf("attest-cold %s: p50 %.2f ms, p99 %.2f ms over %d images", c, median(xs), percentileOf(xs, 99), len(xs))
		out = append(out, latencyMetrics("attest-cold", attestColdCase, c, xs)...)
	}
	logf("attest-cold: attested/signed-only p50 %.2fx", median(lat[attestCase])/median(lat[attestPlainCase]))
	return out, nil
}
