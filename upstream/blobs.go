package upstream

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/oci"
)

// Blob is an open blob response from an upstream.
type Blob struct {
	// Body streams the bytes; the caller closes it. Each read waits at
	// most the upstream timeout for progress; there is no total bound.
	Body io.ReadCloser
	// Size is the whole blob's size, -1 when the upstream did not say.
	Size int64
	// Partial reports that Body holds only the range asked for: bytes
	// First to Last (inclusive) of the blob, as ContentRange (the
	// upstream's header) says. Otherwise Body is the whole blob, even when
	// a range was asked (the upstream ignored it, or refused the form).
	Partial      bool
	First, Last  int64
	ContentRange string
	// Verified reports that whoever produced Body checks it against the
	// digest itself: a mismatch or truncation fails a read before the last
	// byte is returned, so the reader need not hash it again (the content
	// store's blobs).
	Verified bool
	// Content, when set, is the whole verified blob as a seekable file
	// (Body is the same file): it can answer ranges, conditional requests
	// and HEAD itself, and be sent with sendfile.
	Content io.ReadSeeker

	mismatch func(got string)
}

// Mismatched records that a whole Body did not hash to the digest asked
// for (got is what it hashed to): the caller found it while streaming, the
// Client counts and logs it.
func (b *Blob) Mismatched(got string) {
	if b.mismatch != nil {
		b.mismatch(got)
	}
}

// OpenBlob opens blob d of repo, or the range rng of it when rng is not
// nil. The upstream's headers come within the upstream timeout; the body's
// reads get the same between two of them. A range that lies outside the
// blob is a RangeNotSatisfiable Error.
func (c *Client) OpenBlob(ctx context.Context, repo oci.Repository, d v1.Hash, rng *Range) (*Blob, error) {
	t, err := c.lookup(repo)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	idle := time.AfterFunc(c.timeout, cancel)
	b, err := c.openBlob(ctx, t, d, rng)
	if err != nil {
		idle.Stop()
		cancel()
		return nil, err
	}
	b.Body = &idleBody{rc: b.Body, timer: idle, timeout: c.timeout, cancel: cancel}
	b.mismatch = func(got string) {
		c.metrics.digestMismatch.WithLabelValues(t.reg.name, callBlob).Inc()
		c.log.Error("upstream blob does not match its digest", zap.String("registry", t.reg.name),
			zap.String("repo", t.repo.Name), zap.String("digest", d.String()), zap.String("received", got))
	}
	return b, nil
}

func (c *Client) openBlob(ctx context.Context, t target, d v1.Hash, rng *Range) (*Blob, error) {
	resp, err := c.blobRequest(ctx, t, d, rng)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return &Blob{Body: resp.Body, Size: resp.ContentLength}, nil
	case resp.StatusCode == http.StatusPartialContent && rng != nil:
		cr := resp.Header.Get("Content-Range")
		first, last, size, ok := ParseContentRange(cr)
		if !ok || (rng.suffix == 0 && first != rng.start) || (rng.end >= 0 && rng.suffix == 0 && last > rng.end) {
			_ = resp.Body.Close()
			return nil, newError(BadResponse, t.reg.name, "upstream %s answered range %q with %q", t.reg.name, rng.Header(), cr)
		}
		return &Blob{Body: resp.Body, Size: size, Partial: true, First: first, Last: last, ContentRange: cr}, nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && rng != nil &&
		!strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes */"):
		// A 416 that does not give the blob's size: some upstreams (ggcr's
		// registry) refuse the open-ended "bytes=N-" that containerd sends,
		// and suffix ranges. Fetch the whole blob for the caller to slice.
		_ = resp.Body.Close()
		return c.openBlob(ctx, t, d, nil)
	}
	defer resp.Body.Close()
	return nil, fromResponse(t.reg.name, resp)
}

func (c *Client) blobRequest(ctx context.Context, t target, d v1.Hash, rng *Range) (*http.Response, error) {
	var hdr http.Header
	if rng != nil {
		hdr = http.Header{"Range": {rng.Header()}}
	}
	return c.call(ctx, t, callBlob, http.MethodGet, t.path("blobs", d.String()), nil, hdr)
}

// StatBlob returns the size of blob d of repo, from one upstream HEAD
// shared by concurrent callers.
func (c *Client) StatBlob(ctx context.Context, repo oci.Repository, d v1.Hash) (int64, error) {
	t, err := c.lookup(repo)
	if err != nil {
		return 0, err
	}
	v, err := c.shared(ctx, "blobhead|"+manifestKey(t.repo, d), func(ctx context.Context) (any, error) {
		resp, err := c.call(ctx, t, callBlob, http.MethodHead, t.path("blobs", d.String()), nil, nil)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fromResponse(t.reg.name, resp)
		}
		if resp.ContentLength < 0 {
			return nil, newError(BadResponse, t.reg.name, "upstream %s gave no size for blob %s", t.reg.name, d)
		}
		return resp.ContentLength, nil
	})
	if err != nil {
		return 0, err
	}
	return v.(int64), nil
}

// Blob returns a whole blob of repo, checked against its digest, and fails
// if it is larger than max bytes. It is how the gate reads signature
// bundles and payloads.
func (c *Client) Blob(ctx context.Context, repo oci.Repository, d v1.Hash, max int64) ([]byte, error) {
	t, err := c.lookup(repo)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.metadataContext(ctx)
	defer cancel()
	resp, err := c.blobRequest(ctx, t, d, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fromResponse(t.reg.name, resp)
	}
	if resp.ContentLength > max {
		return nil, newError(BadResponse, t.reg.name, "blob %s is %d bytes, more than the %d allowed", d, resp.ContentLength, max)
	}
	b, err := readMetadata(ctx, t.reg.name, "blob", resp.Body, max)
	if err != nil {
		return nil, err
	}
	if got, err := oci.Digest(d.Algorithm, b); err != nil || got != d {
		c.metrics.digestMismatch.WithLabelValues(t.reg.name, callBlob).Inc()
		return nil, newError(DigestMismatch, t.reg.name, "upstream %s sent blob %s whose bytes hash to %s", t.reg.name, d, got)
	}
	return b, nil
}

// idleBody is a blob body whose reads restart an idle timer: when the
// timer fires (no progress for the timeout), the request's context is
// cancelled and the next read fails.
type idleBody struct {
	rc      io.ReadCloser
	timer   *time.Timer
	timeout time.Duration
	cancel  context.CancelFunc
	once    sync.Once
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.timeout)
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() { b.timer.Stop(); b.cancel() })
	return err
}
