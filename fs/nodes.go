package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/blobcache"
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

var (
	_ gofs.NodeSetattrer = (*readOnlyFile)(nil)
	_ gofs.NodeFlusher   = (*readOnlyFile)(nil)
)

// Flush answers ENOSYS, which tells the kernel to stop sending FLUSH on
// every close for the whole mount: a read-only file has nothing to flush.
func (*readOnlyFile) Flush(context.Context, gofs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

func (*readOnlyFile) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

// wantsWrite reports whether open flags ask for writing.
func wantsWrite(flags uint32) bool {
	return flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0
}

func setTimes(a *fuse.Attr, t time.Time) {
	if t.IsZero() {
		return
	}
	a.SetTimes(&t, &t, &t)
}

// fillAttr sets the attributes shared by all entries.
func (c *core) fillAttr(a *fuse.Attr, ino uint64, mode uint32, size int64, mtime time.Time) {
	a.Ino = ino
	a.Mode = mode
	a.Size = uint64(size)
	a.Blocks = (uint64(size) + 511) / 512
	a.Blksize = 4096
	a.Nlink = 1
	if mode&syscall.S_IFDIR != 0 {
		a.Nlink = 2
	}
	a.Uid, a.Gid = c.opts.UID, c.opts.GID
	setTimes(a, mtime)
}

// rootNode lists datasets; mkdir, rmdir and rename here manage them.
type rootNode struct {
	readOnlyDir
	c *core
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
	r.c.fillAttr(&out.Attr, 1, syscall.S_IFDIR|0o755, 4096, r.c.mountedAt)
	out.SetTimeout(r.c.opts.ListTTL)
	return 0
}

func (r *rootNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	all, err := r.c.listDatasets(ctx)
	if err != nil {
		return nil, r.c.errno(err, "/")
	}
	r.c.rootMu.Lock()
	entries := make([]fuse.DirEntry, 0, len(all))
	for name, ds := range all {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: inodeOf("dataset", ds.id)})
	}
	r.c.rootMu.Unlock()
	sortEntries(entries)
	return gofs.NewListDirStream(entries), 0
}

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ds, err := r.c.lookupDataset(ctx, name)
	if err != nil {
		return nil, r.c.errno(err, name)
	}
	return r.datasetInode(ctx, ds, out), 0
}

func (r *rootNode) datasetInode(ctx context.Context, ds *dataset, out *fuse.EntryOut) *gofs.Inode {
	n := &datasetNode{c: r.c, ds: ds}
	n.attr(&out.Attr)
	out.SetEntryTimeout(r.c.opts.ListTTL)
	out.SetAttrTimeout(r.c.opts.ListTTL)
	return r.NewInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: out.Attr.Ino})
}

func (r *rootNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if ds, _ := r.c.lookupDataset(ctx, name); ds != nil {
		return nil, syscall.EEXIST
	}
	ds, err := r.c.createDataset(ctx, name)
	if err != nil {
		return nil, r.c.errno(err, name)
	}
	return r.datasetInode(ctx, ds, out), 0
}

func (r *rootNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return r.c.errno(r.c.deleteDataset(ctx, name), name)
}

func (r *rootNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if newParent.EmbeddedInode() != r.EmbeddedInode() {
		return syscall.EXDEV
	}
	return r.c.errno(r.c.renameDatasetRemote(ctx, name, newName), name)
}

// datasetNode is one dataset: images/, annotations/ and dataset.json.
type datasetNode struct {
	readOnlyDir
	c  *core
	ds *dataset
}

var (
	_ gofs.NodeLookuper  = (*datasetNode)(nil)
	_ gofs.NodeReaddirer = (*datasetNode)(nil)
	_ gofs.NodeGetattrer = (*datasetNode)(nil)
)

const (
	imagesDirName      = "images"
	annotationsDirName = "annotations"
	datasetJSONName    = "dataset.json"
)

func (n *datasetNode) attr(a *fuse.Attr) {
	meta := n.ds.metadata()
	n.c.fillAttr(a, inodeOf("dataset", n.ds.id), syscall.S_IFDIR|0o755, 4096, datasetTime(meta.UpdatedAt, meta.CreatedAt))
}

func datasetTime(updated, created time.Time) time.Time {
	if !updated.IsZero() {
		return updated
	}
	return created
}

func (n *datasetNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	out.SetTimeout(n.c.opts.ListTTL)
	return 0
}

func (n *datasetNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	return gofs.NewListDirStream([]fuse.DirEntry{
		{Name: annotationsDirName, Mode: syscall.S_IFDIR, Ino: inodeOf("annotations", n.ds.id, "")},
		{Name: datasetJSONName, Mode: syscall.S_IFREG, Ino: inodeOf("dataset.json", n.ds.id)},
		{Name: imagesDirName, Mode: syscall.S_IFDIR, Ino: inodeOf("images", n.ds.id, "")},
	}), 0
}

