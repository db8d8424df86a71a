package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
)

// maxManifestSize is containerd's limit (MaxManifestSize, 4 MiB); a larger
// upstream manifest is refused rather than buffered.
const maxManifestSize = 4 << 20

// Manifest returns a manifest of repo by tag or digest, accepting every
// manifest and index type: its digest, media type and exact bytes, hashed
// and checked. It is how the gate reads signature material.
func (c *Client) Manifest(ctx context.Context, repo oci.Repository, ref string) (*oci.Manifest, error) {
	return c.ManifestFor(ctx, repo, ref, oci.ManifestTypes)
}

// Cached returns manifest d of repo from the in-memory cache, without
// asking the upstream (the content store looks here before its disk).
func (c *Client) Cached(repo oci.Repository, d v1.Hash) (*oci.Manifest, bool) {
	t, err := c.lookup(repo)
	if err != nil {
		return nil, false
	}
	return c.manifests.get(manifestKey(t.repo, d))
}

// ManifestFor returns the manifest ref names for a client that sent accept
// (forwarded upstream as it came; a tag may resolve to an index for one
// Accept set and to a manifest for another): for a digest, the bytes that
// hash to it; for a tag, the bytes of the digest it resolves to (see
// resolveTag).
func (c *Client) ManifestFor(ctx context.Context, repo oci.Repository, ref string, accept []string) (*oci.Manifest, error) {
	t, err := c.lookup(repo)
	if err != nil {
		return nil, err
	}
	return c.manifest(ctx, t, ref, accept)
}

// manifest is ManifestFor on a looked-up repository.
func (c *Client) manifest(ctx context.Context, t target, ref string, accept []string) (*oci.Manifest, error) {
	if oci.IsDigest(ref) {
		d, err := oci.ParseDigest(ref)
		if err != nil {
			return nil, err
		}
		return c.manifestByDigest(ctx, t, d, accept)
	}
	if !oci.ValidTag(ref) {
		return nil, fmt.Errorf("invalid tag %q", ref)
	}
	d, m, err := c.resolveTag(ctx, t, ref, accept)
	if err != nil {
		return nil, err
	}
	if m != nil { // resolved by a GET: these are the bytes the digest was computed from
		return m, nil
	}
	return c.manifestByDigest(ctx, t, d, accept)
}

// manifestByDigest returns the manifest d from the cache or the upstream.
func (c *Client) manifestByDigest(ctx context.Context, t target, d v1.Hash, accept []string) (*oci.Manifest, error) {
	key := manifestKey(t.repo, d)
	if m, ok := c.manifests.get(key); ok {
		c.metrics.cacheLookup("manifest", true)
		return m, nil
	}
	c.metrics.cacheLookup("manifest", false)
	v, err := c.shared(ctx, "manifest|"+key+"|"+acceptKey(accept), func(ctx context.Context) (any, error) {
		m, err := c.fetchManifest(ctx, t, d.String(), d.Algorithm, accept)
		if err != nil {
			return nil, err
		}
		if m.Digest != d {
			c.metrics.digestMismatch.WithLabelValues(t.reg.name, callManifest).Inc()
			c.log.Error("upstream manifest does not match its digest",
				zap.String("registry", t.reg.name), zap.String("repo", t.repo.Name),
				zap.String("requested", d.String()), zap.String("received", m.Digest.String()))
			return nil, newError(DigestMismatch, t.reg.name,
				"upstream %s sent a manifest for %s that hashes to %s; refusing to serve it", t.reg.name, d, m.Digest)
		}
		c.manifests.set(key, m)
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*oci.Manifest), nil
}

// resolveTag returns the digest a tag names for this Accept set, and the
// manifest itself when resolving it fetched the bytes:
//   - from the tag cache while fresh;
//   - from another replica's resolution within its tagTTL (SharedTags);
//   - a tag seen before (its entry stale): one upstream HEAD, since the
//     manifest is most likely cached by digest already (and on Docker Hub a
//     HEAD is not a pull);
//   - a tag never seen: one GET, hashed, which resolves and fetches at once;
//   - a HEAD that gives no digest: a GET too.
//
// When the upstream cannot answer (IsOutage), a stale cached resolution is
// used for up to staleIfError.
func (c *Client) resolveTag(ctx context.Context, t target, tag string, accept []string) (v1.Hash, *oci.Manifest, error) {
	key := tagKey(t.repo, tag, acceptKey(accept))
	cached, fresh, usableStale, ok := c.tags.get(key, time.Now())
	c.metrics.cacheLookup("tag", fresh)
	if fresh {
		return cached, nil, nil
	}
	v, err := c.shared(ctx, "tag|"+key, func(ctx context.Context) (any, error) {
		if d, ok := c.sharedTag(ctx, key); ok {
			return resolved{d, nil}, nil
		}
		var m *oci.Manifest
		d, err := v1.Hash{}, error(nil)
		if ok {
			d, err = c.headTag(ctx, t, tag, accept)
		}
		if !ok || errors.Is(err, ErrNoDigest) {
			if m, err = c.getTag(ctx, t, tag, accept); err == nil {
				d = m.Digest
			}
		}
		if err != nil {
			return nil, err
		}
		now := time.Now()
		c.tags.set(key, d, now)
		c.shareTag(ctx, key, d, now)
		return resolved{d, m}, nil
	})
	if err != nil {
		if usableStale && IsOutage(err) {
			c.log.Warn("upstream unavailable: serving a stale tag resolution",
				zap.String("registry", t.reg.name), zap.String("repo", t.repo.Name),
				zap.String("tag", tag), zap.String("digest", cached.String()), zap.Error(err))
			c.metrics.staleServed.WithLabelValues("tag").Inc()
			return cached, nil, nil
		}
		return v1.Hash{}, nil, err
	}
	r := v.(resolved)
	return r.digest, r.m, nil
}

type resolved struct {
	digest v1.Hash
	m      *oci.Manifest
}

// ErrNoDigest is HeadTag's answer when the upstream's HEAD carries no
// usable Docker-Content-Digest (or HEAD is not allowed).
var ErrNoDigest = errors.New("no digest in the upstream's HEAD response")

// HeadTag asks the upstream, with one HEAD, which digest tag names in
// repo for accept. ErrNoDigest means the answer gave none (GET instead).
// The caller holds the manifest already (the content store): the answer
// is not cached.
func (c *Client) HeadTag(ctx context.Context, repo oci.Repository, tag string, accept []string) (v1.Hash, error) {
	t, err := c.lookup(repo)
	if err != nil {
		return v1.Hash{}, err
	}
	v, err := c.shared(ctx, "head|"+tagKey(t.repo, tag, acceptKey(accept)), func(ctx context.Context) (any, error) {
		return c.headTag(ctx, t, tag, accept)
	})
	if err != nil {
		return v1.Hash{}, err
	}
	return v.(v1.Hash), nil
}

func (c *Client) headTag(ctx context.Context, t target, tag string, accept []string) (v1.Hash, error) {
	resp, err := c.call(ctx, t, callManifest, http.MethodHead, t.path("manifests", tag), nil, acceptHeader(accept))
	if err != nil {
		return v1.Hash{}, err
	}
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		if d, err := oci.ParseDigest(resp.Header.Get("Docker-Content-Digest")); err == nil {
			return d, nil
		}
		return v1.Hash{}, ErrNoDigest
	case resp.StatusCode == http.StatusMethodNotAllowed:
		return v1.Hash{}, ErrNoDigest
	}
	return v1.Hash{}, fromResponse(t.reg.name, resp)
}

