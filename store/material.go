package store

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/upstream"
)

// This file is the store's part in decisions: the signature material of
// allowed images, kept so that the gate can decide again (after a
// restart, under a new policy) without the upstream.
//
// The gate reads through Reader. What it reads is remembered for a while
// (recent); when the proxy reports a subject allowed as an image
// (KeepManifest), what was read about that subject is committed under it:
//
//	repos/<registry>/<name>/_material/<alg>/<subject hex>/record.json   the answers (JSON)
//	repos/<registry>/<name>/_material/<alg>/<subject hex>/<alg>-<hex>   the manifests those list
//	repos/<registry>/<name>/_material/<alg>/<subject hex>/from/<registry>/<name>/...
//	    the same, read from another repository (an authority's signaturesFrom)
//
// and the blobs those manifests list go to blobs/. The material of a
// subject is dropped with it, never before it. Content-addressed material
// (manifests and blobs by digest) is always read from the store when it
// is there; the answers that can change (a signature tag, a referrers
// list) come from the upstream, and from the record only while the
// upstream cannot answer, for up to maxStale.

// materialRecord is what the upstream answered about a subject: its
// signature tags (tag: the digest it named, "" for none) and its
// referrers index.
type materialRecord struct {
	Subject   string            `json:"subject"`
	Seen      time.Time         `json:"seen"`
	Tags      map[string]string `json:"tags,omitempty"`
	Referrers json.RawMessage   `json:"referrers,omitempty"`
}

const recordFile = "record.json"

func materialDir(repo oci.Repository, subject v1.Hash) (string, bool) {
	dir, ok := repoDir(repo)
	return path.Join(dir, "_material", subject.Algorithm, subject.Hex), ok
}

// sourcedDir is where material about subject, an image of repo, read from
// another repository src (an authority's signaturesFrom) is kept: under
// the subject's own, so that it goes with the subject.
func sourcedDir(repo, src oci.Repository, subject v1.Hash) (string, bool) {
	dir, ok := materialDir(repo, subject)
	srcDir, srcOK := repoDir(src)
	return path.Join(dir, "from", strings.TrimPrefix(srcDir, "repos/")), ok && srcOK
}

func materialManifestName(d v1.Hash) string { return d.Algorithm + "-" + d.Hex }

// recent remembers what the gate read lately, bounded in bytes, oldest
// dropped first: the material a decision read is committed just after it,
// when the subject is allowed.
type recent struct {
	mu    sync.Mutex
	max   int
	bytes int
	order *list.List // of *read, oldest first
	by    map[string]*list.Element
}

type read struct {
	key string
	// One of: a tag's answer (digest, or notFound); a referrers index; a
	// manifest; a blob.
	digest    string
	notFound  bool
	referrers []byte
	manifest  *oci.Manifest
	blob      []byte
	at        time.Time
}

func (r *read) size() int {
	n := len(r.key) + len(r.referrers) + len(r.blob) + 64
	if r.manifest != nil {
		n += len(r.manifest.Bytes)
	}
	return n
}

// recentBytes bounds what is remembered of the gate's reads.
const recentBytes = 16 << 20

func newRecent(max int) *recent {
	return &recent{max: max, order: list.New(), by: map[string]*list.Element{}}
}

func (c *recent) put(r *read) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.by[r.key]; ok {
		c.bytes -= e.Value.(*read).size()
		c.order.Remove(e)
	}
	if r.size() > c.max {
		delete(c.by, r.key)
		return
	}
	c.by[r.key] = c.order.PushBack(r)
	c.bytes += r.size()
	for c.bytes > c.max {
		old := c.order.Remove(c.order.Front()).(*read)
		delete(c.by, old.key)
		c.bytes -= old.size()
	}
}

// take removes and returns what is remembered under key.
func (c *recent) take(key string) (*read, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.by[key]
	if !ok {
		return nil, false
	}
	c.order.Remove(e)
	delete(c.by, key)
	r := e.Value.(*read)
	c.bytes -= r.size()
	return r, true
}

func (c *recent) get(key string) (*read, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.by[key]
	if !ok {
		return nil, false
	}
	return e.Value.(*read), true
}

