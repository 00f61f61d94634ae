package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
)

// Entry names inside a dataset.
const (
	imagesDirName      = "images"
	annotationsDirName = "annotations"
	datasetJSONName    = "dataset.json"
)

// datasetNode is one dataset: images/, annotations/ and dataset.json.
type datasetNode struct {
	readOnlyDir
	fs *fsys
	ds *catalog.Dataset
}

var (
	_ gofs.NodeLookuper  = (*datasetNode)(nil)
	_ gofs.NodeReaddirer = (*datasetNode)(nil)
	_ gofs.NodeGetattrer = (*datasetNode)(nil)
)

func (n *datasetNode) attr(a *fuse.Attr) {
	n.fs.fillAttr(a, catalog.DatasetIno(n.ds), syscall.S_IFDIR|0o755, 4096, n.ds.ModTime())
}

func (n *datasetNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	out.SetTimeout(n.fs.listTTL)
	return 0
}

func (n *datasetNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	return gofs.NewListDirStream([]fuse.DirEntry{
		{Name: annotationsDirName, Mode: syscall.S_IFDIR, Ino: catalog.DirIno(n.ds, true, "")},
		{Name: datasetJSONName, Mode: syscall.S_IFREG, Ino: catalog.DatasetJSONIno(n.ds)},
		{Name: imagesDirName, Mode: syscall.S_IFDIR, Ino: catalog.DirIno(n.ds, false, "")},
	}), 0
}

func (n *datasetNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	var child gofs.InodeEmbedder
	mode := uint32(syscall.S_IFDIR)
	switch name {
	case imagesDirName, annotationsDirName:
		d := &dirNode{fs: n.fs, ds: n.ds, annotations: name == annotationsDirName}
		d.attr(&out.Attr)
		child = d
	case datasetJSONName:
		f := &datasetJSONNode{fs: n.fs, ds: n.ds}
		f.attr(&out.Attr)
		child, mode = f, syscall.S_IFREG
	default:
		return nil, syscall.ENOENT
	}
	out.SetEntryTimeout(n.fs.listTTL)
	out.SetAttrTimeout(n.fs.listTTL)
	return n.NewInode(ctx, child, gofs.StableAttr{Mode: mode, Ino: out.Attr.Ino}), 0
}

// datasetJSONNode is dataset.json: the Dataset object.
type datasetJSONNode struct {
	readOnlyFile
	fs *fsys
	ds *catalog.Dataset
}

var (
	_ gofs.NodeGetattrer = (*datasetJSONNode)(nil)
	_ gofs.NodeOpener    = (*datasetJSONNode)(nil)
)

func (n *datasetJSONNode) attr(a *fuse.Attr) {
	n.fs.fillAttr(a, catalog.DatasetJSONIno(n.ds), syscall.S_IFREG|0o444, int64(len(n.ds.JSON())), n.ds.ModTime())
}

func (n *datasetJSONNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	out.SetTimeout(n.fs.listTTL)
	return 0
}

func (n *datasetJSONNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if wantsWrite(flags) {
		return nil, 0, n.fs.refuse()
	}
	return &memHandle{data: n.ds.JSON()}, readOpenFlags, 0
}