// getTag GETs a tag and hashes what came: the digest is that of the bytes,
// never the upstream's header, and bytes that contradict the header are
// refused (see checkClaimedDigest). The manifest is cached by that digest.
func (c *Client) getTag(ctx context.Context, t target, tag string, accept []string) (*oci.Manifest, error) {
	m, err := c.fetchManifest(ctx, t, tag, "sha256", accept)
	if err != nil {
		return nil, err
	}
	c.manifests.set(manifestKey(t.repo, m.Digest), m)
	return m, nil
}

// fetchManifest GETs a manifest from the upstream and hashes it with alg.
func (c *Client) fetchManifest(ctx context.Context, t target, ref, alg string, accept []string) (*oci.Manifest, error) {
	resp, err := c.call(ctx, t, callManifest, http.MethodGet, t.path("manifests", ref), nil, acceptHeader(accept))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fromResponse(t.reg.name, resp)
	}
	b, err := readMetadata(ctx, t.reg.name, "manifest", resp.Body, maxManifestSize)
	if err != nil {
		return nil, err
	}
	mt, err := mediaTypeOf(b, resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, newError(BadResponse, t.reg.name, "upstream %s sent an unusable manifest for %s: %v", t.reg.name, ref, err)
	}
	if !oci.IsDigest(ref) {
		if err := c.checkClaimedDigest(t, ref, resp.Header.Get("Docker-Content-Digest"), b); err != nil {
			return nil, err
		}
	}
	d, err := oci.Digest(alg, b)
	if err != nil {
		return nil, err
	}
	return oci.NewManifest(d, mt, b), nil
}

// checkClaimedDigest refuses a tag's manifest whose bytes do not hash to the
// upstream's Docker-Content-Digest, when it sent one that parses: the
// upstream's answer is inconsistent (a corrupted or tampered transfer, a
// broken cache), and the gate is never asked about bytes whose digest
// nobody published. (By digest, the requested digest is what the bytes must
// match.)
func (c *Client) checkClaimedDigest(t target, tag, header string, b []byte) error {
	claimed, err := oci.ParseDigest(header)
	if err != nil {
		return nil // no claim: the digest is that of the bytes
	}
	got, _ := oci.Digest(claimed.Algorithm, b)
	if got == claimed {
		return nil
	}
	c.metrics.digestMismatch.WithLabelValues(t.reg.name, callManifest).Inc()
	c.log.Error("upstream manifest does not match its Docker-Content-Digest",
		zap.String("registry", t.reg.name), zap.String("repo", t.repo.Name), zap.String("tag", tag),
		zap.String("claimed", claimed.String()), zap.String("received", got.String()))
	return newError(DigestMismatch, t.reg.name, "digest mismatch: upstream %s sent a manifest for tag %s that hashes to %s, not to its Docker-Content-Digest %s; refusing to serve it",
		t.reg.name, tag, got, claimed)
}

// mediaTypeOf is a manifest's media type: its own mediaType field, else the
// upstream's Content-Type. The bytes must be a JSON object.
func mediaTypeOf(b []byte, contentType string) (string, error) {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", fmt.Errorf("not a JSON manifest: %w", err)
	}
	if probe.MediaType != "" {
		return probe.MediaType, nil
	}
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt != "" {
		return mt, nil
	}
	return "", fmt.Errorf("no media type in the manifest or its Content-Type")
}
