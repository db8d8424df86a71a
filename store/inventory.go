package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
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

// This file is what the store's operators see and do: list what is
// stored, prune what was not used lately, and re-hash everything.

// Entry is one stored manifest, as "portcullis cache ls" lists it.
type Entry struct {
	// Image is "registry/repository".
	Image  string `json:"image"`
	Digest string `json:"digest"`
	// Tags are the stored tags that name it.
	Tags []string `json:"tags,omitempty"`
	// Size is the manifest's bytes plus those of the stored blobs it lists.
	Size     int64     `json:"size"`
	LastUsed time.Time `json:"lastUsed"`
}

// List returns every stored manifest, most recently used first.
func (s *Store) List() []Entry {
	type manifest struct {
		rel  string
		used time.Time
		size int64
	}
	s.mu.Lock()
	var ms []manifest
	tags := map[string][]string{} // "<repo dir>|<digest>": tags
	blobSizes := map[string]int64{}
	for rel, o := range s.objects {
		switch o.kind {
		case kindManifest:
			ms = append(ms, manifest{rel, o.used, o.size})
		case kindTag:
			dir, _, _ := strings.Cut(rel, "/_tags/")
			tags[dir+"|"+o.tag.Digest] = append(tags[dir+"|"+o.tag.Digest], o.tag.Tag)
		case kindBlob:
			blobSizes[rel] = o.size
		}
	}
	s.mu.Unlock()
	out := make([]Entry, 0, len(ms))
	for _, m := range ms {
		dir, rest, _ := strings.Cut(m.rel, "/_manifests/")
		alg, hex, _ := strings.Cut(rest, "/")
		d := alg + ":" + hex
		e := Entry{Image: strings.TrimPrefix(dir, "repos/"), Digest: d, Size: m.size, LastUsed: m.used}
		if b, err := os.ReadFile(filepath.Join(s.dir, m.rel)); err == nil {
			_, body, _ := bytes.Cut(b, []byte("\n"))
			for _, bd := range listedBlobs(body) {
				e.Size += blobSizes[blobPath(bd)]
			}
		}
		e.Tags = slices.Compact(slices.Sorted(slices.Values(tags[dir+"|"+d])))
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return b.LastUsed.Compare(a.LastUsed) })
	return out
}

// Prune removes every manifest not used for olderThan (with its tags and
// signature material), then the blobs no remaining manifest lists, and
// returns how many objects and bytes went.
func (s *Store) Prune(olderThan time.Duration) (objects int, bytes int64) {
	cutoff := s.now().Add(-olderThan)
	before := s.usage()
	s.mu.Lock()
	var old []string
	for rel, o := range s.objects {
		if o.kind == kindManifest && o.used.Before(cutoff) {
			old = append(old, rel)
		}
	}
	s.mu.Unlock()
	for _, rel := range old {
		s.forget(rel)
	}
	n := len(old) + s.collect()
	s.log.Info("content store pruned", zap.Duration("olderThan", olderThan), zap.Int("objects", n))
	return n, before - s.usage()
}

// VerifyResult is what Verify found.
type VerifyResult struct {
	Checked int      `json:"checked"`
	Dropped []string `json:"dropped,omitempty"` // paths, relative to the store's directory
}

// Verify re-hashes every stored blob and manifest (material manifests
// too) and drops those whose bytes no longer match their names (a damaged
// disk, a hand edit). Tags and material records whose manifest is gone go
// with it.
func (s *Store) Verify(ctx context.Context) (VerifyResult, error) {
	s.mu.Lock()
	type item struct {
		rel string
		k   kind
	}
	var items []item
	for rel, o := range s.objects {
		if o.kind == kindBlob || o.kind == kindManifest || (o.kind == kindMaterial && path.Base(rel) != recordFile) {
			items = append(items, item{rel, o.kind})
		}
	}
	s.mu.Unlock()
	var res VerifyResult
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Checked++
		if ok := s.intact(it.rel, it.k); !ok {
			s.log.Warn("content store: dropping an object whose bytes do not match its digest", zap.String("path", it.rel))
			s.forget(it.rel)
			res.Dropped = append(res.Dropped, it.rel)
		}
	}
	s.collect()
	return res, nil
}

// intact re-hashes the object at rel against the digest its name holds.
func (s *Store) intact(rel string, k kind) bool {
	var want v1.Hash
	switch k {
	case kindBlob, kindManifest:
		want = v1.Hash{Algorithm: path.Base(path.Dir(rel)), Hex: path.Base(rel)}
	default:
		alg, hex, _ := strings.Cut(path.Base(rel), "-")
		want = v1.Hash{Algorithm: alg, Hex: hex}
	}
	f, err := os.Open(filepath.Join(s.dir, rel))
	if err != nil {
		return false
	}
	defer f.Close()
	var r io.Reader = f
	if k != kindBlob { // media type, newline, then the bytes
		b, err := io.ReadAll(f)
		if err != nil {
			return false
		}
		_, body, found := bytes.Cut(b, []byte("\n"))
		if !found {
			return false
		}
		r = bytes.NewReader(body)
	}
	h := oci.NewHasher(want.Algorithm)
	if _, err := io.Copy(h, r); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == want.Hex
}
