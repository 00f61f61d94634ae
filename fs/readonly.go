package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// readOnlyDir answers every write under a directory with EROFS. go-fuse
// treats an unimplemented Unlink or Rmdir as success, so each is explicit.
type readOnlyDir struct {
	gofs.Inode
}

var (
	_ gofs.NodeCreater   = (*readOnlyDir)(nil)
	_ gofs.NodeMkdirer   = (*readOnlyDir)(nil)
	_ gofs.NodeMknoder   = (*readOnlyDir)(nil)
	_ gofs.NodeUnlinker  = (*readOnlyDir)(nil)
	_ gofs.NodeRmdirer   = (*readOnlyDir)(nil)
	_ gofs.NodeRenamer   = (*readOnlyDir)(nil)
	_ gofs.NodeSymlinker = (*readOnlyDir)(nil)
	_ gofs.NodeLinker    = (*readOnlyDir)(nil)
	_ gofs.NodeSetattrer = (*readOnlyDir)(nil)
)

func (*readOnlyDir) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (*readOnlyDir) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (*readOnlyDir) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (*readOnlyDir) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (*readOnlyDir) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (*readOnlyDir) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (*readOnlyDir) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (*readOnlyDir) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (*readOnlyDir) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

// readOnlyFile refuses attribute changes (truncate, chmod, utimes).
type readOnlyFile struct {
	gofs.Inode
}

var _ gofs.NodeSetattrer = (*readOnlyFile)(nil)

func (*readOnlyFile) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

// readOpenFlags are the open flags of a file opened for reading: no FLUSH
// at close (kernel 5.17 and later; an older kernel's FLUSH is answered at
// once). Nodes do not implement Flush: go-fuse would call a node's Flush
// instead of the handle's, and a handle open for writing must send its
// file. Answering ENOSYS would stop FLUSH for the whole mount, writes
// included.
const readOpenFlags = fuse.FOPEN_NOFLUSH
