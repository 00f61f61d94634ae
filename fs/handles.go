package fs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/blobcache"
)

// blobHandle serves an open file from a pinned cache blob. The kernel reads
// the cache file after Read returns (ReadResultFd), so the file stays open
// and pinned until Release.
type blobHandle struct {
	h           *blobcache.Handle
	reads       *atomic.Int64 // the mount's count of reads served by this process
	releaseOnce sync.Once
}

var (
	_ gofs.FileReader   = (*blobHandle)(nil)
	_ gofs.FileReleaser = (*blobHandle)(nil)
)

func (f *blobHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.reads.Add(1)
	size := f.h.Size()
	if off >= size {
		return fuse.ReadResultData(nil), 0
	}
	n := int64(len(dest))
	if off+n > size {
		n = size - off
	}
	return fuse.ReadResultFd(f.h.File().Fd(), off, int(n)), 0
}

func (f *blobHandle) Release(ctx context.Context) syscall.Errno {
	f.releaseOnce.Do(f.h.Release)
	return 0
}

// passthroughHandle is a blobHandle whose reads the kernel serves straight
// from the cache file (FUSE passthrough), bypassing this process.
type passthroughHandle struct {
	blobHandle
}

var _ gofs.FilePassthroughFder = (*passthroughHandle)(nil)

func (f *passthroughHandle) PassthroughFd() (int, bool) {
	return int(f.h.File().Fd()), true
}

func (f *fsys) newBlobHandle(h *blobcache.Handle) gofs.FileHandle {
	if f.opts.DisablePassthrough {
		return &blobHandle{h: h, reads: &f.daemonReads}
	}
	return &passthroughHandle{blobHandle{h: h, reads: &f.daemonReads}}
}

// memHandle serves a small generated document.
type memHandle struct {
	data []byte
}

var _ gofs.FileReader = (*memHandle)(nil)

func (f *memHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(f.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := off + int64(len(dest))
	if end > int64(len(f.data)) {
		end = int64(len(f.data))
	}
	return fuse.ReadResultData(f.data[off:end]), 0
}
