package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/portcullis-dev/portcullis/oci"
)

// warmResult is the line "cache warm" prints for one image.
type warmResult struct {
	Image   string `json:"image"`
	Digest  string `json:"digest,omitempty"`
	Allowed bool   `json:"allowed"`
	// Manifests and Blobs count what was pulled (all platforms of an
	// index), Bytes the blobs' sizes.
	Manifests int    `json:"manifests,omitempty"`
	Blobs     int    `json:"blobs,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Error     string `json:"error,omitempty"`
}

func (r warmResult) String() string {
	if r.Allowed {
		return fmt.Sprintf("allowed and stored: %s@%s (%d manifests, %d blobs, %s)", r.Image, r.Digest, r.Manifests, r.Blobs, humanBytes(r.Bytes))
	}
	return fmt.Sprintf("refused: %s: %s", r.Image, r.Error)
}

// warm pulls image through the proxy listening at addr, as a client
// would: the manifest (every platform of an index) and every blob, so
// that the gate decides and the content store keeps what it allows, with
// its signature material. progress, if not nil, is told of each blob.
func warm(ctx context.Context, addr, image, defaultRegistry string, configured func(string) bool, progress func(string)) warmResult {
	res := warmResult{Image: image}
	repo, ref, err := oci.ParseImage(image, defaultRegistry, configured)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Image = repo.String() + refSuffix(ref)
	r, err := name.ParseReference(addr+"/"+repo.Registry+"/"+repo.Name+refSuffix(ref), name.Insecure)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	desc, err := remote.Get(r, remote.WithContext(ctx))
	if err != nil {
		res.Error = refusalText(err)
		return res
	}
	res.Digest = desc.Digest.String()
	var images []v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			res.Error = err.Error()
			return res
		}
		im, err := idx.IndexManifest()
		if err != nil {
			res.Error = err.Error()
			return res
		}
		res.Manifests++
		for _, child := range im.Manifests {
			if !child.MediaType.IsImage() {
				continue
			}
			img, err := idx.Image(child.Digest)
			if err != nil {
				res.Error = refusalText(err)
				return res
			}
			images = append(images, img)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			res.Error = err.Error()
			return res
		}
		images = append(images, img)
	}
	for _, img := range images {
		res.Manifests++
		if err := pullBlobs(img, &res, progress); err != nil {
			res.Error = refusalText(err)
			return res
		}
	}
	res.Allowed = true
	return res
}

// pullBlobs reads an image's config and layers to the end.
func pullBlobs(img v1.Image, res *warmResult, progress func(string)) error {
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	res.Blobs++
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		res.Blobs++
		res.Bytes += n
		if progress != nil {
			progress(fmt.Sprintf("  %s %s", d, humanBytes(n)))
		}
	}
	return nil
}

func refSuffix(ref string) string {
	if oci.IsDigest(ref) {
		return "@" + ref
	}
	return ":" + ref
}

// refusalText is the proxy's message in a registry error (the 403's
// reason), else the error.
func refusalText(err error) string {
	var te *transport.Error
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs := make([]string, len(te.Errors))
		for i, d := range te.Errors {
			msgs[i] = d.Message
		}
		return fmt.Sprintf("%d %s", te.StatusCode, strings.Join(msgs, "; "))
	}
	return err.Error()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