func tagReadKey(repo oci.Repository, tag string) string { return "tag|" + repo.String() + "|" + tag }
func referrersReadKey(repo oci.Repository, subject v1.Hash) string {
	return "referrers|" + repo.String() + "|" + subject.String()
}
func manifestReadKey(repo oci.Repository, d v1.Hash) string {
	return "manifest|" + repo.String() + "|" + d.String()
}
func blobReadKey(d v1.Hash) string { return "blob|" + d.String() }

// Reader is what the gate reads signature material through (it implements
// verify.Reader): the upstream client with the store in front.
type Reader struct{ c *Client }

// Reader returns the gate's reader.
func (c *Client) Reader() *Reader { return &Reader{c: c} }

// Manifest returns a manifest by digest from memory or the store when it
// is there, else from the upstream; by tag (a signature tag) from the
// upstream, else, while it cannot answer, from the stored material.
func (r *Reader) Manifest(ctx context.Context, repo oci.Repository, ref string) (*oci.Manifest, error) {
	c := r.c
	if oci.IsDigest(ref) {
		d, err := oci.ParseDigest(ref)
		if err != nil {
			return nil, err
		}
		if m, ok := c.manifest(repo, d); ok {
			return m, nil
		}
		if m, ok := c.store.materialManifest(repo, d); ok {
			return m, nil
		}
		m, err := c.Client.Manifest(ctx, repo, ref)
		if err == nil {
			c.recent.put(&read{key: manifestReadKey(repo, d), manifest: m, at: c.now()})
		}
		return m, err
	}
	m, err := c.Client.Manifest(ctx, repo, ref)
	switch {
	case err == nil:
		c.recent.put(&read{key: tagReadKey(repo, ref), digest: m.DigestString(), at: c.now()})
		c.recent.put(&read{key: manifestReadKey(repo, m.Digest), manifest: m, at: c.now()})
		return m, nil
	case errors.Is(err, oci.ErrNotFound):
		c.recent.put(&read{key: tagReadKey(repo, ref), notFound: true, at: c.now()})
		return nil, err
	}
	subject, ok := subjectOfTag(ref)
	if !ok {
		return nil, err
	}
	rec, ok := c.offlineRecord(err, repo, subject)
	if !ok {
		return nil, err
	}
	d, known := rec.Tags[ref]
	if !known {
		return nil, err
	}
	c.staleMaterial(repo, subject, err)
	if d == "" {
		return nil, fmt.Errorf("%s:%s (stored material, the upstream being unavailable): %w", repo, ref, oci.ErrNotFound)
	}
	hd, perr := oci.ParseDigest(d)
	if perr != nil {
		return nil, err
	}
	if m, ok := c.store.materialManifest(repo, hd); ok {
		return m, nil
	}
	return nil, err
}

// Referrers returns the referrers of subject from the upstream, else,
// while it cannot answer, from the stored material.
func (r *Reader) Referrers(ctx context.Context, repo oci.Repository, subject v1.Hash) (*v1.IndexManifest, error) {
	c := r.c
	idx, err := c.Client.Referrers(ctx, repo, subject)
	if err == nil {
		if b, merr := json.Marshal(idx); merr == nil {
			c.recent.put(&read{key: referrersReadKey(repo, subject), referrers: b, at: c.now()})
		}
		return idx, nil
	}
	rec, ok := c.offlineRecord(err, repo, subject)
	if !ok || rec.Referrers == nil {
		return nil, err
	}
	var stored v1.IndexManifest
	if json.Unmarshal(rec.Referrers, &stored) != nil {
		return nil, err
	}
	c.staleMaterial(repo, subject, err)
	return &stored, nil
}

// Blob returns a blob from the store when it is there, else from the
// upstream.
func (r *Reader) Blob(ctx context.Context, repo oci.Repository, d v1.Hash, max int64) ([]byte, error) {
	c := r.c
	if f, size, ok := c.store.Blob(d); ok {
		defer f.Close()
		if size <= max {
			b := make([]byte, size)
			if _, err := f.ReadAt(b, 0); err == nil {
				return b, nil
			}
		}
	}
	b, err := c.Client.Blob(ctx, repo, d, max)
	if err == nil {
		c.recent.put(&read{key: blobReadKey(d), blob: b, at: c.now()})
	}
	return b, err
}

