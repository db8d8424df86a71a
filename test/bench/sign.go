package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/portcullis-dev/portcullis/verify/signing"
)

// Signature formats of the fixtures.
const (
	formatLegacy = "legacy"
	formatBundle = "bundle"
)

// benchRegistry is the registry name Portcullis serves the upstream as;
// the policy names images under it.
const benchRegistry = "registry.example"

// benchPolicy is the policy Portcullis runs with: every image must carry
// a signature by the bench key (either format), nothing else is served.
// The attest-cold phase's repository must also carry SLSA provenance (the
// verify-cost phase's condition).
const benchPolicy = benchKeyPolicy + `  - name: bench-provenance
    images: ["` + benchRegistry + `/` + attestRepo + `"]
    authorities:
      - name: bench-provenance
        key: {path: cosign.pub}
        attestations:
          - name: provenance
            predicateType: slsaprovenance
            condition: '` + benchCondition + `'
default: deny
`

// benchKeyPolicy is the policies list with the bench policy alone.
const benchKeyPolicy = `policies:
  - name: bench
    images: ["` + benchRegistry + `/**"]
    authorities:
      - name: bench-key
        key: {path: cosign.pub}
`

// signedImage is one image pushed to the upstream and signed there.
type signedImage struct {
	Repo      string `json:"repo"`
	Tag       string `json:"tag"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
	Format    string `json:"format"` // formatLegacy or formatBundle
}

// signer signs the fixtures in the upstream, through its host:port.
type signer struct {
	s      *signing.Signer
	upHost string // 127.0.0.1:port
}

func newSigner(upHost string) (*signer, error) {
	s, err := signing.NewSigner()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &signer{s: s, upHost: upHost}, nil
}

// writeTrust writes cosign.pub and policy.yaml into dir.
func (sg *signer) writeTrust(dir string) error {
	pem, err := sg.s.PublicKeyPEM()
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cosign.pub"), pem, 0o644); err != nil {
		return fmt.Errorf("write cosign.pub: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte(benchPolicy), 0o644); err != nil {
		return fmt.Errorf("write policy.yaml: %w", err)
	}
	return nil
}

func (sg *signer) repository(repo string) (name.Repository, error) {
	r, err := name.NewRepository(sg.upHost+"/"+repo, name.Insecure)
	if err != nil {
		return r, fmt.Errorf("repository %s: %w", repo, err)
	}
	return r, nil
}

// sign signs the manifest desc of repo in the given formats.
func (sg *signer) sign(ctx context.Context, repo string, desc v1.Descriptor, formats ...string) error {
	r, err := sg.repository(repo)
	if err != nil {
		return err
	}
	for _, f := range formats {
		switch f {
		case formatLegacy:
			// The payload names the image as clients pull it (through
			// Portcullis, as benchRegistry), as cosign signing it by that
			// name writes it.
			err = sg.s.SignLegacyAs(r, benchRegistry+"/"+repo, desc.Digest, remote.WithContext(ctx))
		case formatBundle:
			err = sg.s.SignBundle(r, desc, remote.WithContext(ctx))
		default:
			err = fmt.Errorf("unknown signature format %q", f)
		}
		if err != nil {
			return fmt.Errorf("sign %s@%s (%s): %w", repo, desc.Digest, f, err)
		}
	}
	return nil
}

// pushSigned pushes a fresh random image (two 1 KiB layers) to repo:tag and
// signs it in format.
func (sg *signer) pushSigned(ctx context.Context, repo, tag, format string) (signedImage, error) {
	r, err := sg.repository(repo)
	if err != nil {
		return signedImage{}, err
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		return signedImage{}, fmt.Errorf("random image: %w", err)
	}
	if err := remote.Write(r.Tag(tag), img, remote.WithContext(ctx)); err != nil {
		return signedImage{}, fmt.Errorf("push %s:%s: %w", repo, tag, err)
	}
	desc, err := describe(img)
	if err != nil {
		return signedImage{}, err
	}
	if err := sg.sign(ctx, repo, desc, format); err != nil {
		return signedImage{}, err
	}
	return signedImage{Repo: repo, Tag: tag, Digest: desc.Digest.String(), Size: desc.Size,
		MediaType: string(desc.MediaType), Format: format}, nil
}

// pushSignedSet pushes n signed images, alternating the formats (legacy
// first), to repo-legacy and repo-bundle, tagged prefix00, prefix01, ...
func (sg *signer) pushSignedSet(ctx context.Context, repo, prefix string, n int) ([]signedImage, error) {
	var out []signedImage
	for i := range n {
		format := formatLegacy
		if i%2 == 1 {
			format = formatBundle
		}
		im, err := sg.pushSigned(ctx, repo+"-"+format, fmt.Sprintf("%s%02d", prefix, i), format)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	return out, nil
}

func describe(img v1.Image) (v1.Descriptor, error) {
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image digest: %w", err)
	}
	sz, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image size: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image media type: %w", err)
	}
	return v1.Descriptor{Digest: d, Size: sz, MediaType: mt}, nil
}
