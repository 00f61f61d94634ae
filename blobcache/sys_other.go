//go:build unix && !linux

package blobcache

import (
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// sysStatfs returns the bytes available to unprivileged users and the size
// of the filesystem holding dir.
func sysStatfs(dir string) (avail, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize)
	return uint64(st.Bavail) * bs, uint64(st.Blocks) * bs, nil
}

// accessTime returns fi's mtime: the LRU order after a restart is by fill
// time on these systems.
func accessTime(fi fs.FileInfo) time.Time { return fi.ModTime() }

// syncFS flushes every filesystem: there is no syncfs(2) here.
func syncFS(int) error {
	unix.Sync()
	return nil
}
