package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// maxTagListSize bounds a tags/list page read from an upstream.
const maxTagListSize = 16 << 20

// serveTags answers GET /v2/<name>/tags/list, with n/last pagination; the
// upstream's Link to the next page is rewritten to this proxy's path.
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags
func (p *Proxy) serveTags(w http.ResponseWriter, r *http.Request, rt *route) error {
	q := pageQuery(r.URL.Query())
	ctx, cancel := p.metadataContext(r.Context())
	defer cancel()
	resp, err := p.call(ctx, rt, routeTags, http.MethodGet, "/v2/"+rt.repo.Name+"/tags/list", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fromUpstreamResponse(rt.up.registry, resp, codeNameUnknown)
	}
	body, err := readMetadata(ctx, rt.up.registry, "tag list", resp.Body, maxTagListSize)
	if err != nil {
		return err
	}
	if next, ok := nextPage(resp.Header.Get("Link")); ok {
		w.Header().Set("Link", "<"+rt.clientPath("/tags/list", next)+`>; rel="next"`)
	}
	writeJSON(w, r, "application/json", body)
	return nil
}

// pageQuery keeps only the pagination parameters of a client's query.
func pageQuery(in url.Values) url.Values {
	q := url.Values{}
	for _, k := range []string{"n", "last"} {
		if v := in.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// nextPage reads the pagination parameters from an upstream's
// `Link: </v2/<name>/tags/list?last=x&n=y>; rel="next"`.
func nextPage(link string) (url.Values, bool) {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.Contains(params, `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err != nil {
			return nil, false
		}
		return pageQuery(u.Query()), true
	}
	return nil, false
}

// writeJSON writes a small JSON body with its length.
func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
