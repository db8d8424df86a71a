package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/internal/atomicfile"
	"github.com/portcullis-dev/portcullis/oci"
)

// Store is a content store on disk. Make one with Open; Close releases its
// directory. It is safe for concurrent use.
type Store struct {
	dir     string
	maxSize int64
	log     *zap.Logger
	metrics *metrics
	now     func() time.Time
	lock    *os.File

	mu      sync.Mutex
	objects map[string]*object // by path relative to dir
	total   int64              // bytes of every object
	fills   map[string]*fill   // blobs being fetched, by digest string
	// filling is what the fills in progress reserved (see fill.reserved):
	// counted with total against maxSize, at most half of it.
	filling int64
	// material finds a material manifest by "<repo dir>|<digest>" (the
	// repository it was read from), and a record kept under another
	// repository's image by recordKey: every path that holds it (two
	// images of one digest in two repositories may each keep a copy).
	material map[string][]string
	// tagSets finds a tag's resolutions (one per Accept set) by
	// "<repo dir>|<tag>": their paths.
	tagSets map[string]map[string]bool
	pending int // background writes not finished (see background)
	evictCh chan struct{}
	// bypassUntil (UnixNano) is until when new blob fetches skip the store
	// after a disk write failed.
	bypassUntil atomic.Int64
	// createTemp makes a fill's temporary file (tests make ones whose
	// writes fail, as on a full disk).
	createTemp func(dir, pattern string) (tempFile, error)
	closed     chan struct{}
	// ctx is what fills run under: it outlives every request and ends with
	// Close, which abandons the fills still running.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// tempFile is what a fill writes to: an *os.File.
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

// object is one stored file as the index knows it.
type object struct {
	kind    kind
	size    int64
	used    time.Time // last use, as recorded (the file's modification time)
	touched time.Time // when used was last written to the file
	tag     *TagEntry // a tag's resolution (kindTag), kept in memory
}

type kind uint8

const (
	kindBlob kind = iota + 1
	kindManifest
	kindTag
	kindMaterial // a subject's material record, or a manifest it names
	kindLink     // a repository's right to read a shared blob
)

var kindNames = map[kind]string{kindBlob: "blob", kindManifest: "manifest", kindTag: "tag", kindMaterial: "material", kindLink: "link"}

func (k kind) String() string { return kindNames[k] }

type options struct {
	maxSize    int64
	logger     *zap.Logger
	registerer prometheus.Registerer
	now        func() time.Time
}

// Option configures a Store.
type Option func(*options) error

// WithMaxSize bounds the store: above n bytes, the least recently used
// content is evicted down to 90% of n. The default is 50 GiB.
func WithMaxSize(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("store size limit must be positive, got %d", n)
		}
		o.maxSize = n
		return nil
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithRegisterer registers the store's Prometheus metrics with r; the
// default registers nowhere.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) error { o.registerer = r; return nil }
}

// WithClock sets the clock last-use times are read from (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) error { o.now = now; return nil }
}

// DefaultMaxSize is the store's size limit when none is given: 50 GiB.
const DefaultMaxSize = 50 << 30

// touchEvery is how often an object's last use is written to its file:
// a hot blob costs one chtimes a minute, not one per request.
const touchEvery = time.Minute

// Open opens (creating it if needed) the store in dir: it takes the
// directory's lock (failing, and naming the holder, when another process
// has it), removes what an earlier process left in tmp/, and indexes what
// is stored from the file names and sizes alone, without reading or
// hashing any content (every object was hashed before it was renamed into
// place).
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{maxSize: DefaultMaxSize, logger: zap.NewNop(), now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"", "tmp", "blobs", "repos"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir: dir, maxSize: o.maxSize, log: o.logger, now: o.now, lock: lock,
		metrics: newMetrics(o.registerer),
		objects: map[string]*object{}, fills: map[string]*fill{}, material: map[string][]string{},
		tagSets: map[string]map[string]bool{},
		evictCh: make(chan struct{}, 1), closed: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.createTemp = func(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }
	if err := s.clearTmp(); err != nil {
		_ = s.unlock()
		return nil, err
	}
	if err := s.index(); err != nil {
		_ = s.unlock()
		return nil, err
	}
	s.metrics.limit.Set(float64(s.maxSize))
	s.metrics.usage.Set(float64(s.total))
	s.track()
	go s.evictLoop()
	s.kick()
	return s, nil
}

