package verify

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestReader(t *testing.T) {
	ctx := context.Background()
	tr := newRegistry(t, false, nil)
	repo := tr.Repo("acme/app")
	img := tr.PushImage(repo, "v1")
	r := tr.Reader

	byTag, err := r.Manifest(ctx, repo, "v1")
	if err != nil || byTag.Digest != img.Digest || byTag.MediaType != string(img.MediaType) {
		t.Fatalf("Manifest(v1) = %+v, %v", byTag, err)
	}
	byDigest, err := r.Manifest(ctx, repo, img.Digest.String())
	if err != nil || string(byDigest.Bytes) != string(byTag.Bytes) {
		t.Fatalf("Manifest(digest) = %+v, %v", byDigest, err)
	}
	missing := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	for name, err := range map[string]error{
		"tag":        second(r.Manifest(ctx, repo, "nope")),
		"digest":     second(r.Manifest(ctx, repo, missing.String())),
		"repository": second(r.Manifest(ctx, tr.Repo("acme/none"), "v1")),
		"blob":       second(r.Blob(ctx, repo, missing, 10)),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
	idx, err := r.Referrers(ctx, repo, img.Digest)
	if err != nil || len(idx.Manifests) != 0 {
		t.Errorf("Referrers = %+v, %v; want an empty index", idx, err)
	}

	blob := tr.PushBlob(repo, []byte("0123456789"), "text/plain")
	if b, err := r.Blob(ctx, repo, blob.Digest, 10); err != nil || string(b) != "0123456789" {
		t.Errorf("Blob = %q, %v", b, err)
	}
	if _, err := r.Blob(ctx, repo, blob.Digest, 9); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Blob over max: err = %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestRecoverTo(t *testing.T) {
	f := func() (err error) {
		defer recoverTo(&err)
		var m map[string]int
		m["x"] = 1
		return nil
	}
	if err := f(); err == nil || !strings.HasPrefix(err.Error(), panicMessage) {
		t.Errorf("err = %v", err)
	}
}
