package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestTagsList(t *testing.T) {
	f := newFixture(t)
	img := randomImage(t, 10, 1)
	for _, tag := range []string{"a", "b", "c"} {
		f.reg.push(t, "acme/app", tag, img)
	}
	list := func(path string) ([]string, http.Header) {
		resp, body := f.proxy.do(t, "GET", path, nil)
		mustEqual(t, "status", resp.StatusCode, 200)
		var tl struct{ Tags []string }
		if err := json.Unmarshal(body, &tl); err != nil {
			t.Fatal(err)
		}
		return tl.Tags, resp.Header
	}
	tags, _ := list("/v2/registry.example/acme/app/tags/list")
	mustEqual(t, "all tags", strings.Join(tags, ","), "a,b,c,v1")
	tags, _ = list("/v2/registry.example/acme/app/tags/list?n=2&last=a")
	mustEqual(t, "page", strings.Join(tags, ","), "b,c")

	// The upstream's Link to the next page is rewritten to the client's own path and routing.
	f.reg.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/tags/list") {
			w.Header().Set("Link", `</v2/acme/app/tags/list?last=b&n=2>; rel="next"`)
			_, _ = w.Write([]byte(`{"name":"acme/app","tags":["a","b"]}`))
			return true
		}
		return false
	})
	_, hdr := list("/v2/registry.example/acme/app/tags/list?n=2")
	mustEqual(t, "Link (path prefix)", hdr.Get("Link"), `</v2/registry.example/acme/app/tags/list?last=b&n=2>; rel="next"`)
	_, hdr = list("/v2/acme/app/tags/list?n=2&ns=registry.example")
	mustEqual(t, "Link (ns)", hdr.Get("Link"), `</v2/acme/app/tags/list?last=b&n=2&ns=registry.example>; rel="next"`)

	f.reg.setFault(func(http.ResponseWriter, *http.Request) bool { return false })
	resp, body := f.proxy.do(t, "GET", "/v2/registry.example/nothing/here/tags/list", nil)
	mustEqual(t, "unknown repo status", resp.StatusCode, 404)
	mustEqual(t, "unknown repo code", errorCode(t, body), "NAME_UNKNOWN")
}