// KeepBlob is told of a blob discovery had without reading it (a legacy
// payload rebuilt from its digest, verify.Keeper): it is remembered as if
// it had been read, so that it is kept with the material of an allowed
// subject as a read payload is.
func (r *Reader) KeepBlob(_ oci.Repository, d v1.Hash, b []byte) {
	if _, ok := r.c.store.lookup(blobPath(d)); ok {
		return // stored already; putMaterial links it
	}
	r.c.recent.put(&read{key: blobReadKey(d), blob: b, at: r.c.now()})
}

// subjectOfTag is the subject a signature tag names: "sha256-<hex>" with
// any suffix (".sig", ".att", ...).
func subjectOfTag(tag string) (v1.Hash, bool) {
	alg, rest, ok := strings.Cut(tag, "-")
	if !ok {
		return v1.Hash{}, false
	}
	hex, _, _ := strings.Cut(rest, ".")
	if !validHex(alg, hex) {
		return v1.Hash{}, false
	}
	return v1.Hash{Algorithm: alg, Hex: hex}, true
}

// offlineRecord returns the stored material record of subject in repo,
// when err is an outage and the record is within maxStale.
func (c *Client) offlineRecord(err error, repo oci.Repository, subject v1.Hash) (*materialRecord, bool) {
	if !upstream.IsOutage(err) {
		return nil, false
	}
	rec, ok := c.store.record(repo, subject)
	if !ok || !c.withinMaxStale(rec.Seen, c.now()) {
		return nil, false
	}
	return rec, true
}

func (c *Client) staleMaterial(repo oci.Repository, subject v1.Hash, err error) {
	c.log.Warn("upstream unavailable: deciding from stored signature material",
		zap.String("registry", repo.Registry), zap.String("repo", repo.Name),
		zap.String("subject", subject.String()), zap.Error(err))
	c.store.metrics.stale.WithLabelValues("material").Inc()
}

// keepMaterial commits what the gate read about subject (which it allowed
// as an image of repo), in repo and in each of sources, the other
// repositories the allowing verdict read signatures from (its policies'
// signaturesFrom; never any other repository that holds the same digest):
// the record of the answers, the manifests they name and the blobs those
// list, written in the background. Nothing is written when nothing was
// read about it since the last time (it was decided from a cached verdict,
// or is a child of an index): a warm request costs a few map lookups here.
func (c *Client) keepMaterial(repo oci.Repository, subject v1.Hash, sources []oci.Repository) {
	c.keepMaterialFrom(repo, repo, subject)
	for _, src := range sources {
		if src != repo {
			c.keepMaterialFrom(repo, src, subject)
		}
	}
}

