package store

import (
	"bytes"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap"
)

// kick asks for an eviction pass (without waiting for it).
func (s *Store) kick() {
	select {
	case s.evictCh <- struct{}{}:
	default:
	}
}

func (s *Store) evictLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.closed:
			return
		case <-s.evictCh:
			s.evict()
		}
	}
}

// evict brings the store under its limit: when it is above it, the least
// recently used objects go until it is at 90% of it; then blobs that no
// stored manifest lists, and tags whose manifest is gone, are collected.
func (s *Store) evict() {
	s.mu.Lock()
	if s.total+s.filling <= s.maxSize {
		s.mu.Unlock()
		return
	}
	type cand struct {
		rel  string
		used time.Time
		size int64
	}
	cands := make([]cand, 0, len(s.objects))
	for rel, o := range s.objects {
		if o.kind == kindMaterial || o.kind == kindLink {
			continue // goes with its subject or blob (see collect), never before it
		}
		cands = append(cands, cand{rel, o.used, o.size})
	}
	total := s.total + s.filling // the fills in progress need their room too
	s.mu.Unlock()
	slices.SortFunc(cands, func(a, b cand) int { return a.used.Compare(b.used) })
	target := s.maxSize / 10 * 9
	evicted := 0
	for _, c := range cands {
		if total <= target {
			break
		}
		if !s.forgetUnused(c.rel, c.used) {
			continue // used (or placed again) since the snapshot: keep it
		}
		total -= c.size
		evicted++
	}
	s.metrics.evictions.Add(float64(evicted))
	collected := s.collect()
	s.log.Info("content store: evicted least recently used content", zap.Int("evicted", evicted),
		zap.Int("collected", collected), zap.Int64("limit", s.maxSize), zap.Int64("bytes", s.usage()))
}

// forgetUnused forgets rel if its last use is still used (nothing read or
// placed it since the eviction pass looked).
func (s *Store) forgetUnused(rel string, used time.Time) bool {
	s.mu.Lock()
	o, ok := s.objects[rel]
	if !ok || o.used.After(used) {
		s.mu.Unlock()
		return false
	}
	err := s.forgetLocked(rel)
	total := s.total
	s.mu.Unlock()
	s.forgotten(rel, total, err)
	return true
}

func (s *Store) usage() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// collect drops blobs that no stored manifest lists and tags whose
// manifest is gone, and returns how many.
func (s *Store) collect() int {
	n := 0
	s.mu.Lock()
	var manifests, blobs, material, links []string
	tags := map[string]string{} // path: digest
	for rel, o := range s.objects {
		switch o.kind {
		case kindManifest:
			manifests = append(manifests, rel)
		case kindBlob:
			blobs = append(blobs, rel)
		case kindTag:
			tags[rel] = o.tag.Digest
		case kindMaterial:
			material = append(material, rel)
		case kindLink:
			links = append(links, rel)
		}
	}
	s.mu.Unlock()
	listed := map[string]bool{}
	present := map[string]bool{} // "<repo dir>|<digest>"
	// Material goes with its subject; what is left lists its blobs.
	for _, rel := range slices.Clone(material) {
		dir, rest, _ := strings.Cut(rel, "/_material/")
		parts := strings.Split(rest, "/")
		subject := path.Join(dir, "_manifests", parts[0], parts[1])
		s.mu.Lock()
		_, ok := s.objects[subject]
		s.mu.Unlock()
		if !ok {
			s.forget(rel)
			n++
			continue
		}
		if _, isManifest := materialKey(rel); isManifest {
			manifests = append(manifests, rel)
		}
	}
	for _, rel := range manifests {
		b, err := os.ReadFile(filepath.Join(s.dir, rel))
		if err != nil {
			continue
		}
		_, body, _ := bytes.Cut(b, []byte("\n"))
		for _, d := range listedBlobs(body) {
			listed[blobPath(d)] = true
		}
		dir, _, _ := strings.Cut(rel, "/_manifests/")
		alg, hex := filepath.Base(filepath.Dir(rel)), filepath.Base(rel)
		present[dir+"|"+alg+":"+hex] = true
	}
	gone := map[string]bool{}
	for _, rel := range blobs {
		if !listed[rel] {
			s.forget(rel)
			gone[rel] = true
			n++
		}
	}
	for _, rel := range links { // a link goes with its blob
		_, rest, _ := strings.Cut(rel, "/_blobs/")
		blob := "blobs/" + rest
		s.mu.Lock()
		_, ok := s.objects[blob]
		s.mu.Unlock()
		if !ok || gone[blob] {
			s.forget(rel)
		}
	}
	for rel, d := range tags {
		dir, _, _ := strings.Cut(rel, "/_tags/")
		if !present[dir+"|"+d] {
			s.forget(rel)
			n++
		}
	}
	return n
}

func readTag(path string) (TagEntry, error) {
	var e TagEntry
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &e)
	}
	return e, err
}

// listedBlobs are the config and layers a manifest lists (none for an
// index, whose children are manifests).
func listedBlobs(b []byte) []v1.Hash {
	var m struct {
		Config *v1.Descriptor  `json:"config"`
		Layers []v1.Descriptor `json:"layers"`
	}
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	var out []v1.Hash
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// diskFailed stops the store from taking new blob fetches for a minute
// after a write failed (the disk is full or failing): they are served
// straight from the upstream meanwhile.
func (s *Store) diskFailed() {
	s.bypassUntil.Store(s.now().Add(time.Minute).UnixNano())
	s.kick()
}

// bypassed reports whether new fetches skip the store (see diskFailed).
func (s *Store) bypassed() bool {
	return s.now().UnixNano() < s.bypassUntil.Load()
}
