package fs

import (
	"context"
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
}

var (
	_ gofs.NodeGetattrer = (*annotationNode)(nil)
	_ gofs.NodeOpener    = (*annotationNode)(nil)
)

func (n *annotationNode) attr(a *fuse.Attr, size int64) {
	n.fs.fillAttr(a, catalog.AnnotationIno(n.ds, n.im), syscall.S_IFREG|0o444, size, n.im.ModTime())
}

// Getattr reports the document's true size, fetching it if need be.
func (n *annotationNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
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
	if wantsWrite(flags) {
		return nil, 0, syscall.EROFS
	}
	doc, err := n.fs.cat.OpenAnnotation(ctx, n.ds, n.im)
	if err != nil {
		return nil, 0, n.fs.errno(err, n.im.Name()+".json")
	}
	if doc.Handle != nil {
		return n.fs.newBlobHandle(doc.Handle), 0, 0
	}
	return &memHandle{data: doc.Data}, 0, 0
}
