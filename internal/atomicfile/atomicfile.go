// Package atomicfile writes a file so that a reader, or a crash, sees
// either the old file (or none) or all of the new one: the bytes go to a
// temporary file, which is fsynced and renamed into place. The directory
// is not fsynced: after a power cut the rename may be lost (the old file
// is back), which costs the callers, a cache and a CLI's output, nothing
// but a second fetch, and saves a journal commit per write.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Write stores b at path with mode perm. The temporary file is made in
// tmpDir ("" for path's own directory), which must be on path's file
// system; path's directory is created if missing.
func Write(path string, b []byte, perm fs.FileMode, tmpDir string) error {
	if tmpDir == "" {
		tmpDir = filepath.Dir(path)
	}
	f, err := os.CreateTemp(tmpDir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = Place(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// Place renames the finished (and fsynced) file tmp to path, creating
// path's directory if missing.
func Place(tmp, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