// keepMaterialFrom commits what the gate read about subject, an allowed
// image of repo, from src (repo itself, or a signaturesFrom source).
func (c *Client) keepMaterialFrom(repo, src oci.Repository, subject v1.Hash) {
	dir, ok := materialDir(repo, subject)
	if src != repo {
		dir, ok = sourcedDir(repo, src, subject)
	}
	if !ok {
		return
	}
	rec := &materialRecord{Subject: subject.String(), Tags: map[string]string{}}
	var manifests []*oci.Manifest
	var latest time.Time
	addManifest := func(d v1.Hash) {
		if r, ok := c.recent.get(manifestReadKey(src, d)); ok && r.manifest != nil {
			manifests = append(manifests, r.manifest)
		}
	}
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		tag := subject.Algorithm + "-" + subject.Hex + suffix
		r, ok := c.recent.take(tagReadKey(src, tag))
		if !ok {
			continue
		}
		rec.Tags[tag] = r.digest
		latest = maxTime(latest, r.at)
		if d, err := oci.ParseDigest(r.digest); err == nil {
			addManifest(d)
		}
	}
	if r, ok := c.recent.take(referrersReadKey(src, subject)); ok {
		rec.Referrers = r.referrers
		latest = maxTime(latest, r.at)
		var idx v1.IndexManifest
		if json.Unmarshal(r.referrers, &idx) == nil {
			for _, desc := range idx.Manifests {
				addManifest(desc.Digest)
			}
		}
	}
	if latest.IsZero() {
		return // nothing read about it since: nothing new to keep
	}
	if _, sig := rec.Tags[subject.Algorithm+"-"+subject.Hex+".sig"]; !sig || rec.Referrers == nil {
		// A partial discovery (an allow served from a stale verdict while
		// the upstream failed): it must not replace a complete record.
		return
	}
	rec.Seen = latest
	blobs := map[v1.Hash][]byte{}
	for _, m := range manifests {
		for _, d := range listedBlobs(m.Bytes) {
			if r, ok := c.recent.get(blobReadKey(d)); ok {
				blobs[d] = r.blob
			}
		}
	}
	c.store.background(func() {
		if err := c.store.putMaterial(dir, src, rec, manifests, blobs); err != nil {
			c.log.Warn("content store: cannot keep signature material", zap.String("repo", repo.String()),
				zap.String("from", src.String()), zap.String("subject", subject.String()), zap.Error(err))
		}
	})
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// putMaterial writes a subject's material, read from src, into dir:
// manifests and blobs first, the record last, so that a record only ever
// names what is there.
func (s *Store) putMaterial(dir string, src oci.Repository, rec *materialRecord, manifests []*oci.Manifest, blobs map[v1.Hash][]byte) error {
	for _, m := range manifests {
		rel := path.Join(dir, materialManifestName(m.Digest))
		if _, ok := s.lookup(rel); !ok && !strings.ContainsAny(m.MediaType, "\r\n") {
			b := append(append([]byte(m.MediaType), '\n'), m.Bytes...)
			if err := s.writeFile(rel, b); err != nil {
				return err
			}
			s.added(rel, kindMaterial, int64(len(b)), nil)
		}
		for _, d := range listedBlobs(m.Bytes) {
			rel := blobPath(d)
			if _, ok := s.lookup(rel); ok {
				s.link(src, d)
				continue
			}
			b, ok := blobs[d]
			if !ok {
				continue // not read (a layer of material the policy did not need)
			}
			if err := s.writeFile(rel, b); err != nil {
				return err
			}
			s.added(rel, kindBlob, int64(len(b)), nil)
			s.link(src, d)
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	rel := path.Join(dir, recordFile)
	if err := s.writeFile(rel, b); err != nil {
		return err
	}
	s.added(rel, kindMaterial, int64(len(b)), nil)
	return nil
}

// record returns the stored record of material about subject read from
// repo: kept under subject in repo, or, repo being a signaturesFrom
// source, under subject in another repository.
func (s *Store) record(repo oci.Repository, subject v1.Hash) (*materialRecord, bool) {
	dir, ok := materialDir(repo, subject)
	if !ok {
		return nil, false
	}
	rel := path.Join(dir, recordFile)
	if _, ok := s.lookup(rel); !ok {
		src, _ := repoDir(repo)
		if rel, ok = s.indexed(recordKey(src, subject)); !ok {
			return nil, false
		}
	}
	b, err := os.ReadFile(filepath.Join(s.dir, rel))
	if err != nil {
		if damaged(err) {
			s.forget(rel)
		}
		return nil, false
	}
	var rec materialRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Subject != subject.String() {
		s.log.Warn("content store: a material record is damaged; dropping it", zap.String("path", rel), zap.Error(err))
		s.forget(rel)
		return nil, false
	}
	return &rec, true
}

// materialManifest returns a stored material manifest d of repo, under
// whichever subject it was kept (found through the index of material
// manifests by digest, built from the file names).
func (s *Store) materialManifest(repo oci.Repository, d v1.Hash) (*oci.Manifest, bool) {
	dir, ok := repoDir(repo)
	if !ok {
		return nil, false
	}
	rel, ok := s.indexed(dir + "|" + d.String())
	if !ok {
		return nil, false
	}
	return s.readManifest(rel, d)
}

// indexed returns a stored object that s.material holds under key (the
// first of them: any serves), counting it as used.
func (s *Store) indexed(key string) (string, bool) {
	s.mu.Lock()
	paths := s.material[key]
	var rel string
	if len(paths) > 0 {
		rel = paths[0]
	}
	s.mu.Unlock()
	if rel == "" {
		return "", false
	}
	_, ok := s.lookup(rel)
	return rel, ok
}

// withinMaxStale reports whether something seen at seen may still stand
// in for the upstream's answer.
func (c *Client) withinMaxStale(seen, now time.Time) bool {
	return c.maxStale == 0 || now.Sub(seen) < c.tagTTL+c.maxStale
}
