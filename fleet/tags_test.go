package fleet

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/fleet/redistest"
	"github.com/portcullis-dev/portcullis/upstream"
	"github.com/portcullis-dev/portcullis/verify/verifytest"
)

// TestSharedTags: a tag one replica resolved is not asked of the upstream
// by another within tagTTL; a resolution copied under another tag, or
// replayed after its tagTTL, is not used.
func TestSharedTags(t *testing.T) {
	srv := redistest.Start(t)
	var tagGets atomic.Int64 // requests for a manifest by tag
	tr := verifytest.NewRegistry(t, true, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "sha256:") {
				tagGets.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	repo := tr.Repo("acme/app")
	img := tr.PushImage(repo, "v1")
	tr.PushImage(repo, "v2")
	client := func(s *Store) *upstream.Client {
		c, err := upstream.New([]upstream.Config{{Registry: tr.Host, Endpoint: &url.URL{Scheme: "http", Host: tr.Host}}},
			upstream.WithTagTTL(time.Minute), upstream.WithSharedTags(s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := replica(t, srv, testKey), replica(t, srv, testKey)
	ctx := context.Background()
	accept := []string{"application/vnd.oci.image.manifest.v1+json"}
	m, err := client(a).ManifestFor(ctx, repo, "v1", accept)
	if err != nil || m.Digest != img.Digest {
		t.Fatalf("replica a: %v %v", m, err)
	}
	before := tagGets.Load()
	m, err = client(b).ManifestFor(ctx, repo, "v1", accept)
	if err != nil || m.Digest != img.Digest {
		t.Fatalf("replica b: %v %v", m, err)
	}
	if n := tagGets.Load() - before; n != 0 {
		t.Errorf("replica b asked the upstream for a tag replica a resolved (%d requests)", n)
	}
	// v1's value copied under v2's key: v2 is resolved upstream.
	keys, _ := a.rdb.Keys(ctx, "test/t/*").Result()
	if len(keys) != 1 {
		t.Fatalf("tag keys %v", keys)
	}
	sealed := a.rdb.Get(ctx, keys[0]).Val()
	c := replica(t, srv, testKey)
	_, _ = client(c).ManifestFor(ctx, repo, "v2", accept) // writes v2's key
	keys, _ = a.rdb.Keys(ctx, "test/t/*").Result()
	for _, k := range keys {
		a.rdb.Set(ctx, k, sealed, time.Minute)
	}
	before = tagGets.Load()
	if m, err := client(replica(t, srv, testKey)).ManifestFor(ctx, repo, "v2", accept); err != nil || m.Digest == img.Digest {
		t.Errorf("v2 with v1's resolution copied over it: %v %v", m, err)
	}
	if tagGets.Load() == before {
		t.Error("a copied resolution was used")
	}
	// Replayed after its tagTTL: a client with a shorter TTL does not use
	// a resolution seen longer ago.
	short, err := upstream.New([]upstream.Config{{Registry: tr.Host, Endpoint: &url.URL{Scheme: "http", Host: tr.Host}}},
		upstream.WithTagTTL(time.Millisecond), upstream.WithSharedTags(replica(t, srv, testKey)))
	if err != nil {
		t.Fatal(err)
	}
	a.rdb.Del(ctx, keys...)
	_, _ = client(a).ManifestFor(ctx, repo, "v1", accept) // a fresh resolution, TTL one minute
	time.Sleep(5 * time.Millisecond)
	before = tagGets.Load()
	if _, err := short.ManifestFor(ctx, repo, "v1", accept); err != nil {
		t.Fatal(err)
	}
	if tagGets.Load() == before {
		t.Error("a resolution older than the reader's tagTTL was used")
	}
}
