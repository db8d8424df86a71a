package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWrite: the file holds the bytes with the mode asked for, replaces
// an old one whole, and a failed write leaves the old file and no
// temporary file behind.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "f.json")
	if err := Write(path, []byte("one"), 0o644, ""); err == nil {
		t.Fatal("a temporary file in a missing directory was made")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two"} {
		if err := Write(path, []byte(want), 0o644, ""); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != want {
			t.Fatalf("read %q %v, want %q", b, err, want)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "new", "g"), []byte("g"), 0o600, tmp); err != nil {
		t.Fatalf("into a new directory through tmpDir: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub", "dirthere"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "sub", "dirthere"), []byte("x"), 0o600, ""); err == nil {
		t.Fatal("renaming over a directory succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Errorf("a failed write changed the other file: %q", b)
	}
	for _, d := range []string{filepath.Dir(path), tmp} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Name()[0] == '.' {
				t.Errorf("temporary file %s left in %s", e.Name(), d)
			}
		}
	}
}
