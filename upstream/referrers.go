package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/portcullis-dev/portcullis/oci"
)

// ReferrersAnswer is a referrers index as it is to be served.
type ReferrersAnswer struct {
	// Body is the index: the upstream's API answer, else the index at the
	// fallback tag, else an empty index.
	Body []byte
	// Filtered reports that Body was filtered by the artifactType asked.
	Filtered bool
}

// ReferrersFor answers a client's referrers request for subject, filtered
// by artifactType when it is not empty. It reads which repositories lack
// the API from what the gate's lookups learned, and teaches nothing (a
// client's request for a repository that does not exist must not switch
// the API off for others).
func (c *Client) ReferrersFor(ctx context.Context, repo oci.Repository, subject v1.Hash, artifactType string) (*ReferrersAnswer, error) {
	t, err := c.lookup(repo)
	if err != nil {
		return nil, err
	}
	return c.referrers(ctx, t, subject, artifactType, false)
}

// Referrers returns the referrers index of subject in repo, parsed: the
// upstream's API, else the fallback tag sha256-<hex>, else an empty index.
// It is the gate's lookup, and remembers repositories without the API.
func (c *Client) Referrers(ctx context.Context, repo oci.Repository, subject v1.Hash) (*v1.IndexManifest, error) {
	t, err := c.lookup(repo)
	if err != nil {
		return nil, err
	}
	a, err := c.referrers(ctx, t, subject, "", true)
	if err != nil {
		return nil, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(a.Body, &idx); err != nil {
		return nil, newError(BadResponse, t.reg.name, "upstream %s: the referrers index of %s is not valid JSON: %v", t.reg.name, subject, err)
	}
	return &idx, nil
}

// referrers returns the referrers index of d, filtered by artifactType if
// not empty. byGate says the lookup is the gate's, not a client's. Each
// exchange, body included, completes within the upstream timeout.
//
// A gate lookup on a registry not yet known to have the API asks the API
// and the fallback tag at once, so that a cold decision on a registry
// without the API costs one round trip here, not two; once the registry
// has answered with the API, only the API is asked. Only a gate lookup
// may teach the registry's handle that a repository lacks the API (see
// referrersMemory), and not one made ahead of the manifest's fetch
// (oci.Ahead): that repository may not exist.
func (c *Client) referrers(ctx context.Context, t target, d v1.Hash, artifactType string, byGate bool) (*ReferrersAnswer, error) {
	teach := byGate && !oci.Ahead(ctx)
	if t.reg.noReferrers.absent(t.repo.Name, time.Now()) {
		return c.fallbackReferrers(ctx, t, d, artifactType)
	}
	if !byGate || t.reg.referrersAPI.Load() {
		a, ok, err := c.apiReferrers(ctx, t, d, artifactType)
		if err != nil || ok {
			return a, err
		}
		if teach {
			t.reg.noReferrers.note(t.repo.Name, time.Now())
		}
		return c.fallbackReferrers(ctx, t, d, artifactType)
	}
	type answer struct {
		a   *ReferrersAnswer
		err error
	}
	fallback := make(chan answer, 1)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		a, err := c.fallbackReferrers(fctx, t, d, artifactType)
		fallback <- answer{a, err}
	}()
	a, ok, err := c.apiReferrers(ctx, t, d, artifactType)
	if err != nil || ok {
		return a, err
	}
	if teach {
		t.reg.noReferrers.note(t.repo.Name, time.Now())
	}
	f := <-fallback
	return f.a, f.err
}

// apiReferrers asks the referrers API. ok is false when the upstream
// answered as a registry without the API does.
func (c *Client) apiReferrers(ctx context.Context, t target, d v1.Hash, artifactType string) (a *ReferrersAnswer, ok bool, err error) {
	ctx, cancel := c.metadataContext(ctx)
	defer cancel()
	var q url.Values
	if artifactType != "" {
		q = url.Values{"artifactType": {artifactType}}
	}
	resp, err := c.call(ctx, t, callReferrers, http.MethodGet, t.path("referrers", d.String()), q,
		http.Header{"Accept": {oci.OCIIndex}})
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	// As ggcr (and so cosign) does: 200 with the index media type is the
	// API's answer; 200 otherwise, 400, 404 and 406 mean the upstream has no
	// referrers API; anything else is an error, never "no referrers" (a
	// 401 or 403 here must not hide the bundles behind the fallback tag).
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable:
	default:
		return nil, false, fromResponse(t.reg.name, resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != oci.OCIIndex {
		return nil, false, nil
	}
	b, err := readMetadata(ctx, t.reg.name, "referrers index", resp.Body, maxManifestSize)
	if err != nil {
		return nil, false, err
	}
	t.reg.referrersAPI.Store(true)
	applied := strings.Contains(resp.Header.Get("OCI-Filters-Applied"), "artifactType")
	if artifactType != "" && !applied {
		if b, err = filterIndex(t.reg.name, b, artifactType); err != nil {
			return nil, false, err
		}
		applied = true
	}
	return &ReferrersAnswer{Body: b, Filtered: applied && artifactType != ""}, true, nil
}

// fallbackReferrers reads the referrers tag schema: an index at tag
// <alg>-<hex>, maintained by clients of registries without the API.
func (c *Client) fallbackReferrers(ctx context.Context, t target, d v1.Hash, artifactType string) (*ReferrersAnswer, error) {
	m, err := c.manifest(ctx, t, d.Algorithm+"-"+d.Hex, []string{oci.OCIIndex})
	if err != nil {
		if errors.Is(err, oci.ErrNotFound) {
			return &ReferrersAnswer{Body: oci.EmptyIndex(), Filtered: artifactType != ""}, nil
		}
		return nil, err
	}
	if artifactType == "" {
		return &ReferrersAnswer{Body: m.Bytes}, nil
	}
	b, err := filterIndex(t.reg.name, m.Bytes, artifactType)
	if err != nil {
		return nil, err
	}
	return &ReferrersAnswer{Body: b, Filtered: true}, nil
}

// filterIndex keeps the descriptors of an index whose artifactType matches.
func filterIndex(registry string, b []byte, artifactType string) ([]byte, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, newError(BadResponse, registry, "upstream %s: referrers index is not valid JSON: %v", registry, err)
	}
	kept := make([]v1.Descriptor, 0, len(idx.Manifests))
	for _, desc := range idx.Manifests {
		if desc.ArtifactType == artifactType {
			kept = append(kept, desc)
		}
	}
	idx.Manifests = kept
	idx.MediaType = oci.OCIIndex
	return json.Marshal(&idx)
}
