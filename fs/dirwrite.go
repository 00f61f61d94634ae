package fs

import (
	"context"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
)

// Changes under images/ and annotations/: create, mkdir, unlink, rmdir and
// rename map to the catalog's writes (catalog/writes.go says what each
// does). Everything here answers EROFS on a mount that takes no writes.

var (
	_ gofs.NodeCreater   = (*dirNode)(nil)
	_ gofs.NodeMkdirer   = (*dirNode)(nil)
	_ gofs.NodeUnlinker  = (*dirNode)(nil)
	_ gofs.NodeRmdirer   = (*dirNode)(nil)
	_ gofs.NodeRenamer   = (*dirNode)(nil)
	_ gofs.NodeSetattrer = (*dirNode)(nil)
	_ gofs.NodeMknoder   = (*dirNode)(nil)
	_ gofs.NodeSymlinker = (*dirNode)(nil)
	_ gofs.NodeLinker    = (*dirNode)(nil)
)

func (n *dirNode) path(name string) catalog.Path {
	return catalog.Path{Annotations: n.annotations, Dir: n.key, Name: name}
}

// localInode returns the node of a local file listed in this folder.
func (n *dirNode) localInode(ctx context.Context, lf *catalog.LocalFile, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	node := &localNode{fs: n.fs, f: lf}
	if errno := n.fs.localAttr(ctx, lf, &out.Attr); errno != 0 {
		return nil, errno
	}
	out.SetEntryTimeout(localTTL)
	out.SetAttrTimeout(localTTL)
	return n.NewInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: out.Attr.Ino}), 0
}

// lookupLocal finds a local file listed as name; ok is false if none is.
func (n *dirNode) lookupLocal(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno, bool) {
	lf := n.fs.cat.LocalFileAt(n.ds, n.path(name))
	if lf == nil {
		return nil, 0, false
	}
	ino, errno := n.localInode(ctx, lf, out)
	return ino, errno, true
}

// withLocalEntries adds the local files of this folder to a listing. A
// file being uploaded shows once, as itself, until the listing has it.
func (n *dirNode) withLocalEntries(entries []fuse.DirEntry) []fuse.DirEntry {
	local := n.fs.cat.LocalFiles(n.ds, n.annotations, n.key)
	if len(local) == 0 {
		return entries
	}
	names := make(map[string]bool, len(local))
	for _, lf := range local {
		names[lf.Name()] = true
	}
	out := entries[:0]
	for _, e := range entries {
		if !names[e.Name] {
			out = append(out, e)
		}
	}
	for _, lf := range local {
		out = append(out, fuse.DirEntry{Name: lf.Name(), Mode: syscall.S_IFREG, Ino: lf.Attr().Ino})
	}
	return out
}

func (n *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if !n.fs.writable() {
		return nil, nil, 0, syscall.EROFS
	}
	lf, err := n.fs.cat.Create(ctx, n.ds, n.path(name), mode)
	if err != nil {
		return nil, nil, 0, n.fs.errno(err, n.path(name).String())
	}
	ino, errno := n.localInode(ctx, lf, out)
	if errno != 0 {
		n.fs.cat.Release(lf)
		return nil, nil, 0, errno
	}
	return ino, n.fs.newLocalHandle(lf, flags|syscall.O_WRONLY, ino), 0, 0
}

func (n *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if !n.fs.writable() {
		return nil, syscall.EROFS
	}
	d, err := n.fs.cat.MakeDir(ctx, n.ds, n.key, name)
	if err != nil {
		return nil, n.fs.errno(err, n.path(name).String())
	}
	child := &dirNode{fs: n.fs, ds: n.ds, annotations: n.annotations, key: d.Key()}
	child.attr(&out.Attr)
	out.SetEntryTimeout(n.fs.listTTL)
	out.SetAttrTimeout(n.fs.listTTL)
	n.invalidateMirror(name)
	return n.NewInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: out.Attr.Ino}), 0
}

func (n *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if !n.fs.writable() {
		return syscall.EROFS
	}
	if err := n.fs.cat.Remove(ctx, n.ds, n.path(name)); err != nil {
		return n.fs.errno(err, n.path(name).String())
	}
	if !n.annotations {
		n.invalidateMirror(name + ".json")
	}
	return 0
}

func (n *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if !n.fs.writable() {
		return syscall.EROFS
	}
	if err := n.fs.cat.RemoveDir(ctx, n.ds, n.key, name); err != nil {
		return n.fs.errno(err, n.path(name).String())
	}
	n.invalidateMirror(name)
	return 0
}

// Rename moves an entry within the dataset's images/ and annotations/; see
// catalog.Rename for what it does on the server. Other datasets are EXDEV
// (mv then copies, which uploads); the dataset's own entries are EPERM.
func (n *dirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if !n.fs.writable() {
		return syscall.EROFS
	}
	to, ok := newParent.(*dirNode)
	switch {
	case !ok:
		return syscall.EPERM
	case to.ds != n.ds:
		return syscall.EXDEV
	case flags&gofs.RENAME_EXCHANGE != 0:
		return syscall.EINVAL
	}
	from := n.path(name)
	res, err := n.fs.cat.Rename(ctx, n.ds, from, to.path(newName), flags&unixRenameNoReplace != 0)
	if err != nil {
		return n.fs.errno(err, from.String())
	}
	if res.Became != nil {
		if child := n.GetChild(name); child != nil {
			if an, ok := child.Operations().(*annotationNode); ok {
				an.became.Store(res.Became)
			}
		}
	}
	if !to.annotations {
		to.invalidateMirror(newName + ".json")
	}
	return 0
}

