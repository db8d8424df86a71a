package store

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
	"github.com/portcullis-dev/portcullis/upstream"
)

// Client is the upstream client with the content store in front: what the
// store holds is answered from disk, the rest from the upstream (one fetch
// per blob for everyone who asks at once), and what the proxy reports the
// gate allowed is kept (KeepManifest, OpenKeptBlob). It adds no decision
// of its own: every answer still goes through the gate.
//
// The methods it does not override (Has, Timeout, Tags, ReferrersFor and
// the gate's Manifest, Referrers and Blob) are the upstream client's.
type Client struct {
	*upstream.Client
	store *Store
	log   *zap.Logger
	// tagTTL is how long a stored tag resolution is used without asking the
	// upstream; maxStale how long past that it is used while the upstream
	// cannot answer (0: no limit).
	tagTTL, maxStale time.Duration
	now              func() time.Time
	// recent is what the gate read lately (see keepMaterial).
	recent *recent
}

// NewClient puts store in front of up. tagTTL is the upstream client's,
// maxStale the configured cache.maxStale (0 = no limit).
func NewClient(up *upstream.Client, store *Store, tagTTL, maxStale time.Duration, log *zap.Logger) *Client {
	if log == nil {
		log = zap.NewNop()
	}
	return &Client{Client: up, store: store, log: log, tagTTL: tagTTL, maxStale: maxStale, now: store.now,
		recent: newRecent(recentBytes)}
}

// Store is the content store the Client answers from.
func (c *Client) Store() *Store { return c.store }

// ManifestFor returns the manifest ref names in repo for a client that
// sent accept:
//   - by digest, the stored bytes when there are some (hashed again), else
//     the upstream's;
//   - by tag, the stored resolution while it is fresh (tagTTL); after it,
//     the upstream's (one HEAD when the manifest is stored); when the
//     upstream cannot answer, the stored resolution for up to maxStale.
func (c *Client) ManifestFor(ctx context.Context, repo oci.Repository, ref string, accept []string) (*oci.Manifest, error) {
	if oci.IsDigest(ref) {
		d, err := oci.ParseDigest(ref)
		if err != nil {
			return nil, err
		}
		if m, ok := c.manifest(repo, d); ok {
			return m, nil
		}
		m, err := c.Client.ManifestFor(ctx, repo, ref, accept)
		if err != nil {
			return nil, notStored(err, repo.String()+"@"+ref)
		}
		return m, nil
	}
	key := AcceptKey(accept)
	e, known := c.store.Tag(repo, ref, key)
	var stored *oci.Manifest
	if known {
		if d, err := oci.ParseDigest(e.Digest); err == nil {
			stored, _ = c.manifest(repo, d)
		}
	}
	now := c.now()
	if stored != nil && now.Sub(e.Seen) < c.tagTTL {
		c.store.metrics.lookups.WithLabelValues("tag", "hit").Inc()
		return stored, nil
	}
	c.store.metrics.lookups.WithLabelValues("tag", "miss").Inc()
	m, err := c.resolve(ctx, repo, ref, accept, stored)
	switch {
	case err == nil:
		if stored != nil && m.Digest == stored.Digest {
			// The upstream still says so: the stored resolution is fresh
			// again. (A new digest is stored only once the gate allowed it.)
			if perr := c.store.PutTag(repo, ref, key, m.Digest, now); perr != nil {
				c.log.Warn("content store: cannot refresh a tag", zap.Error(perr))
			}
		}
		return m, nil
	case stored == nil && upstream.IsOutage(err):
		// Not stored for this Accept set: one stored for another serves if
		// its manifest is of a type this client accepts.
		for _, other := range c.store.TagAny(repo, ref) {
			d, perr := oci.ParseDigest(other.Digest)
			if perr != nil || !c.withinMaxStale(other.Seen, now) {
				continue
			}
			if m, ok := c.manifest(repo, d); ok && accepts(accept, m.MediaType) {
				e, stored = other, m
				break
			}
		}
		if stored == nil {
			break
		}
		fallthrough
	case stored != nil && c.usableStale(err, e.Seen, now):
		c.log.Warn("upstream unavailable: serving a stored tag resolution",
			zap.String("registry", repo.Registry), zap.String("repo", repo.Name), zap.String("tag", ref),
			zap.String("digest", stored.DigestString()), zap.Time("seen", e.Seen), zap.Error(err))
		c.store.metrics.stale.WithLabelValues("tag").Inc()
		return stored, nil
	}
	return nil, notStored(err, repo.String()+":"+ref)
}

// accepts reports whether a client that sent accept takes a manifest of
// mediaType (no Accept, or */*, takes any).
func accepts(accept []string, mediaType string) bool {
	key := AcceptKey(accept)
	if key == "" {
		return true
	}
	for t := range strings.SplitSeq(key, ",") {
		if t == mediaType || t == "*/*" {
			return true
		}
	}
	return false
}

