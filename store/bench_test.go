package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkOpen100k is the start-up cost of a store of 100,000 objects
// (blobs of 1 KiB, and a manifest and a tag for every tenth): Open indexes
// them from names and sizes, without reading or hashing content.
//
//	go test ./store -run '^$' -bench Open100k -benchtime 3x
func BenchmarkOpen100k(b *testing.B) {
	dir := b.TempDir()
	const n = 100_000
	blob := make([]byte, 1024)
	for i := range n {
		content := blob
		sum := sha256.Sum256(fmt.Appendf(nil, "%d", i))
		hexd := hex.EncodeToString(sum[:])
		rel := filepath.Join("blobs", "sha256", hexd)
		if i%10 == 1 {
			rel = filepath.Join("repos", "registry.example", fmt.Sprintf("acme/app%d", i%500), "_manifests", "sha256", hexd)
		}
		if i%10 == 2 {
			rel = filepath.Join("repos", "registry.example", fmt.Sprintf("acme/app%d", i%500), "_tags", fmt.Sprintf("v%d@0123456789abcdef", i))
			content = fmt.Appendf(nil, `{"tag":"v%d","accept":"","digest":"sha256:%s","seen":"2026-12-01T00:00:00Z"}`, i, hexd)
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		s, err := Open(dir, WithMaxSize(1<<40))
		if err != nil {
			b.Fatal(err)
		}
		if len(s.objects) != n {
			b.Fatalf("indexed %d objects, want %d", len(s.objects), n)
		}
		_ = s.Close()
	}
}
