package proxy

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const ociIndexType = "application/vnd.oci.image.index.v1+json"

// serveReferrers answers GET /v2/<name>/referrers/<digest>[?artifactType=]:
// the upstream's referrers API when it has one, else the index stored at
// the fallback tag sha256-<hex>, else an empty index.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers
func (p *Proxy) serveReferrers(w http.ResponseWriter, r *http.Request, rt *route) error {
	d, rerr := parseDigest(rt.ref)
	if rerr != nil {
		return rerr
	}
	noteDigest(r.Context(), d.String())
	at := r.URL.Query().Get("artifactType")
	body, filtered, err := p.referrers(r.Context(), rt, d, at, false)
	if err != nil {
		return err
	}
	if err := p.gate.CheckReferrers(r.Context(), rt.repo, d, body); err != nil {
		return err
	}
	if filtered {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, r, ociIndexType, body)
	return nil
}

// referrers returns the referrers index of d, filtered by artifactType if
// not empty; filtered reports whether the filter was applied. learn says
// whether an answer without the API may be remembered for the repository
// (only the gate's own lookups may: see referrersMemory). The whole
// exchange, body included, completes within the upstream timeout.
func (p *Proxy) referrers(ctx context.Context, rt *route, d v1.Hash, artifactType string, learn bool) (body []byte, filtered bool, err error) {
	if rt.up.noReferrers.absent(rt.repo.Name, time.Now()) {
		return p.fallbackReferrers(ctx, rt, d, artifactType)
	}
	ctx, cancel := p.metadataContext(ctx)
	defer cancel()
	var q url.Values
	if artifactType != "" {
		q = url.Values{"artifactType": {artifactType}}
	}
	resp, err := p.call(ctx, rt, routeReferrers, http.MethodGet, "/v2/"+rt.repo.Name+"/referrers/"+d.String(), q,
		http.Header{"Accept": {ociIndexType}})
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return nil, false, fromUpstreamResponse(rt.up.registry, resp, codeManifestUnknown)
	}
	// As ggcr does: anything but 200 with the index media type means the
	// upstream has no referrers API.
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode == http.StatusOK && mt == ociIndexType {
		b, err := readMetadata(ctx, rt.up.registry, "referrers index", resp.Body, maxManifestSize)
		if err != nil {
			return nil, false, err
		}
		applied := strings.Contains(resp.Header.Get("OCI-Filters-Applied"), "artifactType")
		if artifactType != "" && !applied {
			b, err = filterIndex(b, artifactType)
			applied = err == nil
		}
		return b, applied && artifactType != "", err
	}
	if learn {
		rt.up.noReferrers.note(rt.repo.Name, time.Now())
	}
	return p.fallbackReferrers(ctx, rt, d, artifactType)
}

// fallbackReferrers reads the referrers tag schema: an index at tag
// <alg>-<hex>, maintained by clients of registries without the API.
func (p *Proxy) fallbackReferrers(ctx context.Context, rt *route, d v1.Hash, artifactType string) ([]byte, bool, error) {
	tagged := *rt
	tagged.ref = d.Algorithm + "-" + d.Hex
	m, err := p.loadManifest(ctx, &tagged, []string{ociIndexType})
	if err != nil {
		if re := asRegError(err); re.Status == http.StatusNotFound {
			return []byte(`{"schemaVersion":2,"mediaType":"` + ociIndexType + `","manifests":[]}`), artifactType != "", nil
		}
		return nil, false, err
	}
	if artifactType == "" {
		return m.bytes, false, nil
	}
	b, err := filterIndex(m.bytes, artifactType)
	return b, err == nil, err
}

// filterIndex keeps the descriptors of an index whose artifactType matches.
func filterIndex(b []byte, artifactType string) ([]byte, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, unavailable(http.StatusBadGateway, "upstream referrers index is not valid JSON: %v", err)
	}
	kept := make([]v1.Descriptor, 0, len(idx.Manifests))
	for _, desc := range idx.Manifests {
		if desc.ArtifactType == artifactType {
			kept = append(kept, desc)
		}
	}
	idx.Manifests = kept
	idx.MediaType = ociIndexType
	out, err := json.Marshal(&idx)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