// unixRenameNoReplace is RENAME_NOREPLACE.
const unixRenameNoReplace = 1

// Setattr takes chmod and utimes on folders as no-ops (rsync and cp -p set
// them).
func (n *dirNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.fs.dirSetattr(in); errno != 0 {
		return errno
	}
	return n.Getattr(ctx, fh, out)
}

func (n *dirNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.fs.refuse()
}

func (n *dirNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.fs.refuse()
}

func (n *dirNode) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.fs.refuse()
}

// dirSetattr answers a setattr of a directory.
func (f *fsys) dirSetattr(in *fuse.SetAttrIn) syscall.Errno {
	if !f.writable() {
		return syscall.EROFS
	}
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	return f.checkOwner(in)
}

// invalidateMirror tells the kernel that the entry
// name of this folder's twin in the other tree (annotations/ for images/
// and the reverse) changed, as did the twin's listing: an upload adds a
// document, an archive takes one away, a new folder shows in both.
func (n *dirNode) invalidateMirror(name string) {
	dsInode := n.datasetInode()
	if dsInode == nil {
		return
	}
	top := imagesDirName
	if !n.annotations {
		top = annotationsDirName
	}
	dir := dsInode.GetChild(top)
	for _, seg := range strings.Split(n.key, "/") {
		if dir == nil || seg == "" {
			continue
		}
		dir = dir.GetChild(seg)
	}
	if dir == nil {
		return
	}
	notify(func() {
		dir.NotifyEntry(name)
		dir.NotifyContent(0, 0)
	})
}

// notifyWait bounds how long an operation waits for the kernel to take a
// notification before it answers.
const notifyWait = time.Second

// notify sends kernel notifications and waits for them, for at most
// notifyWait: a notification needs the folder's lock, which the kernel may
// hold for an operation waiting on this one (a rename between the two
// trees); it then lands once this operation has answered.
func notify(send func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		send()
	}()
	t := time.NewTimer(notifyWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// datasetInode is the inode of the dataset this folder belongs to, if the
// kernel still knows the path to it.
func (n *dirNode) datasetInode() *gofs.Inode {
	in := n.EmbeddedInode()
	for range 4096 {
		_, parent := in.Parent()
		if parent == nil {
			return nil
		}
		if _, ok := parent.Operations().(*datasetNode); ok {
			return parent
		}
		in = parent
	}
	return nil
}

// notifyGone tells the kernel, in the background, that the entry of a
// node is gone from its folder (a file the server refused for good).
func notifyGone(node *gofs.Inode) {
	if node == nil {
		return
	}
	name, parent := node.Parent()
	if parent == nil {
		return
	}
	go func() {
		parent.NotifyEntry(name)
		parent.NotifyContent(0, 0)
	}()
}

// notifyChanged tells the kernel, in the background, to drop what it
// caches of a node (a saved document's size and bytes).
func notifyChanged(node *gofs.Inode) {
	if node == nil {
		return
	}
	go node.NotifyContent(0, 0)
}

// The dataset's own entries (images/, annotations/, dataset.json) and the
// root's are fixed: EPERM on a writable mount.

var (
	_ gofs.NodeCreater   = (*datasetNode)(nil)
	_ gofs.NodeMkdirer   = (*datasetNode)(nil)
	_ gofs.NodeUnlinker  = (*datasetNode)(nil)
	_ gofs.NodeRmdirer   = (*datasetNode)(nil)
	_ gofs.NodeRenamer   = (*datasetNode)(nil)
	_ gofs.NodeSetattrer = (*datasetNode)(nil)
	_ gofs.NodeSetattrer = (*rootNode)(nil)
	_ gofs.NodeCreater   = (*rootNode)(nil)
	_ gofs.NodeUnlinker  = (*rootNode)(nil)
	_ gofs.NodeSetattrer = (*imageNode)(nil)
	_ gofs.NodeSetattrer = (*datasetJSONNode)(nil)
)

func (n *datasetNode) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, n.fs.refuse()
}

func (n *datasetNode) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.fs.refuse()
}

func (n *datasetNode) Unlink(context.Context, string) syscall.Errno { return n.fs.refuse() }
func (n *datasetNode) Rmdir(context.Context, string) syscall.Errno  { return n.fs.refuse() }

func (n *datasetNode) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return n.fs.refuse()
}

func (n *datasetNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.fs.dirSetattr(in); errno != 0 {
		return errno
	}
	return n.Getattr(ctx, fh, out)
}

func (r *rootNode) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, r.fs.refuse()
}

func (r *rootNode) Unlink(context.Context, string) syscall.Errno { return r.fs.refuse() }

func (r *rootNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := r.fs.dirSetattr(in); errno != 0 {
		return errno
	}
	return r.Getattr(ctx, fh, out)
}

// Setattr refuses changes to an image: its bytes and times are the
// server's.
func (n *imageNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return n.fs.refuse()
}

func (n *datasetJSONNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return n.fs.refuse()
}

func (n *datasetNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.fs.refuse()
}

func (n *datasetNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.fs.refuse()
}

func (n *datasetNode) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, n.fs.refuse()
}

func (r *rootNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.fs.refuse()
}

func (r *rootNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.fs.refuse()
}

func (r *rootNode) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.fs.refuse()
}
