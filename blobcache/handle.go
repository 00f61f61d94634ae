package blobcache

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Handle is a pinned blob: it is never evicted while any Handle to it is
// open. Its file descriptor stays open until Release, so it can back
// ReadResultFd or FUSE passthrough. A Handle is safe for concurrent use.
type Handle struct {
	c        *Cache
	e        *entry
	f        *os.File
	released atomic.Bool
}

// File returns the blob's open read-only file. It is valid until Release;
// read it with ReadAt (pread) so that handles sharing it need no offset.
func (h *Handle) File() *os.File { return h.f }

// Size returns the blob's size in bytes.
func (h *Handle) Size() int64 { return h.e.size }

// Release closes the file and unpins the blob. It is idempotent.
func (h *Handle) Release() {
	if !h.released.CompareAndSwap(false, true) {
		return
	}
	h.f.Close()
	h.c.unpin(h.e)
}

// Clone returns another pinned handle to the same blob, with its own file
// descriptor (a dup of h's), so that the two can be released independently.
// It works even if the blob was removed or evicted from disk meanwhile.
func (h *Handle) Clone() (*Handle, error) {
	if h.released.Load() {
		return nil, errors.New("blobcache: clone of a released handle")
	}
	rc, err := h.f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("blobcache: clone: %w", err)
	}
	nfd := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		nfd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("blobcache: clone: %w", err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("blobcache: clone: %w", dupErr)
	}
	f := os.NewFile(uintptr(nfd), h.f.Name())
	h.c.mu.Lock()
	if h.e.pins == 0 {
		// h was released concurrently: the blob may be gone.
		h.c.mu.Unlock()
		f.Close()
		return nil, errors.New("blobcache: clone of a released handle")
	}
	h.c.pinLocked(h.e)
	h.c.mu.Unlock()
	return &Handle{c: h.c, e: h.e, f: f}, nil
}
