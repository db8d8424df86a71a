package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
)

// maxManifestSize is containerd's limit (MaxManifestSize, 4 MiB); a larger
// upstream manifest is refused rather than buffered.
const maxManifestSize = 4 << 20

// serveManifest answers GET and HEAD /v2/<name>/manifests/<reference>.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
//
// A tag is resolved to a digest once, the manifest is fetched by that digest
// and hashed, the Gate decides on exactly those bytes, and exactly those
// bytes are served with the digest they hash to.
func (p *Proxy) serveManifest(w http.ResponseWriter, r *http.Request, rt *route) error {
	ctx := r.Context()
	m, err := p.loadManifest(ctx, rt, r.Header.Values("Accept"))
	if err != nil {
		return err
	}
	noteDigest(ctx, m.digestStr)
	if err := p.gate.CheckManifest(ctx, &Manifest{
		Repo: rt.repo, Reference: rt.ref, Digest: m.digest, MediaType: m.mediaType, Bytes: m.bytes,
	}); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", m.mediaType)
	h.Set("Content-Length", m.size)
	h.Set("Docker-Content-Digest", m.digestStr)
	h.Set("Etag", `"`+m.digestStr+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.bytes)
	}
	return nil
}

// loadManifest returns the manifest a reference names: for a digest, the
// bytes that hash to it; for a tag, the bytes of the digest it resolves to.
func (p *Proxy) loadManifest(ctx context.Context, rt *route, accept []string) (*manifestEntry, error) {
	if oci.IsDigest(rt.ref) {
		d, rerr := parseDigest(rt.ref)
		if rerr != nil {
			return nil, rerr
		}
		return p.manifestByDigest(ctx, rt, d, accept)
	}
	if !tagRE.MatchString(rt.ref) {
		return nil, newError(http.StatusBadRequest, codeTagInvalid, "invalid tag %q", rt.ref)
	}
	d, m, err := p.resolveTag(ctx, rt, accept)
	if err != nil {
		return nil, err
	}
	if m != nil { // resolved by a GET: these are the bytes the digest was computed from
		return m, nil
	}
	return p.manifestByDigest(ctx, rt, d, accept)
}

// manifestByDigest returns the manifest d from the cache or the upstream.
func (p *Proxy) manifestByDigest(ctx context.Context, rt *route, d v1.Hash, accept []string) (*manifestEntry, error) {
	key := manifestKey(rt.repo, d)
	if m, ok := p.manifests.get(key); ok {
		p.metrics.cacheLookup("manifest", true)
		return m, nil
	}
	p.metrics.cacheLookup("manifest", false)
	v, err := p.shared(ctx, "manifest|"+key+"|"+acceptKey(accept), func(ctx context.Context) (any, error) {
		m, err := p.fetchManifest(ctx, rt, d.String(), d.Algorithm, accept)
		if err != nil {
			return nil, err
		}
		if m.digest != d {
			p.metrics.digestMismatch.WithLabelValues(rt.up.registry, routeManifest).Inc()
			p.log.Error("upstream manifest does not match its digest",
				zap.String("registry", rt.up.registry), zap.String("repo", rt.repo.Name),
				zap.String("requested", d.String()), zap.String("received", m.digest.String()))
			return nil, unavailable(http.StatusBadGateway,
				"upstream %s sent a manifest for %s that hashes to %s; refusing to serve it", rt.up.registry, d, m.digest)
		}
		p.manifests.set(key, m)
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*manifestEntry), nil
}

// resolveTag returns the digest a tag names for this client's Accept set,
// and the manifest itself when resolving it fetched the bytes:
//   - from the tag cache while fresh;
//   - a tag seen before (its entry stale): one upstream HEAD, since the
//     manifest is most likely cached by digest already (and on Docker Hub a
//     HEAD is not a pull);
//   - a tag never seen: one GET, hashed, which resolves and fetches at once;
//   - a HEAD that gives no digest: a GET too.
//
// When the upstream cannot answer (5xx, timeout), a stale cached resolution
// is used for up to staleIfError.
func (p *Proxy) resolveTag(ctx context.Context, rt *route, accept []string) (v1.Hash, *manifestEntry, error) {
	key := tagKey(rt.repo, rt.ref, acceptKey(accept))
	cached, fresh, usableStale, ok := p.tags.get(key, time.Now())
	p.metrics.cacheLookup("tag", fresh)
	if fresh {
		return cached, nil, nil
	}
	v, err := p.shared(ctx, "tag|"+key, func(ctx context.Context) (any, error) {
		var m *manifestEntry
		d, err := v1.Hash{}, error(nil)
		if ok {
			d, err = p.headTag(ctx, rt, accept)
		}
		if !ok || errors.Is(err, errNoDigest) {
			if m, err = p.getTag(ctx, rt, accept); err == nil {
				d = m.digest
			}
		}
		if err != nil {
			return nil, err
		}
		p.tags.set(key, d, time.Now())
		return resolved{d, m}, nil
	})
	if err != nil {
		if usableStale && isOutage(err) {
			p.log.Warn("upstream unavailable: serving a stale tag resolution",
				zap.String("registry", rt.up.registry), zap.String("repo", rt.repo.Name),
				zap.String("tag", rt.ref), zap.String("digest", cached.String()), zap.Error(err))
			p.metrics.staleServed.WithLabelValues("tag").Inc()
			return cached, nil, nil
		}
		return v1.Hash{}, nil, err
	}
	r := v.(resolved)
	return r.digest, r.m, nil
}

type resolved struct {
	digest v1.Hash
	m      *manifestEntry
}

// errNoDigest is headTag's answer when the upstream's HEAD carries no
// usable Docker-Content-Digest (or HEAD is not allowed).
var errNoDigest = errors.New("no digest in the upstream's HEAD response")

func (p *Proxy) headTag(ctx context.Context, rt *route, accept []string) (v1.Hash, error) {
	path := "/v2/" + rt.repo.Name + "/manifests/" + rt.ref
	resp, err := p.call(ctx, rt, routeManifest, http.MethodHead, path, nil, acceptHeader(accept))
	if err != nil {
		return v1.Hash{}, err
	}
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		if d, rerr := parseDigest(resp.Header.Get("Docker-Content-Digest")); rerr == nil {
			return d, nil
		}
		return v1.Hash{}, errNoDigest
	case resp.StatusCode == http.StatusMethodNotAllowed:
		return v1.Hash{}, errNoDigest
	}
	return v1.Hash{}, fromUpstreamResponse(rt.up.registry, resp, codeManifestUnknown)
}

