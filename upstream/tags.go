package upstream

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/portcullis-dev/portcullis/oci"
)

// maxTagListSize bounds a tags/list page read from an upstream.
const maxTagListSize = 16 << 20

// TagPage is one page of a repository's tag list.
type TagPage struct {
	// Body is the upstream's JSON, as sent.
	Body []byte
	// Next holds the n/last parameters of the next page, nil on the last.
	Next url.Values
}

// Tags lists repo's tags, one page: page holds the client's n and last
// (anything else in it is dropped).
// https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags
func (c *Client) Tags(ctx context.Context, repo oci.Repository, page url.Values) (*TagPage, error) {
	t, err := c.lookup(repo)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.metadataContext(ctx)
	defer cancel()
	resp, err := c.call(ctx, t, callTags, http.MethodGet, "/v2/"+t.repo.Name+"/tags/list", PageQuery(page), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fromResponse(t.reg.name, resp)
	}
	body, err := readMetadata(ctx, t.reg.name, "tag list", resp.Body, maxTagListSize)
	if err != nil {
		return nil, err
	}
	tp := &TagPage{Body: body}
	if next, ok := nextPage(resp.Header.Get("Link")); ok {
		tp.Next = next
	}
	return tp, nil
}

// PageQuery keeps only the pagination parameters (n, last) of a query.
func PageQuery(in url.Values) url.Values {
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
		return PageQuery(u.Query()), true
	}
	return nil, false
}
