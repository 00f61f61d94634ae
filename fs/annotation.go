package fs

import (
	"context"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
)

// annotationNode is an image's annotation document.
type annotationNode struct {
	readOnlyFile
	fs  *fsys
	ds  *catalog.Dataset
	dir *catalog.Dir
	im  *catalog.Image
	// became is set once the document was renamed away (an editor's
	// backup): the kernel keeps this node under the new name, where it
	// stands for the local copy (fs/annotation_write.go).
	became atomic.Pointer[catalog.LocalFile]
}

var (
	_ gofs.NodeGetattrer = (*annotationNode)(nil)
	_ gofs.NodeOpener    = (*annotationNode)(nil)
)

func (n *annotationNode) attr(a *fuse.Attr, size int64) {
	n.fs.fillAttr(a, catalog.AnnotationIno(n.ds, n.im), syscall.S_IFREG|n.fs.fileMode(), size, n.fs.cat.DocumentModTime(n.ds, n.im))
}

// Getattr reports the document's true size, fetching it if need be.
func (n *annotationNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno, ok := n.writeAttr(ctx, out); ok {
		return errno
	}
	n.fs.cat.StatAhead(n.ds, n.dir, n.im)
	size, err := n.fs.cat.AnnotationSize(ctx, n.ds, n.im)
	if err != nil {
		return n.fs.errno(err, n.im.Name()+".json")
	}
	n.attr(&out.Attr, size)
	out.SetTimeout(n.fs.annotationTTL)
	return 0
}

func (n *annotationNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if fh, fl, errno, ok := n.openLocal(ctx, flags); ok {
		return fh, fl, errno
	}
	doc, err := n.fs.cat.OpenAnnotation(ctx, n.ds, n.im)
	if err != nil {
		return nil, 0, n.fs.errno(err, n.im.Name()+".json")
	}
	if doc.Handle != nil {
		return n.fs.newBlobHandle(doc.Handle), readOpenFlags, 0
	}
	return &memHandle{data: doc.Data}, readOpenFlags, 0
}