// notStored adds to an upstream outage that what was asked for is not in
// the content store (or too stale to serve), so the client's 503 (or 429,
// with its Retry-After) says why nothing could be served.
func notStored(err error, what string) error {
	var ue *upstream.Error
	if !errors.As(err, &ue) || !upstream.IsOutage(err) {
		return err
	}
	e := *ue
	e.Message += "; " + what + " is not in the content store (or is older than cache.maxStale)"
	return &e
}

// manifest returns manifest d of repo from memory (the upstream client's
// cache, which the hot path hits) or from the store.
func (c *Client) manifest(repo oci.Repository, d v1.Hash) (*oci.Manifest, bool) {
	if m, ok := c.Cached(repo, d); ok {
		c.store.used(repo, d) // the store's last use follows the hot path too
		return m, true
	}
	return c.store.Manifest(repo, d)
}

// resolve asks the upstream what tag names: with the manifest stored,
// one HEAD (the bytes are on disk already, and on Docker Hub a HEAD is not
// a pull); otherwise, or when the HEAD gives no digest, the upstream
// client's own resolution.
func (c *Client) resolve(ctx context.Context, repo oci.Repository, tag string, accept []string, stored *oci.Manifest) (*oci.Manifest, error) {
	if stored != nil {
		d, err := c.HeadTag(ctx, repo, tag, accept)
		switch {
		case err == nil && d == stored.Digest:
			return stored, nil
		case err == nil:
			return c.ManifestFor(ctx, repo, d.String(), accept)
		case !errors.Is(err, upstream.ErrNoDigest):
			return nil, err
		}
	}
	return c.Client.ManifestFor(ctx, repo, tag, accept)
}

// usableStale reports whether a stored resolution seen at seen may answer
// for an upstream that failed with err: only for an outage (never a 404
// or 401: the tag is gone, or access is), and for up to maxStale past the
// tag's TTL (no limit when maxStale is 0).
func (c *Client) usableStale(err error, seen, now time.Time) bool {
	return upstream.IsOutage(err) && c.withinMaxStale(seen, now)
}

// KeepManifest records that the gate allowed m as an image of repo, asked
// for as reference by a client that sent accept, its signatures read from
// repo and from sources (its policies' signaturesFrom): the manifest is
// stored, with the signature material the gate read to allow it there,
// and a tag's resolution. Failures are logged (the manifest was served;
// it is just not kept).
func (c *Client) KeepManifest(ctx context.Context, repo oci.Repository, reference string, accept []string, m *oci.Manifest, sources []oci.Repository) {
	if err := c.store.PutManifest(repo, m); err != nil {
		c.log.Warn("content store: cannot keep a manifest", zap.String("repo", repo.String()),
			zap.String("digest", m.DigestString()), zap.Error(err))
		return
	}
	c.keepMaterial(repo, m.Digest, sources)
	if oci.IsDigest(reference) {
		return
	}
	key := AcceptKey(accept)
	if e, ok := c.store.Tag(repo, reference, key); ok && e.Digest == m.DigestString() {
		return
	}
	// Seen when the upstream said so: a resolution stored for another
	// Accept set (served while the upstream was down, or just older) keeps
	// its time, so switching Accept sets never makes a stale one fresh.
	seen := c.now()
	for _, other := range c.store.TagAny(repo, reference) {
		if other.Digest == m.DigestString() {
			seen = other.Seen
			break
		}
	}
	if err := c.store.PutTag(repo, reference, key, m.Digest, seen); err != nil {
		c.log.Warn("content store: cannot keep a tag", zap.String("repo", repo.String()),
			zap.String("tag", reference), zap.Error(err))
	}
}

// Refused records that the gate refused m as an image of repo: whatever
// the store holds of it there goes (the manifest, the tags that name it,
// its signature material), so that no decision made later without the
// upstream can rest on material the upstream has since withdrawn.
func (c *Client) Refused(ctx context.Context, repo oci.Repository, reference string, m *oci.Manifest) {
	if n := c.store.drop(repo, m.Digest); n > 0 {
		c.log.Info("content store: dropped a refused image", zap.String("repo", repo.String()),
			zap.String("digest", m.DigestString()), zap.Int("objects", n))
	}
}

// StatBlob returns the size of blob d: the stored one's when repo may
// have it (see reachable), else the upstream's.
func (c *Client) StatBlob(ctx context.Context, repo oci.Repository, d v1.Hash) (int64, error) {
	if size, ok := c.store.HasBlob(d); ok && c.store.linked(repo, d) {
		return size, nil
	}
	size, err := c.Client.StatBlob(ctx, repo, d)
	if err == nil {
		c.store.link(repo, d)
	}
	return size, err
}

