package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// observedFS times the FUSE operations of the raw filesystem it wraps and
// reports each one to Options.ObserveOp: the operation's name, how long its
// handler took, and the errno it answered (0 for success). Operations it
// does not override (Forget, Init, locks, ioctl) pass straight through.
// A Read served by ReadResultFd is timed up to the handler's return; the
// kernel copies the bytes afterwards.
type observedFS struct {
	fuse.RawFileSystem
	observe func(op string, d time.Duration, errno syscall.Errno)
}

func (o *observedFS) done(op string, start time.Time, st fuse.Status) fuse.Status {
	o.observe(op, time.Since(start), syscall.Errno(st))
	return st
}

func (o *observedFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("lookup", time.Now(), o.RawFileSystem.Lookup(cancel, h, name, out))
}

func (o *observedFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	return o.done("getattr", time.Now(), o.RawFileSystem.GetAttr(cancel, in, out))
}

func (o *observedFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return o.done("setattr", time.Now(), o.RawFileSystem.SetAttr(cancel, in, out))
}

func (o *observedFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("mkdir", time.Now(), o.RawFileSystem.Mkdir(cancel, in, name, out))
}

func (o *observedFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("mknod", time.Now(), o.RawFileSystem.Mknod(cancel, in, name, out))
}

func (o *observedFS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return o.done("unlink", time.Now(), o.RawFileSystem.Unlink(cancel, h, name))
}

func (o *observedFS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return o.done("rmdir", time.Now(), o.RawFileSystem.Rmdir(cancel, h, name))
}

func (o *observedFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return o.done("rename", time.Now(), o.RawFileSystem.Rename(cancel, in, oldName, newName))
}

func (o *observedFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return o.done("create", time.Now(), o.RawFileSystem.Create(cancel, in, name, out))
}

func (o *observedFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return o.done("open", time.Now(), o.RawFileSystem.Open(cancel, in, out))
}

func (o *observedFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	start := time.Now()
	res, st := o.RawFileSystem.Read(cancel, in, buf)
	return res, o.done("read", start, st)
}

func (o *observedFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.Write(cancel, in, data)
	return n, o.done("write", start, st)
}

func (o *observedFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	start := time.Now()
	o.RawFileSystem.Release(cancel, in)
	o.done("release", start, fuse.OK)
}

func (o *observedFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return o.done("flush", time.Now(), o.RawFileSystem.Flush(cancel, in))
}

func (o *observedFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return o.done("fsync", time.Now(), o.RawFileSystem.Fsync(cancel, in))
}

func (o *observedFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return o.done("opendir", time.Now(), o.RawFileSystem.OpenDir(cancel, in, out))
}

func (o *observedFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return o.done("readdir", time.Now(), o.RawFileSystem.ReadDir(cancel, in, out))
}

func (o *observedFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return o.done("readdirplus", time.Now(), o.RawFileSystem.ReadDirPlus(cancel, in, out))
}

func (o *observedFS) ReleaseDir(in *fuse.ReleaseIn) {
	start := time.Now()
	o.RawFileSystem.ReleaseDir(in)
	o.done("releasedir", start, fuse.OK)
}

func (o *observedFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	return o.done("statfs", time.Now(), o.RawFileSystem.StatFs(cancel, h, out))
}

func (o *observedFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	return o.done("statx", time.Now(), o.RawFileSystem.Statx(cancel, in, out))
}

func (o *observedFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return o.done("access", time.Now(), o.RawFileSystem.Access(cancel, in))
}

func (o *observedFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.GetXAttr(cancel, h, attr, dest)
	return n, o.done("getxattr", start, st)
}

func (o *observedFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.ListXAttr(cancel, h, dest)
	return n, o.done("listxattr", start, st)
}

func (o *observedFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	return o.done("lseek", time.Now(), o.RawFileSystem.Lseek(cancel, in, out))
}

func (o *observedFS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	start := time.Now()
	b, st := o.RawFileSystem.Readlink(cancel, h)
	return b, o.done("readlink", start, st)
}