// Wait blocks until no blob fetch or background write is in progress (or
// ctx ends): everything fetched so far is then stored, or discarded.
func (s *Store) Wait(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := len(s.fills) + s.pending
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close stops the store's background work and releases its directory. Fetches
// in progress are abandoned (their temporary files are removed on the next
// Open).
func (s *Store) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	s.mu.Lock()
	close(s.closed) // under s.mu: track sees it before any Add races Wait
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return s.unlock()
}

// track counts one more goroutine Close must wait for, unless the store is
// closing (false: start nothing).
func (s *Store) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return false
	default:
	}
	s.wg.Add(1)
	return true
}

// clearTmp removes every file an earlier process left in tmp/: fetches that
// never finished. None was ever in place, so nothing served is lost.
func (s *Store) clearTmp() error {
	tmp := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("content store: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("content store: removing an unfinished fetch: %w", err)
		}
	}
	if len(entries) > 0 {
		s.log.Info("content store: removed unfinished fetches", zap.Int("files", len(entries)))
	}
	return nil
}

// index reads what is stored: blobs, manifests and tags, with their sizes
// and last-use times. A file that is not where an object would be (a stray
// or damaged name) is logged and ignored.
func (s *Store) index() error {
	start := time.Now()
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, path)
		if d.IsDir() {
			if rel == "tmp" {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == lockFile {
			return nil
		}
		k, ok := kindOf(filepath.ToSlash(rel))
		if !ok {
			s.log.Warn("content store: ignoring a file that is no stored object", zap.String("path", path))
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		o := &object{kind: k, size: info.Size(), used: info.ModTime(), touched: info.ModTime()}
		if k == kindTag {
			e, err := readTag(path)
			if err != nil || !oci.IsDigest(e.Digest) {
				s.log.Warn("content store: ignoring an unreadable tag", zap.String("path", path), zap.Error(err))
				return nil
			}
			o.tag = &e
		}
		s.objects[filepath.ToSlash(rel)] = o
		s.indexMaterial(filepath.ToSlash(rel), k)
		s.total += info.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("content store: indexing %s: %w", s.dir, err)
	}
	s.log.Info("content store indexed", zap.String("dir", s.dir), zap.Int("objects", len(s.objects)),
		zap.Int64("bytes", s.total), zap.Duration("took", time.Since(start)))
	return nil
}

// kindOf says what an object at rel (slash-separated, relative to the
// store's directory) is, from where it is.
func kindOf(rel string) (kind, bool) {
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) == 3 && parts[0] == "blobs" && validHex(parts[1], parts[2]):
		return kindBlob, true
	case len(parts) >= 6 && parts[0] == "repos" && parts[len(parts)-3] == "_manifests" &&
		validHex(parts[len(parts)-2], parts[len(parts)-1]):
		return kindManifest, true
	case len(parts) >= 5 && parts[0] == "repos" && parts[len(parts)-2] == "_tags":
		return kindTag, true
	case len(parts) >= 6 && parts[0] == "repos" && parts[len(parts)-3] == "_blobs" &&
		validHex(parts[len(parts)-2], parts[len(parts)-1]):
		return kindLink, true
	case parts[0] == "repos" && strings.Contains(rel, "/_material/"):
		if _, ok := parseMaterial(rel); ok {
			return kindMaterial, true
		}
	}
	return 0, false
}

// materialAt is where a material file is: about subject, an image of the
// repository at dir ("repos/<registry>/<name>"), read from the repository
// at src (dir itself, or an authority's signaturesFrom, kept under
// from/<registry>/<name>/); file is record.json or <alg>-<hex>.
type materialAt struct {
	dir, src string
	subject  v1.Hash
	file     string
}

