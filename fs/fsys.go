package fs

import (
	"errors"
	"log/slog"
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
)

// fsys is what every node of one mount shares.
type fsys struct {
	cat  *catalog.Catalog
	opts Options
	log  *slog.Logger
	// listTTL and annotationTTL are the catalog's, used as kernel timeouts.
	listTTL, annotationTTL time.Duration
	// daemonReads counts reads of cached blobs served by this process
	// rather than by the kernel through passthrough.
	daemonReads atomic.Int64
}

func newFsys(opts Options) *fsys {
	copts := opts.Catalog.Options()
	return &fsys{cat: opts.Catalog, opts: opts, log: opts.Logger, listTTL: copts.ListTTL, annotationTTL: copts.AnnotationTTL}
}

// fillAttr sets the attributes shared by all entries.
func (f *fsys) fillAttr(a *fuse.Attr, ino uint64, mode uint32, size int64, mtime time.Time) {
	a.Ino = ino
	a.Mode = mode
	a.Size = uint64(size)
	a.Blocks = (uint64(size) + 511) / 512
	a.Blksize = 4096
	a.Nlink = 1
	if mode&syscall.S_IFDIR != 0 {
		a.Nlink = 2
	}
	a.Uid, a.Gid = f.opts.UID, f.opts.GID
	if !mtime.IsZero() {
		a.SetTimes(&mtime, &mtime, &mtime)
	}
}

// errno maps err for a FUSE reply and logs what is not routine.
func (f *fsys) errno(err error, name string) syscall.Errno {
	e := toErrno(err)
	switch e {
	case 0, syscall.ENOENT, syscall.EEXIST, syscall.ENOTEMPTY, syscall.EINTR, syscall.EROFS, syscall.EXDEV:
	default:
		var apiErr *client.APIError
		attrs := []any{"name", name, "errno", e.Error(), "err", err}
		if errors.As(err, &apiErr) {
			attrs = append(attrs, "status", apiErr.Status, "attempts", apiErr.Attempts, "request_id", apiErr.RequestID)
		}
		f.log.Warn("request failed", attrs...)
	}
	return e
}

// writable reports whether the mount takes writes: not --read-only, and a
// catalog with a staging area.
func (f *fsys) writable() bool { return !f.opts.ReadOnly && f.cat.Writable() }

// refuse is the answer to a change the tree cannot take: EPERM on a
// writable mount, EROFS on a read-only one.
func (f *fsys) refuse() syscall.Errno {
	if f.writable() {
		return syscall.EPERM
	}
	return syscall.EROFS
}

// fileMode is the mode of a file the mount may change (annotation
// documents): writable by the owner on a writable mount, so that editors
// open it, else read-only.
func (f *fsys) fileMode() uint32 {
	if f.writable() {
		return 0o644
	}
	return 0o444
}

// wantsWrite reports whether open flags ask for writing.
func wantsWrite(flags uint32) bool {
	return flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0
}

func sortEntries(entries []fuse.DirEntry) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
}
