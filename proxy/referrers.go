package proxy

import (
	"net/http"

	"github.com/portcullis-dev/portcullis/oci"
)

// serveReferrers answers GET /v2/<name>/referrers/<digest>[?artifactType=]:
// the upstream's referrers API when it has one, else the index stored at
// the fallback tag sha256-<hex>, else an empty index; served only once the
// Gate has checked those exact bytes.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers
func (p *Proxy) serveReferrers(w http.ResponseWriter, r *http.Request, rt *route) error {
	d, rerr := parseDigest(rt.ref)
	if rerr != nil {
		return rerr
	}
	noteDigest(r.Context(), d.String())
	a, err := p.up.ReferrersFor(r.Context(), rt.repo, d, r.URL.Query().Get("artifactType"))
	if err != nil {
		return err
	}
	if err := p.gate.CheckReferrers(r.Context(), rt.repo, d, a.Body); err != nil {
		return err
	}
	if a.Filtered {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, r, oci.OCIIndex, a.Body)
	return nil
}