// parseMaterial reads a material path:
//
//	<dir>/_material/<alg>/<hex>/<file>
//	<dir>/_material/<alg>/<hex>/from/<registry>/<name>/<file>
func parseMaterial(rel string) (materialAt, bool) {
	dir, rest, ok := strings.Cut(rel, "/_material/")
	if !ok || !strings.HasPrefix(dir, "repos/") {
		return materialAt{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 || !validHex(parts[0], parts[1]) {
		return materialAt{}, false
	}
	at := materialAt{dir: dir, src: dir, subject: v1.Hash{Algorithm: parts[0], Hex: parts[1]}, file: parts[len(parts)-1]}
	switch {
	case len(parts) == 3:
	case len(parts) >= 6 && parts[2] == "from" && !strings.ContainsAny(parts[3], `\`) && !strings.HasPrefix(parts[3], ".") &&
		oci.ValidRepositoryName(strings.Join(parts[4:len(parts)-1], "/")):
		at.src = "repos/" + strings.Join(parts[3:len(parts)-1], "/")
	default:
		return materialAt{}, false
	}
	if at.file != recordFile {
		alg, hex, ok := strings.Cut(at.file, "-")
		if !ok || !validHex(alg, hex) {
			return materialAt{}, false
		}
	}
	return at, true
}

// materialKey is the key of s.material for a material manifest at rel
// ("<source dir>|<digest>": found by the repository it was read from), or
// false for anything else.
func materialKey(rel string) (string, bool) {
	at, ok := parseMaterial(rel)
	if !ok || at.file == recordFile {
		return "", false
	}
	alg, hex, _ := strings.Cut(at.file, "-")
	return at.src + "|" + alg + ":" + hex, true
}

// sourcedRecordKey is the key of s.material for a record of material read
// from another repository than its subject's (see recordKey), or false.
func sourcedRecordKey(rel string) (string, bool) {
	at, ok := parseMaterial(rel)
	if !ok || at.file != recordFile || at.src == at.dir {
		return "", false
	}
	return recordKey(at.src, at.subject), true
}

// recordKey finds the record of material about subject read from the
// repository at src, kept under an image of another repository.
func recordKey(src string, subject v1.Hash) string { return "record|" + src + "|" + subject.String() }

// materialIndexKey is rel's key in s.material, if it has one.
func materialIndexKey(rel string) (string, bool) {
	if key, ok := materialKey(rel); ok {
		return key, true
	}
	return sourcedRecordKey(rel)
}

// indexMaterial adds a material manifest to s.material, and a tag to
// s.tagSets (s.mu held).
func (s *Store) indexMaterial(rel string, k kind) {
	switch k {
	case kindMaterial:
		if key, ok := materialIndexKey(rel); ok {
			if !slices.Contains(s.material[key], rel) {
				s.material[key] = append(s.material[key], rel)
			}
		}
	case kindTag:
		key := tagSetKey(rel)
		if s.tagSets[key] == nil {
			s.tagSets[key] = map[string]bool{}
		}
		s.tagSets[key][rel] = true
	}
}

// tagSetKey is "<repo dir>|<tag>" for a tag resolution at rel.
func tagSetKey(rel string) string {
	dir, name, _ := strings.Cut(rel, "/_tags/")
	tag, _, _ := strings.Cut(name, "@")
	return dir + "|" + tag
}

// background runs fn (a write the caller need not wait for) and counts it
// until it ends, for Wait and Close.
func (s *Store) background(fn func()) {
	if !s.track() {
		return // closing: nothing new is written
	}
	s.mu.Lock()
	s.pending++
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() { s.mu.Lock(); s.pending--; s.mu.Unlock() }()
		fn()
	}()
}

// validHex reports whether alg and hex name a digest (oci's one rule of
// digest algorithms and lengths).
func validHex(alg, hex string) bool {
	_, err := oci.ParseDigest(alg + ":" + hex)
	return err == nil
}

// lookup returns the object at rel and records its use.
func (s *Store) lookup(rel string) (*object, bool) {
	s.mu.Lock()
	o, ok := s.objects[rel]
	var touch bool
	now := s.now()
	if ok {
		o.used = now
		if now.Sub(o.touched) >= touchEvery {
			o.touched, touch = now, true
		}
	}
	s.mu.Unlock()
	if touch {
		// The last use goes to the file, so a restart keeps the order of
		// eviction. A failure loses only that ordering.
		_ = os.Chtimes(filepath.Join(s.dir, rel), now, now)
	}
	return o, ok
}

// added records an object just renamed into place (tag: its resolution,
// for a tag), and starts an eviction pass when the store is over its limit.
func (s *Store) added(rel string, k kind, size int64, tag *TagEntry) {
	s.mu.Lock()
	total := s.addLocked(rel, k, size, tag)
	s.mu.Unlock()
	s.afterAdd(k, total)
}

// addLocked indexes an object now on disk (s.mu is held) and returns the
// store's new total; afterAdd (without the lock) then counts it.
func (s *Store) addLocked(rel string, k kind, size int64, tag *TagEntry) int64 {
	now := s.now()
	if old, ok := s.objects[rel]; ok {
		s.total -= old.size
	}
	s.objects[rel] = &object{kind: k, size: size, used: now, touched: now, tag: tag}
	s.indexMaterial(rel, k)
	s.total += size
	return s.total
}

func (s *Store) afterAdd(k kind, total int64) {
	s.metrics.usage.Set(float64(total))
	s.metrics.commits.WithLabelValues(k.String()).Inc()
	s.mu.Lock()
	over := s.total+s.filling > s.maxSize // the fills in progress need their room too
	s.mu.Unlock()
	if over {
		s.kick()
	}
}

// forget removes an object from the index and the disk.
func (s *Store) forget(rel string) {
	s.mu.Lock()
	err := s.forgetLocked(rel)
	total := s.total
	s.mu.Unlock()
	s.forgotten(rel, total, err)
}

// forgetLocked is forget with s.mu held, but for the metric and the log
// (forgotten). The file is removed under the lock: a file placed at rel
// just after is never the one removed.
func (s *Store) forgetLocked(rel string) error {
	if o, ok := s.objects[rel]; ok {
		s.total -= o.size
		delete(s.objects, rel)
		if key, ok := materialIndexKey(rel); ok && o.kind == kindMaterial {
			if paths := slices.DeleteFunc(s.material[key], func(p string) bool { return p == rel }); len(paths) > 0 {
				s.material[key] = paths
			} else {
				delete(s.material, key)
			}
		}
		if o.kind == kindTag {
			key := tagSetKey(rel)
			delete(s.tagSets[key], rel)
			if len(s.tagSets[key]) == 0 {
				delete(s.tagSets, key)
			}
		}
	}
	return os.Remove(filepath.Join(s.dir, rel))
}

func (s *Store) forgotten(rel string, total int64, err error) {
	s.metrics.usage.Set(float64(total))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("content store: cannot remove an object", zap.String("path", rel), zap.Error(err))
	}
}

// damaged reports whether err, from opening or reading a stored object,
// means the object is gone or unusable (drop it from the index), rather
// than a passing failure (too many open files, I/O pressure) after which
// the file is kept and the request is a miss.
func damaged(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// writeFile stores b at rel: written to tmp/, fsynced, renamed into place,
// so a reader (or a crash) sees either nothing or all of it.
func (s *Store) writeFile(rel string, b []byte) error {
	if err := atomicfile.Write(filepath.Join(s.dir, rel), b, 0o600, filepath.Join(s.dir, "tmp")); err != nil {
		return s.diskError(err)
	}
	return nil
}

// place renames a finished temporary file to rel.
func (s *Store) place(tmp, rel string) error { return atomicfile.Place(tmp, filepath.Join(s.dir, rel)) }

// diskError counts and wraps a failure to write to the store (the disk is
// full, or failing): the content is served from the upstream, not stored.
func (s *Store) diskError(err error) error {
	s.metrics.diskErrors.Inc()
	return fmt.Errorf("content store: %w", err)
}
