package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
)

// dirNode is images/ or annotations/ of a dataset, or a subdirectory of
// either. It resolves its directory in the current listing on every call,
// so a relisting shows at once.
type dirNode struct {
	readOnlyDir
	fs          *fsys
	ds          *catalog.Dataset
	annotations bool
	key         string // catalog.Dir.Key(); "" for the top
}

var (
	_ gofs.NodeLookuper       = (*dirNode)(nil)
	_ gofs.NodeReaddirer      = (*dirNode)(nil)
	_ gofs.NodeGetattrer      = (*dirNode)(nil)
	_ gofs.NodeOpendirHandler = (*dirNode)(nil)
)

func (n *dirNode) attr(a *fuse.Attr) {
	n.fs.fillAttr(a, catalog.DirIno(n.ds, n.annotations, n.key), syscall.S_IFDIR|0o755, 4096, n.ds.ModTime())
}

func (n *dirNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.attr(&out.Attr)
	out.SetTimeout(n.fs.listTTL)
	return 0
}

func (n *dirNode) resolve(ctx context.Context) (*catalog.Dir, syscall.Errno) {
	d, err := n.fs.cat.Dir(ctx, n.ds, n.key)
	if err != nil {
		return nil, n.fs.errno(err, n.key)
	}
	return d, 0
}

// Readdir lists names only: it costs the listing's requests and no
// document. Listing a folder of images/ queues its images for readahead.
func (n *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	d, errno := n.resolve(ctx)
	if errno != 0 {
		return nil, errno
	}
	entries := make([]fuse.DirEntry, 0, len(d.Dirs())+len(d.Images()))
	for _, sub := range d.Dirs() {
		entries = append(entries, fuse.DirEntry{Name: sub.Name(), Mode: syscall.S_IFDIR, Ino: catalog.DirIno(n.ds, n.annotations, sub.Key())})
	}
	for _, im := range d.Images() {
		if n.annotations {
			if n.fs.cat.DocumentHidden(n.ds, im) {
				continue
			}
			entries = append(entries, fuse.DirEntry{Name: im.Name() + ".json", Mode: syscall.S_IFREG, Ino: catalog.AnnotationIno(n.ds, im)})
		} else {
			entries = append(entries, fuse.DirEntry{Name: im.Name(), Mode: syscall.S_IFREG, Ino: catalog.ImageIno(n.ds, im)})
		}
	}
	entries = n.withLocalEntries(entries)
	sortEntries(entries)
	if !n.annotations {
		n.fs.cat.ListedDir(n.ds, d)
	}
	return gofs.NewListDirStream(entries), 0
}

func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return n.lookup(ctx, name, out, false)
}

// lookup resolves name. During a READDIRPLUS (namesOnly) an annotation
// document whose size is not known without a request gets no attributes:
// the kernel then lists its name only and asks again, with a LOOKUP, when
// something needs its size.
func (n *dirNode) lookup(ctx context.Context, name string, out *fuse.EntryOut, namesOnly bool) (*gofs.Inode, syscall.Errno) {
	d, errno := n.resolve(ctx)
	if errno != 0 {
		return nil, errno
	}
	if node, errno, ok := n.lookupLocal(ctx, name, out); ok {
		return node, errno
	}
	if sub := d.FindDir(name); sub != nil {
		child := &dirNode{fs: n.fs, ds: n.ds, annotations: n.annotations, key: sub.Key()}
		child.attr(&out.Attr)
		out.SetEntryTimeout(n.fs.listTTL)
		out.SetAttrTimeout(n.fs.listTTL)
		return n.NewInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: out.Attr.Ino}), 0
	}
	if !n.annotations {
		im := d.FindImage(name)
		if im == nil {
			return nil, syscall.ENOENT
		}
		f := &imageNode{fs: n.fs, ds: n.ds, im: im}
		f.attr(&out.Attr)
		out.SetEntryTimeout(n.fs.opts.ImageTTL)
		out.SetAttrTimeout(n.fs.opts.ImageTTL)
		return n.NewInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: out.Attr.Ino}), 0
	}
	im := d.FindAnnotation(name)
	if im == nil || n.fs.cat.DocumentHidden(n.ds, im) {
		return nil, syscall.ENOENT
	}
	f := &annotationNode{fs: n.fs, ds: n.ds, dir: d, im: im}
	size, known := n.fs.cat.KnownAnnotationSize(n.ds, im)
	if namesOnly && !known {
		return nil, syscall.EAGAIN
	}
	if !namesOnly {
		n.fs.cat.StatAhead(n.ds, d, im)
	}
	if !known {
		var err error
		if size, err = n.fs.cat.AnnotationSize(ctx, n.ds, im); err != nil {
			return nil, n.fs.errno(err, name)
		}
	}
	f.attr(&out.Attr, size)
	out.SetEntryTimeout(n.fs.annotationTTL)
	out.SetAttrTimeout(n.fs.annotationTTL)
	return n.NewInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: out.Attr.Ino}), 0
}

// OpendirHandle lets the kernel keep this directory's listing across opens
// (FOPEN_CACHE_DIR): it changes only with the dataset, whose update time is
// the directory's mtime, and the kernel drops the cached listing when that
// changes.
func (n *dirNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &cachedDirHandle{node: n}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// cachedDirHandle reads a dirNode's listing once per open, and answers the
// lookups of READDIRPLUS.
type cachedDirHandle struct {
	node   *dirNode
	stream gofs.DirStream
}

var (
	_ gofs.FileReaddirenter = (*cachedDirHandle)(nil)
	_ gofs.FileReleasedirer = (*cachedDirHandle)(nil)
	_ gofs.FileSeekdirer    = (*cachedDirHandle)(nil)
	_ gofs.FileLookuper     = (*cachedDirHandle)(nil)
)

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

// Lookup answers READDIRPLUS for each listed entry without fetching any
// annotation document.
func (h *cachedDirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return h.node.lookup(ctx, name, out, true)
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
