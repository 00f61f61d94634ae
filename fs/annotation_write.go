package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
)

// Writing annotation documents. Opening a document for writing starts (or
// joins) its write session, a local file that holds what is written and is
// validated and saved when closed; while the session is open, the document
// reads as what was written. A document renamed away (an editor's backup)
// leaves its node standing for the local copy under the new name.

var _ gofs.NodeSetattrer = (*annotationNode)(nil)

func (n *annotationNode) path() catalog.Path {
	return catalog.Path{Annotations: true, Dir: n.dir.Key(), Name: n.im.Name() + ".json"}
}

// writeAttr fills the attributes of the local file the node became, or of
// the document while a write session holds it; ok is false when neither
// applies.
func (n *annotationNode) writeAttr(ctx context.Context, out *fuse.AttrOut) (errno syscall.Errno, ok bool) {
	if lf := n.became.Load(); lf != nil {
		out.SetTimeout(localTTL)
		return n.fs.localAttr(ctx, lf, &out.Attr), true
	}
	if s := n.fs.cat.DocumentSession(n.ds, n.im); s != nil {
		la := s.Attr()
		n.fs.fillAttr(&out.Attr, catalog.AnnotationIno(n.ds, n.im), syscall.S_IFREG|n.fs.fileMode(), la.Size, la.MTime)
		out.SetTimeout(localTTL)
		return 0, true
	}
	return 0, false
}

// openLocal opens the local file the node became, the document for
// writing, or the document's open write session for reading; ok is false
// for a plain read of the document.
func (n *annotationNode) openLocal(ctx context.Context, flags uint32) (fh gofs.FileHandle, fuseFlags uint32, errno syscall.Errno, ok bool) {
	if lf := n.became.Load(); lf != nil {
		fh, fuseFlags, errno = n.fs.openLocal(ctx, lf, n.EmbeddedInode(), flags)
		return fh, fuseFlags, errno, true
	}
	if wantsWrite(flags) || n.fs.cat.DocumentSession(n.ds, n.im) != nil {
		fh, fuseFlags, errno = n.fs.openDocument(ctx, n.ds, n.im, n.path(), n.EmbeddedInode(), flags)
		return fh, fuseFlags, errno, true
	}
	return nil, 0, 0, false
}

// openDocument opens im's document at p through its write session: for
// writing, or for reading while a session is open.
func (f *fsys) openDocument(ctx context.Context, ds *catalog.Dataset, im *catalog.Image, p catalog.Path, node *gofs.Inode, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if !wantsWrite(flags) {
		if s := f.cat.DocumentSession(ds, im); s != nil {
			if err := f.cat.Open(s, false); err == nil {
				return f.newLocalHandle(s, flags, node), readOpenFlags, 0
			}
		}
		doc, err := f.cat.OpenAnnotation(ctx, ds, im)
		if err != nil {
			return nil, 0, f.errno(err, p.Name)
		}
		if doc.Handle != nil {
			return f.newBlobHandle(doc.Handle), readOpenFlags, 0
		}
		return &memHandle{data: doc.Data}, readOpenFlags, 0
	}
	if !f.writable() {
		return nil, 0, syscall.EROFS
	}
	lf, err := f.cat.OpenDocument(ctx, ds, p, im, flags&syscall.O_TRUNC != 0)
	if err != nil {
		return nil, 0, f.errno(err, p.String())
	}
	return f.newLocalHandle(lf, flags, node), 0, 0
}

// Setattr takes truncation of an open document, and chmod and utimes as
// no-ops (editors set them after a save).
func (n *annotationNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if lf := n.became.Load(); lf != nil {
		if errno := n.fs.setLocalAttr(lf, in); errno != 0 {
			return errno
		}
		return n.Getattr(ctx, fh, out)
	}
	if !n.fs.writable() {
		return syscall.EROFS
	}
	if errno := n.fs.checkOwner(in); errno != 0 {
		return errno
	}
	if sz, ok := in.GetSize(); ok {
		var s *catalog.LocalFile
		if h, isLocal := fh.(*localHandle); isLocal {
			s = h.f
		} else {
			s = n.fs.cat.DocumentSession(n.ds, n.im)
		}
		if s == nil {
			n.fs.log.Warn("truncating a document that is not open for writing would save it as it is cut: refused", "path", n.path().String())
			return syscall.EINVAL
		}
		if err := s.Truncate(int64(sz)); err != nil {
			return n.fs.errno(err, n.path().String())
		}
	}
	return n.Getattr(ctx, fh, out)
}
