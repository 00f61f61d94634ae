package fs

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
)

// localTTL is the kernel's entry and attribute timeout of a local file: it
// changes as it is written, and becomes an image or a document when it is
// closed, and then a lookup should find that image's or document's node.
const localTTL = time.Second

// localNode is a file written through the mount (catalog.LocalFile): new
// images until they are uploaded, documents being replaced, scratch files.
// Once its file became an image or a saved document, the node stands for
// that image or document.
type localNode struct {
	gofs.Inode
	fs *fsys
	f  *catalog.LocalFile
}

var (
	_ gofs.NodeGetattrer = (*localNode)(nil)
	_ gofs.NodeSetattrer = (*localNode)(nil)
	_ gofs.NodeOpener    = (*localNode)(nil)
)

// localAttr fills the attributes of a local file, or of what it became.
func (f *fsys) localAttr(ctx context.Context, lf *catalog.LocalFile, a *fuse.Attr) syscall.Errno {
	la := lf.Attr()
	switch {
	case la.Uploaded != nil:
		im := la.Uploaded
		f.fillAttr(a, la.Ino, syscall.S_IFREG|0o444, im.Size(), im.ModTime())
	case la.SavedDocument != nil:
		ds := lf.Dataset()
		size, err := f.cat.AnnotationSize(ctx, ds, la.SavedDocument)
		if err != nil {
			return f.errno(err, lf.Name())
		}
		f.fillAttr(a, la.Ino, syscall.S_IFREG|f.fileMode(), size, f.cat.DocumentModTime(ds, la.SavedDocument))
	default:
		f.fillAttr(a, la.Ino, syscall.S_IFREG|la.Mode, la.Size, la.MTime)
	}
	return 0
}

func (n *localNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.SetTimeout(localTTL)
	return n.fs.localAttr(ctx, n.f, &out.Attr)
}

func (n *localNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.fs.setLocalAttr(n.f, in); errno != 0 {
		return errno
	}
	return n.Getattr(ctx, fh, out)
}

// setLocalAttr applies truncate, chmod and utimes to a local file; an
// uploaded image takes chmod and utimes as no-ops (rsync sets them) and
// nothing else.
func (f *fsys) setLocalAttr(lf *catalog.LocalFile, in *fuse.SetAttrIn) syscall.Errno {
	if errno := f.checkOwner(in); errno != 0 {
		return errno
	}
	la := lf.Attr()
	if sz, ok := in.GetSize(); ok {
		if la.Uploaded != nil || la.SavedDocument != nil {
			return syscall.EPERM
		}
		if err := lf.Truncate(int64(sz)); err != nil {
			return f.errno(err, lf.Name())
		}
	}
	if la.Uploaded != nil || la.SavedDocument != nil {
		return 0
	}
	if mode, ok := in.GetMode(); ok {
		lf.SetMode(mode)
	}
	if mtime, ok := in.GetMTime(); ok {
		lf.SetModTime(mtime)
	}
	return 0
}

// checkOwner accepts a chown only to the owner every entry has.
func (f *fsys) checkOwner(in *fuse.SetAttrIn) syscall.Errno {
	if uid, ok := in.GetUID(); ok && uid != f.opts.UID {
		return syscall.EPERM
	}
	if gid, ok := in.GetGID(); ok && gid != f.opts.GID {
		return syscall.EPERM
	}
	return 0
}

func (n *localNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return n.fs.openLocal(ctx, n.f, n.EmbeddedInode(), flags)
}

// openLocal opens a local file, or what it became.
func (f *fsys) openLocal(ctx context.Context, lf *catalog.LocalFile, node *gofs.Inode, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	la := lf.Attr()
	ds := lf.Dataset()
	switch {
	case la.Uploaded != nil:
		if wantsWrite(flags) {
			return nil, 0, f.overwriteImage(lf.Name())
		}
		h, err := f.cat.OpenImage(ctx, ds, la.Uploaded)
		if err != nil {
			return nil, 0, f.errno(err, lf.Name())
		}
		return f.newBlobHandle(h), fuse.FOPEN_KEEP_CACHE | readOpenFlags, 0
	case la.SavedDocument != nil:
		return f.openDocument(ctx, ds, la.SavedDocument, lf.Path(), node, flags)
	}
	if err := f.cat.Open(lf, flags&syscall.O_TRUNC != 0); err != nil {
		return nil, 0, f.errno(err, lf.Name())
	}
	return f.newLocalHandle(lf, flags, node), f.localOpenFlags(flags), 0
}

// localOpenFlags are the open flags of a local file: a reader needs no
// FLUSH; the kernel must not keep pages of a file that changes.
func (f *fsys) localOpenFlags(flags uint32) uint32 {
	if wantsWrite(flags) {
		return 0
	}
	return readOpenFlags
}

// overwriteImage answers an open for writing of an existing image.
func (f *fsys) overwriteImage(name string) syscall.Errno {
	if !f.writable() {
		return syscall.EROFS
	}
	f.log.Warn("images are never overwritten: write a new name", "name", name)
	return syscall.EEXIST
}

// localHandle is an open local file. A handle opened for writing sends the
// file at close (FLUSH) and fsync, and reports the result; a reader's close
// costs nothing.
type localHandle struct {
	fs     *fsys
	f      *catalog.LocalFile
	writer bool
	// node is the inode the file was opened through, for the kernel
	// notifications that follow a send.
	node *gofs.Inode

	releaseOnce sync.Once
}

var (
	_ gofs.FileReader   = (*localHandle)(nil)
	_ gofs.FileWriter   = (*localHandle)(nil)
	_ gofs.FileFlusher  = (*localHandle)(nil)
	_ gofs.FileFsyncer  = (*localHandle)(nil)
	_ gofs.FileReleaser = (*localHandle)(nil)
)

func (f *fsys) newLocalHandle(lf *catalog.LocalFile, flags uint32, node *gofs.Inode) *localHandle {
	return &localHandle{fs: f, f: lf, writer: wantsWrite(flags), node: node}
}

func (h *localHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.f.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.fs.errno(err, h.f.Name())
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *localHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := h.f.WriteAt(data, off)
	if err != nil {
		return uint32(n), h.fs.errno(err, h.f.Name())
	}
	return uint32(n), 0
}

// Flush sends the file (upload or save) when it changed, and returns the
// result of the last send: what close(2) reports.
func (h *localHandle) Flush(ctx context.Context) syscall.Errno {
	if !h.writer {
		return 0
	}
	before := h.f.Attr().Uploaded
	err := h.fs.cat.Commit(ctx, h.f)
	if after := h.f.Attr().Uploaded; after != nil && before == nil && h.node != nil {
		// The new image has a document under annotations/.
		if _, parent := h.node.Parent(); parent != nil {
			if d, ok := parent.Operations().(*dirNode); ok {
				d.invalidateMirror(after.Name() + ".json")
			}
		}
	}
	return h.fs.errno(err, h.f.Name())
}

func (h *localHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.Flush(ctx)
}

func (h *localHandle) Release(ctx context.Context) syscall.Errno {
	h.releaseOnce.Do(func() {
		h.fs.cat.Release(h.f)
		if !h.writer || h.node == nil {
			return
		}
		la := h.f.Attr()
		switch {
		case la.Kind == catalog.LocalDocument:
			notifyChanged(h.node)
		case la.Open == 0 && la.Uploaded == nil && h.fs.cat.LocalFileAt(h.f.Dataset(), h.f.Path()) != h.f:
			if _, ok := h.node.Operations().(*localNode); ok {
				notifyGone(h.node)
			}
		}
	})
	return 0
}
