package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
)

// rootNode lists datasets; mkdir, rmdir and rename here manage them.
type rootNode struct {
	readOnlyDir
	fs *fsys
}

var (
	_ gofs.NodeLookuper  = (*rootNode)(nil)
	_ gofs.NodeReaddirer = (*rootNode)(nil)
	_ gofs.NodeGetattrer = (*rootNode)(nil)
	_ gofs.NodeMkdirer   = (*rootNode)(nil)
	_ gofs.NodeRmdirer   = (*rootNode)(nil)
	_ gofs.NodeRenamer   = (*rootNode)(nil)
)

func (r *rootNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.fs.fillAttr(&out.Attr, catalog.RootIno, syscall.S_IFDIR|0o755, 4096, r.fs.cat.CreatedAt())
	out.SetTimeout(r.fs.listTTL)
	return 0
}

func (r *rootNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	all, err := r.fs.cat.Datasets(ctx)
	if err != nil {
		return nil, r.fs.errno(err, "/")
	}
	entries := make([]fuse.DirEntry, len(all))
	for i, e := range all {
		entries[i] = fuse.DirEntry{Name: e.Name, Mode: syscall.S_IFDIR, Ino: catalog.DatasetIno(e.Dataset)}
	}
	return gofs.NewListDirStream(entries), 0
}

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ds, err := r.fs.cat.Dataset(ctx, name)
	if err != nil {
		return nil, r.fs.errno(err, name)
	}
	return r.datasetInode(ctx, ds, out), 0
}

func (r *rootNode) datasetInode(ctx context.Context, ds *catalog.Dataset, out *fuse.EntryOut) *gofs.Inode {
	n := &datasetNode{fs: r.fs, ds: ds}
	n.attr(&out.Attr)
	out.SetEntryTimeout(r.fs.listTTL)
	out.SetAttrTimeout(r.fs.listTTL)
	return r.NewInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: out.Attr.Ino})
}

func (r *rootNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ds, err := r.fs.cat.CreateDataset(ctx, name)
	if err != nil {
		return nil, r.fs.errno(err, name)
	}
	return r.datasetInode(ctx, ds, out), 0
}

func (r *rootNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return r.fs.errno(r.fs.cat.DeleteDataset(ctx, name), name)
}

func (r *rootNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if newParent.EmbeddedInode() != r.EmbeddedInode() {
		return syscall.EXDEV
	}
	return r.fs.errno(r.fs.cat.RenameDataset(ctx, name, newName), name)
}