func (n *datasetNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	switch name {
	case imagesDirName, annotationsDirName:
		d := &dirNode{c: n.c, ds: n.ds, annotations: name == annotationsDirName}
		d.attr(&out.Attr)
		out.SetEntryTimeout(n.c.opts.ListTTL)
		out.SetAttrTimeout(n.c.opts.ListTTL)
		return n.NewInode(ctx, d, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: out.Attr.Ino}), 0
	case datasetJSONName:
		f := &datasetJSONNode{c: n.c, ds: n.ds}
		f.attr(&out.Attr)
		out.SetEntryTimeout(n.c.opts.ListTTL)
		out.SetAttrTimeout(n.c.opts.ListTTL)
		return n.NewInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: out.Attr.Ino}), 0
	}
	return nil, syscall.ENOENT
}

// dirNode is images/ or annotations/ of a dataset, or a subdirectory of
// either. It resolves its directory in the current snapshot on every call,
// so a relisting shows at once.
type dirNode struct {
	readOnlyDir
	c           *core
	ds          *dataset
	annotations bool
	key         string // dir.key in the snapshot; "" for the top
}

var (
	_ gofs.NodeLookuper       = (*dirNode)(nil)
	_ gofs.NodeReaddirer      = (*dirNode)(nil)
	_ gofs.NodeGetattrer      = (*dirNode)(nil)
	_ gofs.NodeOpendirHandler = (*dirNode)(nil)
	_ gofs.FileReaddirenter   = (*cachedDirHandle)(nil)
	_ gofs.FileReleasedirer   = (*cachedDirHandle)(nil)
)

// OpendirHandle lets the kernel keep this directory's listing across opens
// (FOPEN_CACHE_DIR): it changes only with the dataset, whose update time is
// the directory's mtime, and the kernel drops the cached listing when that
// changes.
func (n *dirNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &cachedDirHandle{node: n}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// cachedDirHandle reads a dirNode's listing once per open.
type cachedDirHandle struct {
	node   *dirNode
	stream gofs.DirStream
}

func (h *cachedDirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if h.stream == nil {
		s, errno := h.node.Readdir(ctx)
		if errno != 0 {
			return nil, errno
		}
		h.stream = s
	}
	if !h.stream.HasNext() {
		return nil, 0
	}
	e, errno := h.stream.Next()
	return &e, errno
}

// Seekdir restarts or repositions the listing (rewinddir, or a READDIR
// that resumes at an offset the stream did not reach in order).
func (h *cachedDirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if h.stream == nil || off == 0 {
		s, errno := h.node.Readdir(ctx)
		if errno != 0 {
			return errno
		}
		h.stream = s
	}
	if off == 0 {
		return 0
	}
	if sd, ok := h.stream.(gofs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (h *cachedDirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	if h.stream != nil {
		h.stream.Close()
	}
}

func (n *dirNode) kind() string {
	if n.annotations {
		return "annotations"
	}
	return "images"
}

func (n *dirNode) attr(a *fuse.Attr) {
	meta := n.ds.metadata()
	n.c.fillAttr(a, inodeOf(n.kind(), n.ds.id, n.key), syscall.S_IFDIR|0o755, 4096, datasetTime(meta.UpdatedAt, meta.CreatedAt))
}

func (n *dirNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	out.SetTimeout(n.c.opts.ListTTL)
	return 0
}

func (n *dirNode) resolve(ctx context.Context) (*dir, syscall.Errno) {
	snap, err := n.c.snapshot(ctx, n.ds)
	if err != nil {
		return nil, n.c.errno(err, n.key)
	}
	d := snap.dirs[n.key]
	if d == nil {
		return nil, syscall.ENOENT
	}
	return d, 0
}

func (n *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	d, errno := n.resolve(ctx)
	if errno != 0 {
		return nil, errno
	}
	entries := make([]fuse.DirEntry, 0, len(d.dirs)+len(d.images))
	for _, sub := range d.dirs {
		entries = append(entries, fuse.DirEntry{Name: sub.name, Mode: syscall.S_IFDIR, Ino: inodeOf(n.kind(), n.ds.id, sub.key)})
	}
	for _, im := range d.images {
		if n.annotations {
			entries = append(entries, fuse.DirEntry{Name: im.name + ".json", Mode: syscall.S_IFREG, Ino: inodeOf("annotation", n.ds.id, im.id)})
		} else {
			entries = append(entries, fuse.DirEntry{Name: im.name, Mode: syscall.S_IFREG, Ino: n.c.imageIno(n.ds, im)})
		}
	}
	sortEntries(entries)
	n.c.prefetchDir(n.ds, d, n.annotations)
	return gofs.NewListDirStream(entries), 0
}

func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d, errno := n.resolve(ctx)
	if errno != 0 {
		return nil, errno
	}
	if sub := d.findDir(name); sub != nil {
		child := &dirNode{c: n.c, ds: n.ds, annotations: n.annotations, key: sub.key}
		child.attr(&out.Attr)
		out.SetEntryTimeout(n.c.opts.ListTTL)
		out.SetAttrTimeout(n.c.opts.ListTTL)
		return n.NewInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: out.Attr.Ino}), 0
	}
	if !n.annotations {
		im := d.findImage(name)
		if im == nil {
			return nil, syscall.ENOENT
		}
		f := &imageNode{c: n.c, ds: n.ds, im: im}
		f.attr(&out.Attr)
		out.SetEntryTimeout(n.c.opts.ImageTTL)
		out.SetAttrTimeout(n.c.opts.ImageTTL)
		return n.NewInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: out.Attr.Ino}), 0
	}
	im := d.findAnnotation(name)
	if im == nil {
		return nil, syscall.ENOENT
	}
	f := &annotationNode{c: n.c, ds: n.ds, im: im}
	if errno := f.ensureSize(ctx); errno != 0 {
		return nil, errno
	}
	f.attr(&out.Attr)
	out.SetEntryTimeout(n.c.opts.AnnotationTTL)
	out.SetAttrTimeout(n.c.opts.AnnotationTTL)
	return n.NewInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: out.Attr.Ino}), 0
}

