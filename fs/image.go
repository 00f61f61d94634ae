package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
)

// imageNode is an image file: immutable bytes, served from the cache.
type imageNode struct {
	readOnlyFile
	fs *fsys
	ds *catalog.Dataset
	im *catalog.Image
}

var (
	_ gofs.NodeGetattrer = (*imageNode)(nil)
	_ gofs.NodeOpener    = (*imageNode)(nil)
)

func (n *imageNode) attr(a *fuse.Attr) {
	n.fs.fillAttr(a, catalog.ImageIno(n.ds, n.im), syscall.S_IFREG|0o444, n.im.Size(), n.im.ModTime())
}

func (n *imageNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	out.SetTimeout(n.fs.opts.ImageTTL)
	return 0
}

func (n *imageNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if wantsWrite(flags) {
		return nil, 0, n.fs.overwriteImage(n.im.Name())
	}
	h, err := n.fs.cat.OpenImage(ctx, n.ds, n.im)
	if err != nil {
		return nil, 0, n.fs.errno(err, n.im.Name())
	}
	return n.fs.newBlobHandle(h), fuse.FOPEN_KEEP_CACHE | readOpenFlags, 0
}
