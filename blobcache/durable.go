package blobcache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// syncedName is the marker a clean Close leaves: the time before which every
// blob file in the directory was synced to disk. Open trusts blobs filled
// before it without reading them for a CRC check, so a warm remount costs no
// extra read of the cache; after a crash there is no marker and blobs are
// verified on first use, as before.
const syncedName = "synced"

// readSyncedMark reads and removes the marker. A marker is good for one
// Open: blobs written after it are covered only by the next clean Close.
func (c *Cache) readSyncedMark() time.Time {
	path := filepath.Join(c.dir, syncedName)
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}
	}
	os.Remove(path)
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	if err != nil {
		c.log.Warn("ignoring unreadable cache marker", "path", path, "err", err)
		return time.Time{}
	}
	return t
}

// writeSyncedMark syncs the cache's filesystem and records when the sync
// began: every blob file renamed into place before then is on disk.
func (c *Cache) writeSyncedMark() error {
	start := c.now()
	d, err := os.Open(c.dir)
	if err != nil {
		return fmt.Errorf("blobcache: sync: %w", err)
	}
	defer d.Close()
	if err := syncFS(int(d.Fd())); err != nil {
		return fmt.Errorf("blobcache: syncfs %s: %w", c.dir, err)
	}
	tmp := filepath.Join(c.dir, syncedName+".tmp")
	if err := os.WriteFile(tmp, []byte(start.UTC().Format(time.RFC3339Nano)+"\n"), 0o600); err != nil {
		return fmt.Errorf("blobcache: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, syncedName)); err != nil {
		return fmt.Errorf("blobcache: %w", err)
	}
	return nil
}
