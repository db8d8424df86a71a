package proxy

import (
	"net/http"
	"strconv"

	"github.com/portcullis-dev/portcullis/upstream"
)

// serveTags answers GET /v2/<name>/tags/list, with n/last pagination; the
// upstream's Link to the next page is rewritten to this proxy's path.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags
func (p *Proxy) serveTags(w http.ResponseWriter, r *http.Request, rt *route) error {
	page, err := p.up.Tags(r.Context(), rt.repo, upstream.PageQuery(r.URL.Query()))
	if err != nil {
		return err
	}
	if page.Next != nil {
		w.Header().Set("Link", "<"+rt.clientPath("/tags/list", page.Next)+`>; rel="next"`)
	}
	writeJSON(w, r, "application/json", page.Body)
	return nil
}

// writeJSON writes a small JSON body with its length.
func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