// getTag GETs a tag and hashes what came: the digest is that of the bytes,
// never the upstream's header, and bytes that contradict the header are
// refused (see checkClaimedDigest). The manifest is cached by that digest.
func (p *Proxy) getTag(ctx context.Context, rt *route, accept []string) (*manifestEntry, error) {
	m, err := p.fetchManifest(ctx, rt, rt.ref, "sha256", accept)
	if err != nil {
		return nil, err
	}
	p.manifests.set(manifestKey(rt.repo, m.digest), m)
	return m, nil
}

// fetchManifest GETs a manifest from the upstream and hashes it with alg.
func (p *Proxy) fetchManifest(ctx context.Context, rt *route, ref, alg string, accept []string) (*manifestEntry, error) {
	path := "/v2/" + rt.repo.Name + "/manifests/" + ref
	resp, err := p.call(ctx, rt, routeManifest, http.MethodGet, path, nil, acceptHeader(accept))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fromUpstreamResponse(rt.up.registry, resp, codeManifestUnknown)
	}
	b, err := readMetadata(ctx, rt.up.registry, "manifest", resp.Body, maxManifestSize)
	if err != nil {
		return nil, err
	}
	mt, err := mediaTypeOf(b, resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, upstreamError("upstream %s sent an unusable manifest for %s: %v", rt.up.registry, ref, err)
	}
	if !oci.IsDigest(ref) {
		if err := p.checkClaimedDigest(rt, ref, resp.Header.Get("Docker-Content-Digest"), b); err != nil {
			return nil, err
		}
	}
	d := digestOf(alg, b)
	return &manifestEntry{digest: d, digestStr: d.String(), mediaType: mt, bytes: b, size: strconv.Itoa(len(b))}, nil
}

// checkClaimedDigest refuses a tag's manifest whose bytes do not hash to the
// upstream's Docker-Content-Digest, when it sent one that parses: the
// upstream's answer is inconsistent (a corrupted or tampered transfer, a
// broken cache), and the Gate is never asked about bytes whose digest nobody
// published. (By digest, the requested digest is what the bytes must match.)
func (p *Proxy) checkClaimedDigest(rt *route, tag, header string, b []byte) error {
	claimed, rerr := parseDigest(header)
	if rerr != nil {
		return nil // no claim: the digest is that of the bytes
	}
	got := digestOf(claimed.Algorithm, b)
	if got == claimed {
		return nil
	}
	p.metrics.digestMismatch.WithLabelValues(rt.up.registry, routeManifest).Inc()
	p.log.Error("upstream manifest does not match its Docker-Content-Digest",
		zap.String("registry", rt.up.registry), zap.String("repo", rt.repo.Name), zap.String("tag", tag),
		zap.String("claimed", claimed.String()), zap.String("received", got.String()))
	return upstreamError("digest mismatch: upstream %s sent a manifest for tag %s that hashes to %s, not to its Docker-Content-Digest %s; refusing to serve it",
		rt.up.registry, tag, got, claimed)
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