// OpenBlob opens blob d: from the store when it is there (and repo may
// have it), else from the upstream, without keeping it (signature
// material, and blobs the gate did not grant as image content, are never
// stored this way).
func (c *Client) OpenBlob(ctx context.Context, repo oci.Repository, d v1.Hash, rng *upstream.Range) (*upstream.Blob, error) {
	if c.reachable(ctx, repo, d) == nil {
		if b, ok := c.stored(d); ok {
			return b, nil
		}
	}
	return c.Client.OpenBlob(ctx, repo, d, rng)
}

// OpenKeptBlob opens blob d, which the gate granted as a config or layer
// of an allowed image of repo: from the store when it is there; else the
// whole blob is fetched into the store (one upstream fetch for every
// concurrent request) and streamed from it as it lands. A ranged request
// for a blob not stored goes to the upstream.
func (c *Client) OpenKeptBlob(ctx context.Context, repo oci.Repository, d v1.Hash, rng *upstream.Range) (*upstream.Blob, error) {
	if err := c.reachable(ctx, repo, d); err != nil {
		return nil, notStored(err, "blob "+d.String())
	}
	if b, ok := c.stored(d); ok {
		return b, nil
	}
	if rng != nil || c.store.bypassed() {
		return c.Client.OpenBlob(ctx, repo, d, rng)
	}
	body, size, err := c.store.fetch(ctx, repo, d, func(ctx context.Context, rng *upstream.Range) (*upstream.Blob, error) {
		b, err := c.Client.OpenBlob(ctx, repo, d, rng)
		if err != nil {
			return nil, err
		}
		if b.Partial && rng == nil {
			_ = b.Body.Close()
			return nil, errors.New("upstream answered a whole-blob request with a range")
		}
		return b, nil
	})
	if errors.Is(err, errStored) {
		if b, ok := c.stored(d); ok {
			return b, nil
		}
		return c.Client.OpenBlob(ctx, repo, d, nil)
	}
	if errors.Is(err, errBypassed) {
		return c.Client.OpenBlob(ctx, repo, d, nil)
	}
	if err != nil {
		return nil, notStored(err, "blob "+d.String())
	}
	return &upstream.Blob{Body: body, Size: size, Verified: true}, nil
}

// reachable checks that repo may read blob d from the store, whose blobs
// are shared by every repository: d was fetched for repo (or read by the
// gate from it), or the upstream says repo has it (one HEAD, remembered).
// Without that, a layer of a repository only the proxy's credentials
// reach would be served in any repository whose allowed manifest lists
// its digest. Nil also when d is neither stored nor being fetched for
// another repository (it is then fetched for this one).
func (c *Client) reachable(ctx context.Context, repo oci.Repository, d v1.Hash) error {
	if c.store.linked(repo, d) {
		return nil
	}
	if _, stored := c.store.HasBlob(d); !stored && !c.store.fillingForOther(d, repo) {
		return nil
	}
	if _, err := c.Client.StatBlob(ctx, repo, d); err != nil {
		return err
	}
	c.store.link(repo, d)
	return nil
}

// stored opens d from the store, as a whole verified file.
func (c *Client) stored(d v1.Hash) (*upstream.Blob, bool) {
	f, size, ok := c.store.Blob(d)
	if !ok {
		return nil, false
	}
	sf := &storedFile{File: f, served: c.store.metrics.served.WithLabelValues("store")}
	return &upstream.Blob{Body: sf, Size: size, Verified: true, Content: sf}, true
}

// storedFile is a stored blob's file that counts the bytes read from it:
// those between each Seek and the next (or Close), from the file's
// offset, which sendfile moves too. http.ServeContent seeks to what it
// sends, so a Range counts its bytes, and a HEAD or a 304 nothing. The
// embedded *os.File's SyscallConn lets net/http still send it with
// sendfile.
type storedFile struct {
	*os.File
	served prometheus.Counter
	// mu guards from: a multi-range answer seeks from a goroutine of
	// net/http's that may still run when the handler closes the file.
	mu   sync.Mutex
	from int64 // the offset of the last Seek
}

func (f *storedFile) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count()
	n, err := f.File.Seek(offset, whence)
	if err == nil {
		f.from = n
	}
	return n, err
}

func (f *storedFile) Close() error {
	f.mu.Lock()
	f.count()
	f.mu.Unlock()
	return f.File.Close()
}

// count adds what was read since the last Seek (f.mu is held).
func (f *storedFile) count() {
	if pos, err := f.File.Seek(0, io.SeekCurrent); err == nil && pos > f.from {
		f.served.Add(float64(pos - f.from))
		f.from = pos
	}
}