func (c *core) imageIno(ds *dataset, im *image) uint64 {
	return inodeOf("image", ds.id, im.id, itoa64(im.size), itoa64(im.createdAt))
}

// imageNode is an image file: immutable bytes, served from the cache.
type imageNode struct {
	readOnlyFile
	c  *core
	ds *dataset
	im *image
}

var (
	_ gofs.NodeGetattrer = (*imageNode)(nil)
	_ gofs.NodeOpener    = (*imageNode)(nil)
)

func (n *imageNode) attr(a *fuse.Attr) {
	n.c.fillAttr(a, n.c.imageIno(n.ds, n.im), syscall.S_IFREG|0o444, n.im.size, time.Unix(0, n.im.createdAt))
}

func (n *imageNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	out.SetTimeout(n.c.opts.ImageTTL)
	return 0
}

func (n *imageNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if wantsWrite(flags) {
		return nil, 0, syscall.EROFS
	}
	ctx, cancel := context.WithTimeout(ctx, n.c.opts.OpenTimeout)
	defer cancel()
	h, err := n.c.opts.Prefetcher.Get(ctx, n.c.imageRequest(n.ds, n.im))
	if err != nil {
		return nil, 0, n.c.errno(err, n.im.name)
	}
	return n.c.newBlobHandle(h), fuse.FOPEN_KEEP_CACHE, 0
}

// annotationNode is an image's annotation document.
type annotationNode struct {
	readOnlyFile
	c  *core
	ds *dataset
	im *image
}

var (
	_ gofs.NodeGetattrer = (*annotationNode)(nil)
	_ gofs.NodeOpener    = (*annotationNode)(nil)
)

func (n *annotationNode) attr(a *fuse.Attr) {
	n.c.fillAttr(a, inodeOf("annotation", n.ds.id, n.im.id), syscall.S_IFREG|0o444, n.im.annSize.Load(), time.Unix(0, n.im.createdAt))
}

// ensureSize fetches the document once if its size is not known yet, so
// stat never reports a false size.
func (n *annotationNode) ensureSize(ctx context.Context) syscall.Errno {
	if n.im.annSize.Load() > 0 {
		return 0
	}
	h, errno := n.fetch(ctx)
	if errno != 0 {
		return errno
	}
	h.Release()
	return 0
}

func (n *annotationNode) fetch(ctx context.Context) (*blobcache.Handle, syscall.Errno) {
	ctx, cancel := context.WithTimeout(ctx, n.c.opts.OpenTimeout)
	defer cancel()
	h, err := n.c.opts.Prefetcher.Get(ctx, n.c.annotationRequest(n.ds, n.im))
	if err != nil {
		return nil, n.c.errno(err, n.im.name+".json")
	}
	n.im.annSize.Store(h.Size())
	return h, 0
}

func (n *annotationNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.ensureSize(ctx); errno != 0 {
		return errno
	}
	n.attr(&out.Attr)
	out.SetTimeout(n.c.opts.AnnotationTTL)
	return 0
}

func (n *annotationNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if wantsWrite(flags) {
		return nil, 0, syscall.EROFS
	}
	if n.im.annCount == 0 {
		return &memHandle{data: emptyAnnotationDoc(n.im.filename)}, 0, 0
	}
	h, errno := n.fetch(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	return n.c.newBlobHandle(h), 0, 0
}

// datasetJSONNode is dataset.json: the Dataset object.
type datasetJSONNode struct {
	readOnlyFile
	c  *core
	ds *dataset
}

var (
	_ gofs.NodeGetattrer = (*datasetJSONNode)(nil)
	_ gofs.NodeOpener    = (*datasetJSONNode)(nil)
)

func (n *datasetJSONNode) attr(a *fuse.Attr) {
	meta := n.ds.metadata()
	n.c.fillAttr(a, inodeOf("dataset.json", n.ds.id), syscall.S_IFREG|0o444, int64(len(datasetJSON(meta))), datasetTime(meta.UpdatedAt, meta.CreatedAt))
}

func (n *datasetJSONNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	out.SetTimeout(n.c.opts.ListTTL)
	return 0
}

func (n *datasetJSONNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if wantsWrite(flags) {
		return nil, 0, syscall.EROFS
	}
	return &memHandle{data: datasetJSON(n.ds.metadata())}, 0, 0
}
