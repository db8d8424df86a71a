package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
)

func blobPath(d v1.Hash) string { return path.Join("blobs", d.Algorithm, d.Hex) }

// repoDir is where repo's manifests and tags are, or false when its name
// could not be a directory (names are checked by the proxy's router; this
// is the store's own guard against a path that leaves its directory).
func repoDir(repo oci.Repository) (string, bool) {
	if repo.Registry == "" || strings.ContainsAny(repo.Registry, `/\`) || strings.HasPrefix(repo.Registry, ".") ||
		!oci.ValidRepositoryName(repo.Name) {
		return "", false
	}
	return path.Join("repos", repo.Registry, repo.Name), true
}

// linkPath records that repo may read blob d from the store (it was
// fetched for repo, or the upstream said repo has it).
func linkPath(repo oci.Repository, d v1.Hash) (string, bool) {
	dir, ok := repoDir(repo)
	return path.Join(dir, "_blobs", d.Algorithm, d.Hex), ok
}

// linked reports whether repo may read blob d from the store.
func (s *Store) linked(repo oci.Repository, d v1.Hash) bool {
	rel, ok := linkPath(repo, d)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok = s.objects[rel]
	return ok
}

// link records that repo may read blob d (an empty file; failures only
// cost a HEAD later).
func (s *Store) link(repo oci.Repository, d v1.Hash) {
	rel, ok := linkPath(repo, d)
	if !ok || s.linked(repo, d) {
		return
	}
	if err := s.writeFile(rel, nil); err != nil {
		return
	}
	s.added(rel, kindLink, 0, nil)
}

// fillingForOther reports whether blob d is being fetched into the store
// for a repository other than repo.
func (s *Store) fillingForOther(d v1.Hash, repo oci.Repository) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.fills[d.String()]
	return ok && f.repo != repo
}

// drop removes what the store holds of manifest d in repo: the manifest,
// the tags naming it, its signature material, and then (in the
// background) the blobs it alone listed. It returns how many objects went.
func (s *Store) drop(repo oci.Repository, d v1.Hash) int {
	dir, ok := repoDir(repo)
	if !ok {
		return 0
	}
	manifest := path.Join(dir, "_manifests", d.Algorithm, d.Hex)
	material := path.Join(dir, "_material", d.Algorithm, d.Hex) + "/"
	s.mu.Lock()
	if _, stored := s.objects[manifest]; !stored {
		// Nothing of it was kept (a tag or material is only kept with its
		// manifest): the common refusal costs one lookup, not a scan that a
		// client repeating a refused pull could turn into load.
		s.mu.Unlock()
		return 0
	}
	var gone []string
	for rel, o := range s.objects {
		switch {
		case rel == manifest, strings.HasPrefix(rel, material):
			gone = append(gone, rel)
		case o.kind == kindTag && o.tag != nil && o.tag.Digest == d.String() && strings.HasPrefix(rel, dir+"/_tags/"):
			gone = append(gone, rel)
		}
	}
	s.mu.Unlock()
	for _, rel := range gone {
		s.forget(rel)
	}
	if len(gone) > 0 {
		s.background(func() { s.collect() }) // the blobs only it listed
	}
	return len(gone)
}

func manifestPath(repo oci.Repository, d v1.Hash) (string, bool) {
	dir, ok := repoDir(repo)
	return path.Join(dir, "_manifests", d.Algorithm, d.Hex), ok
}

// AcceptKey is the canonical form of an Accept set: a tag may resolve to
// an index for one and to a manifest for another. Only the manifest types
// a registry can answer with count (and "*/*"), so clients cannot make
// more than a few dozen keys per tag, whatever Accept headers they send.
func AcceptKey(accept []string) string {
	var types []string
	for _, a := range accept {
		for t := range strings.SplitSeq(a, ",") {
			t = strings.ToLower(strings.TrimSpace(strings.SplitN(t, ";", 2)[0]))
			if t == "*/*" || slices.Contains(oci.ManifestTypes, t) {
				types = append(types, t)
			}
		}
	}
	slices.Sort(types)
	return strings.Join(slices.Compact(types), ",")
}

func tagPath(repo oci.Repository, tag, acceptKey string) (string, bool) {
	dir, ok := repoDir(repo)
	if !ok || !oci.ValidTag(tag) {
		return "", false
	}
	sum := sha256.Sum256([]byte(acceptKey))
	return path.Join(dir, "_tags", tag+"@"+hex.EncodeToString(sum[:8])), true
}

// Blob opens stored blob d. The file was hashed before it was placed;
// the caller closes it.
func (s *Store) Blob(d v1.Hash) (f *os.File, size int64, ok bool) {
	rel := blobPath(d)
	o, ok := s.lookup(rel)
	if !ok {
		s.metrics.lookups.WithLabelValues("blob", "miss").Inc()
		return nil, 0, false
	}
	f, err := os.Open(filepath.Join(s.dir, rel))
	if err != nil {
		s.log.Warn("content store: a stored blob cannot be opened", zap.String("digest", d.String()), zap.Error(err))
		if damaged(err) {
			s.forget(rel)
		}
		return nil, 0, false
	}
	s.metrics.lookups.WithLabelValues("blob", "hit").Inc()
	return f, o.size, true
}

// HasBlob reports whether blob d is stored, and its size.
func (s *Store) HasBlob(d v1.Hash) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[blobPath(d)]
	if !ok {
		return 0, false
	}
	return o.size, true
}

// Manifest returns stored manifest d of repo. Its bytes are hashed again
// on every read (a manifest is small): a file damaged on disk is dropped,
// never served.
func (s *Store) Manifest(repo oci.Repository, d v1.Hash) (*oci.Manifest, bool) {
	rel, ok := manifestPath(repo, d)
	if !ok {
		return nil, false
	}
	if _, ok := s.lookup(rel); !ok {
		s.metrics.lookups.WithLabelValues("manifest", "miss").Inc()
		return nil, false
	}
	m, ok := s.readManifest(rel, d)
	if !ok {
		s.metrics.lookups.WithLabelValues("manifest", "miss").Inc()
		return nil, false
	}
	s.metrics.lookups.WithLabelValues("manifest", "hit").Inc()
	return m, true
}

// readManifest reads the manifest file at rel (media type, newline, the
// bytes) and hashes it against d: a damaged one is dropped, a passing read
// failure keeps it (and is a miss).
func (s *Store) readManifest(rel string, d v1.Hash) (*oci.Manifest, bool) {
	b, err := os.ReadFile(filepath.Join(s.dir, rel))
	if err != nil {
		s.log.Warn("content store: a stored manifest cannot be read", zap.String("path", rel), zap.Error(err))
		if damaged(err) {
			s.forget(rel)
		}
		return nil, false
	}
	mt, body, found := bytes.Cut(b, []byte("\n"))
	if got, err := oci.Digest(d.Algorithm, body); !found || err != nil || got != d {
		s.log.Warn("content store: a stored manifest is damaged; dropping it", zap.String("path", rel))
		s.forget(rel)
		return nil, false
	}
	return oci.NewManifest(d, string(mt), body), true
}

// used records a use of manifest d of repo, if it is stored.
func (s *Store) used(repo oci.Repository, d v1.Hash) {
	if rel, ok := manifestPath(repo, d); ok {
		s.lookup(rel)
	}
}

// PutManifest stores m as a manifest of repo (nothing to do when it is
// stored already).
func (s *Store) PutManifest(repo oci.Repository, m *oci.Manifest) error {
	rel, ok := manifestPath(repo, m.Digest)
	if !ok || strings.ContainsAny(m.MediaType, "\r\n") {
		return fmt.Errorf("content store: cannot store manifest %s of %s", m.Digest, repo)
	}
	if _, ok := s.lookup(rel); ok {
		return nil
	}
	b := make([]byte, 0, len(m.MediaType)+1+len(m.Bytes))
	b = append(append(append(b, m.MediaType...), '\n'), m.Bytes...)
	if err := s.writeFile(rel, b); err != nil {
		return err
	}
	s.added(rel, kindManifest, int64(len(b)), nil)
	return nil
}

// TagEntry is a tag's resolution as stored: the digest it named for an
// Accept set, and when the upstream last said so.
type TagEntry struct {
	Tag    string    `json:"tag"`
	Accept string    `json:"accept"`
	Digest string    `json:"digest"`
	Seen   time.Time `json:"seen"`
}

// Tag returns tag's stored resolution in repo for the Accept set key.
func (s *Store) Tag(repo oci.Repository, tag, acceptKey string) (TagEntry, bool) {
	rel, ok := tagPath(repo, tag, acceptKey)
	if !ok {
		return TagEntry{}, false
	}
	o, ok := s.lookup(rel)
	if !ok || o.tag == nil || o.tag.Tag != tag || o.tag.Accept != acceptKey {
		return TagEntry{}, false
	}
	return *o.tag, true
}

// TagAny returns the stored resolutions of tag in repo for every Accept
// set, most recently seen first.
func (s *Store) TagAny(repo oci.Repository, tag string) []TagEntry {
	dir, ok := repoDir(repo)
	if !ok {
		return nil
	}
	s.mu.Lock()
	var out []TagEntry
	for rel := range s.tagSets[dir+"|"+tag] {
		if o, ok := s.objects[rel]; ok && o.tag != nil {
			out = append(out, *o.tag)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b TagEntry) int { return b.Seen.Compare(a.Seen) })
	return out
}

// PutTag stores that tag named d in repo for the Accept set key, as seen
// from the upstream at seen.
func (s *Store) PutTag(repo oci.Repository, tag, acceptKey string, d v1.Hash, seen time.Time) error {
	rel, ok := tagPath(repo, tag, acceptKey)
	if !ok {
		return fmt.Errorf("content store: cannot store tag %q of %s", tag, repo)
	}
	e := TagEntry{Tag: tag, Accept: acceptKey, Digest: d.String(), Seen: seen.UTC()}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := s.writeFile(rel, b); err != nil {
		return err
	}
	s.added(rel, kindTag, int64(len(b)), &e)
	return nil
}
