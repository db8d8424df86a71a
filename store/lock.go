package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockFile is the store's lock, and names its holder.
const lockFile = "LOCK"

// ErrLocked is returned (wrapped, with the holder) by Open when another
// process holds the store's directory.
var ErrLocked = errors.New("content store is in use by another process")

// lockDir takes an exclusive flock on dir's LOCK file and writes the
// holder (pid, host, start time) into it. The kernel releases the lock when
// the process dies, so a crash never leaves the store locked.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by %s", ErrLocked, dir, describeHolder(string(holder)))
		}
		return nil, fmt.Errorf("content store: locking %s: %w", path, err)
	}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(holder), 0)
	}
	return f, nil
}

func describeHolder(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return "an unknown process"
	}
	return s
}

func (s *Store) unlock() error {
	// Closing the descriptor releases the flock; the file (and its last
	// holder's name) stays.
	return s.lock.Close()
}
