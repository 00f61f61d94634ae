//go:build linux

package blobcache

import (
	"io/fs"
	"syscall"
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
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	return st.Bavail * bs, st.Blocks * bs, nil
}

// accessTime returns fi's atime, or its mtime if unknown.
func accessTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Atim.Unix())
	}
	return fi.ModTime()
}

// syncFS flushes the filesystem holding the open directory fd.
func syncFS(fd int) error { return unix.Syncfs(fd) }
