package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fixtures is what the upstream holds, for the phases to ask for.
type fixtures struct {
	Repo           string `json:"repo"`
	Tag            string `json:"tag"`
	ManifestDigest string `json:"manifest_digest"`
	ManifestSize   int64  `json:"manifest_size"`
	ManifestType   string `json:"manifest_media_type"`
	BlobRepo       string `json:"blob_repo"`
	BlobTag        string `json:"blob_tag"`
	BlobDigest     string `json:"blob_digest"`
	BlobSize       int64  `json:"blob_size"`
	// BlobManifest is the digest of the image at BlobRepo:BlobTag.
	BlobManifest string `json:"blob_manifest_digest"`
	// KeyHint is the hint of the key every fixture is signed with.
	KeyHint string `json:"key_hint"`
	// HerdBlobs are the two layers (HerdBlobSize each) of the image at
	// HerdBlobRepo:HerdBlobTag (digest HerdBlobManifest), for the
	// store-herd phase.
	HerdBlobRepo     string   `json:"herd_blob_repo"`
	HerdBlobTag      string   `json:"herd_blob_tag"`
	HerdBlobs        []string `json:"herd_blobs"`
	HerdBlobSize     int64    `json:"herd_blob_size"`
	HerdBlobManifest string   `json:"herd_blob_manifest_digest"`
	// Cold are images no phase pulls before the cold phase; Herd are the
	// images of the herd phase, one per trial.
	Cold []signedImage `json:"cold"`
	Herd []signedImage `json:"herd"`
}

// seed pushes a small random image (for the manifest phase), an image
// with one large pseudo-random layer (for the blob phase), and the fresh
// images of the cold and herd phases to the registry at base
// (http://host:port), and signs them all with sg: the manifest image in
// both formats, the blob image with a legacy signature, the fresh images
// alternately legacy and bundle.
func seed(ctx context.Context, base string, cfg config, sg *signer) (fixtures, error) {
	fix := fixtures{Repo: "acme/app", Tag: "v1", BlobRepo: "acme/big", BlobTag: "v1", KeyHint: sg.s.Hint()}
	if err := pushImage(ctx, base, &fix); err != nil {
		return fix, err
	}
	d, err := v1.NewHash(fix.ManifestDigest)
	if err != nil {
		return fix, err
	}
	desc := v1.Descriptor{Digest: d, Size: fix.ManifestSize, MediaType: types.MediaType(fix.ManifestType)}
	if err := sg.sign(ctx, fix.Repo, desc, formatLegacy, formatBundle); err != nil {
		return fix, err
	}
	logf("pushing and signing %d cold and %d herd images", cfg.coldImages, cfg.herdTrials)
	if fix.Cold, err = sg.pushSignedSet(ctx, "acme/cold", "c", cfg.coldImages); err != nil {
		return fix, err
	}
	if fix.Herd, err = sg.pushSignedSet(ctx, "acme/herd", "h", cfg.herdTrials); err != nil {
		return fix, err
	}
	logf("pushing a %s blob to %s", formatSize(cfg.blobSize), fix.BlobRepo)
	bd, err := uploadBlob(ctx, base, fix.BlobRepo, newBlobReader(cfg.seed, cfg.blobSize))
	if err != nil {
		return fix, fmt.Errorf("push the large blob: %w", err)
	}
	fix.BlobDigest, fix.BlobSize = bd, cfg.blobSize
	manifest, err := pushBlobImage(ctx, base, fix)
	if err != nil {
		return fix, err
	}
	md, _, err := v1.SHA256(bytes.NewReader(manifest))
	if err != nil {
		return fix, err
	}
	fix.BlobManifest = md.String()
	desc = v1.Descriptor{Digest: md, Size: int64(len(manifest)), MediaType: mediaOCIManifest}
	if err := sg.sign(ctx, fix.BlobRepo, desc, formatLegacy); err != nil {
		return fix, err
	}
	return fix, seedHerdBlobs(ctx, base, cfg, sg, &fix)
}

// seedHerdBlobs pushes the store-herd phase's image: two layers of
// cfg.herdBlobSize, signed.
func seedHerdBlobs(ctx context.Context, base string, cfg config, sg *signer, fix *fixtures) error {
	fix.HerdBlobRepo, fix.HerdBlobTag, fix.HerdBlobSize = "acme/herdblob", "v1", cfg.herdBlobSize
	logf("pushing two %s blobs to %s", formatSize(cfg.herdBlobSize), fix.HerdBlobRepo)
	for i := range uint64(2) {
		d, err := uploadBlob(ctx, base, fix.HerdBlobRepo, newBlobReader(cfg.seed+1+i, cfg.herdBlobSize))
		if err != nil {
			return fmt.Errorf("push a herd blob: %w", err)
		}
		fix.HerdBlobs = append(fix.HerdBlobs, d)
	}
	manifest, err := pushLayersImage(ctx, base, fix.HerdBlobRepo, fix.HerdBlobTag, fix.HerdBlobs, fix.HerdBlobSize)
	if err != nil {
		return err
	}
	md, _, err := v1.SHA256(bytes.NewReader(manifest))
	if err != nil {
		return err
	}
	fix.HerdBlobManifest = md.String()
	return sg.sign(ctx, fix.HerdBlobRepo, v1.Descriptor{Digest: md, Size: int64(len(manifest)), MediaType: mediaOCIManifest}, formatLegacy)
}

// pushImage writes a random two-layer image with go-containerregistry.
func pushImage(ctx context.Context, base string, fix *fixtures) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("upstream url: %w", err)
	}
	ref, err := name.ParseReference(u.Host+"/"+fix.Repo+":"+fix.Tag, name.Insecure)
	if err != nil {
		return fmt.Errorf("image reference: %w", err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		return fmt.Errorf("random image: %w", err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("image manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return fmt.Errorf("image media type: %w", err)
	}
	fix.ManifestDigest, fix.ManifestSize, fix.ManifestType = d.String(), int64(len(raw)), string(mt)
	return nil
}

// pushBlobImage tags an OCI image whose only layer is the large blob, so
// the blob is reachable like any layer (a config blob and a manifest), and
// returns the manifest.
func pushBlobImage(ctx context.Context, base string, fix fixtures) ([]byte, error) {
	return pushLayersImage(ctx, base, fix.BlobRepo, fix.BlobTag, []string{fix.BlobDigest}, fix.BlobSize)
}

// pushLayersImage tags repo:tag as an OCI image of the given layers (each
// of size bytes, already pushed) and a config, and returns the manifest.
func pushLayersImage(ctx context.Context, base, repo, tag string, layers []string, size int64) ([]byte, error) {
	cfgJSON, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": layers},
	})
	if err != nil {
		return nil, fmt.Errorf("config blob: %w", err)
	}
	cfgDigest, err := uploadBytes(ctx, base, repo, cfgJSON)
	if err != nil {
		return nil, fmt.Errorf("push the config blob: %w", err)
	}
	descs := make([]any, len(layers))
	for i, d := range layers {
		descs[i] = descriptor("application/vnd.oci.image.layer.v1.tar", d, size)
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaOCIManifest,
		"config":        descriptor("application/vnd.oci.image.config.v1+json", cfgDigest, int64(len(cfgJSON))),
		"layers":        descs,
	})
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return manifest, putManifest(ctx, base, repo, tag, mediaOCIManifest, manifest)
}

const mediaOCIManifest = "application/vnd.oci.image.manifest.v1+json"

func descriptor(mediaType, digest string, size int64) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest, "size": size}
}
