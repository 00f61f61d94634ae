package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/pictofs/pictofs/client"
)

// LocalKind is what a local file becomes when it is closed.
type LocalKind int

const (
	// LocalScratch is kept in the mount only and never sent.
	LocalScratch LocalKind = iota
	// LocalImage is uploaded as a new image.
	LocalImage
	// LocalDocument is saved as an image's annotations.
	LocalDocument
)

func (k LocalKind) String() string {
	switch k {
	case LocalImage:
		return "image"
	case LocalDocument:
		return "document"
	}
	return "scratch"
}

// Path names an entry of a dataset's images/ or annotations/ tree: the
// folder's key ("" for the top, as Dir.Key) and the entry's name.
type Path struct {
	Annotations bool
	Dir, Name   string
}

func (p Path) key() localKey { return localKey{annotations: p.Annotations, dir: p.Dir, name: p.Name} }

func (p Path) String() string {
	top := "images"
	if p.Annotations {
		top = "annotations"
	}
	return strings.Join(splitPath(top+"/"+p.Dir+"/"+p.Name), "/")
}

// LocalFile is a file written through the mount: its bytes are staged on
// disk until it is uploaded (LocalImage), saved (LocalDocument), or dropped.
// It is safe for concurrent use.
type LocalFile struct {
	c      *Catalog
	ds     *Dataset
	ino    uint64
	staged *stagedFile

	// commitMu serializes commits of the file; it is held across their
	// requests and guards nothing else.
	commitMu sync.Mutex

	mu sync.Mutex // guards every field below
	// at is where the file is listed (for a document session of a listed
	// document: that document's place).
	at Path
	// remoteDir is the directory_path of at.Dir.
	remoteDir string
	kind      LocalKind
	// doc is the image whose document a LocalDocument is.
	doc *Image
	// listed: the file has an entry of its own (not a session of a listed
	// document).
	listed bool
	mode   uint32
	mtime  time.Time
	size   int64
	// version counts changes; committed is the version the last commit
	// sent (or refused), with its result in lastErr.
	version, committed uint64
	lastErr            error
	opens              int
	// complete mirrors the sidecar's flag.
	complete bool
	// uploaded is the image a LocalImage became.
	uploaded *Image
	// saved is set once a LocalDocument was saved, and stays set until it
	// changes again.
	saved bool
	// gone: the staged bytes were dropped.
	gone bool
}

// LocalAttr are a local file's attributes.
type LocalAttr struct {
	Ino   uint64
	Size  int64
	Mode  uint32 // permission bits
	MTime time.Time
	Kind  LocalKind
	// Uploaded is the image a LocalImage became, once uploaded: the file
	// is then that image.
	Uploaded *Image
	// SavedDocument is the image whose document a LocalDocument became,
	// once saved and closed: the file is then that document.
	SavedDocument *Image
	// Open is the number of open handles.
	Open int
}

// Attr returns the file's attributes.
func (f *LocalFile) Attr() LocalAttr {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := LocalAttr{Ino: f.ino, Size: f.size, Mode: f.mode, MTime: f.mtime, Kind: f.kind, Uploaded: f.uploaded, Open: f.opens}
	if f.kind == LocalDocument && f.saved && f.opens == 0 && f.version == f.committed {
		a.SavedDocument = f.doc
	}
	return a
}

// Dataset is the dataset the file belongs to.
func (f *LocalFile) Dataset() *Dataset { return f.ds }

// Name is the file's entry name.
func (f *LocalFile) Name() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at.Name
}

// Path is where the file is listed.
func (f *LocalFile) Path() Path {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at
}

// StagedPath is where the file's bytes are on disk.
func (f *LocalFile) StagedPath() string { return f.staged.dataPath() }

// kindOf decides what a new entry at p is, and for a document, of which
// image. d is p's folder in the current listing.
func (c *Catalog) kindOf(ds *Dataset, d *Dir, p Path) (LocalKind, *Image, error) {
	if len(p.Name) > maxNameBytes {
		return 0, nil, fmt.Errorf("%s: %w", p, ErrBadName)
	}
	if p.Annotations {
		if im := d.FindAnnotation(p.Name); im != nil {
			return LocalDocument, im, nil
		}
		return LocalScratch, nil, nil
	}
	if IsScratchName(p.Name) {
		return LocalScratch, nil, nil
	}
	if ContentTypeOf(p.Name) == "" {
		return 0, nil, fmt.Errorf("%s: %w", p, ErrUnsupportedType)
	}
	if err := checkNewName(p.Name); err != nil {
		return 0, nil, err
	}
	return LocalImage, nil, nil
}

// LocalFileAt returns the local file listed at p, or nil.
func (c *Catalog) LocalFileAt(ds *Dataset, p Path) *LocalFile {
	l := &ds.local
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.files[p.key()]
}

// LocalFiles returns the local files listed in a folder of one tree.
func (c *Catalog) LocalFiles(ds *Dataset, annotations bool, dirKey string) []*LocalFile {
	l := &ds.local
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*LocalFile
	for k, f := range l.files {
		if k.annotations == annotations && k.dir == dirKey {
			out = append(out, f)
		}
	}
	return out
}

// hasLocalUnder reports whether a local file is listed in the folder key
// or below it, in either tree.
func (l *localState) hasLocalUnder(key string) bool {
	for k := range l.files {
		if k.dir == key || strings.HasPrefix(k.dir, key+"/") {
			return true
		}
	}
	return false
}

// Create makes a new local file at p (open(O_CREAT) of a name that does
// not exist), with permission bits mode. The caller holds it open: Release
// ends that.
func (c *Catalog) Create(ctx context.Context, ds *Dataset, p Path, mode uint32) (*LocalFile, error) {
	if !c.Writable() {
		return nil, ErrReadOnly
	}
	d, err := c.Dir(ctx, ds, p.Dir)
	if err != nil {
		return nil, err
	}
	kind, im, err := c.kindOf(ds, d, p)
	if err != nil {
		return nil, err
	}
	switch {
	case d.FindDir(p.Name) != nil, !p.Annotations && d.FindImage(p.Name) != nil:
		return nil, fmt.Errorf("%s: %w", p, fs.ErrExist)
	case kind == LocalDocument && !c.DocumentHidden(ds, im):
		return nil, fmt.Errorf("%s: %w", p, fs.ErrExist)
	}
	f, err := c.newLocal(ds, p, d.remotePath, kind, im, mode)
	if err != nil {
		return nil, err
	}
	l := &ds.local
	l.mu.Lock()
	if l.files[p.key()] != nil {
		l.mu.Unlock()
		f.staged.remove()
		return nil, fmt.Errorf("%s: %w", p, fs.ErrExist)
	}
	if l.files == nil {
		l.files = map[localKey]*LocalFile{}
	}
	f.listed = true
	f.opens = 1
	l.files[p.key()] = f
	if kind == LocalDocument {
		l.doc(im.id).session = f
	}
	l.mu.Unlock()
	c.log.Debug("staging a new file", "path", p.String(), "kind", kind, "staged", f.StagedPath())
	return f, nil
}

// newLocal stages a new, empty local file.
func (c *Catalog) newLocal(ds *Dataset, p Path, remoteDir string, kind LocalKind, im *Image, mode uint32) (*LocalFile, error) {
	f := &LocalFile{c: c, ds: ds, at: p, remoteDir: remoteDir, kind: kind, doc: im, mode: mode & 0o7777,
		mtime: time.Now(), version: 1}
	st, err := c.writes.staging.create(f.sidecarLocked())
	if err != nil {
		return nil, err
	}
	f.staged = st
	f.ino = inodeOf(tagLocal, c.opts.Namespace, st.id)
	return f, nil
}

// sidecarLocked describes the file for its sidecar. Called with f.mu held
// (or before f is shared).
func (f *LocalFile) sidecarLocked() sidecar {
	sc := sidecar{
		Namespace: f.c.opts.Namespace, DatasetID: f.ds.id, Dataset: f.ds.Meta().Name,
		Annotations: f.at.Annotations, DirectoryPath: f.remoteDir, Name: f.at.Name,
		Kind: f.kind.String(), Complete: f.complete, CreatedAt: time.Now(),
	}
	if f.kind == LocalImage {
		sc.ContentType = ContentTypeOf(f.at.Name)
	}
	if f.doc != nil {
		sc.ImageID = f.doc.id
	}
	return sc
}

// updateSidecar rewrites the sidecar after a change of name or state.
func (f *LocalFile) updateSidecar() {
	f.mu.Lock()
	sc := f.sidecarLocked()
	gone := f.gone
	f.mu.Unlock()
	if gone {
		return
	}
	if err := f.staged.writeSidecar(sc); err != nil {
		f.c.log.Warn("could not update a staged file's sidecar", "staged", f.StagedPath(), "err", err)
	}
}

// Open counts a new handle of the file; truncate empties it (O_TRUNC).
func (c *Catalog) Open(f *LocalFile, truncate bool) error {
	f.mu.Lock()
	if f.gone {
		f.mu.Unlock()
		return fmt.Errorf("%s: %w", f.at, fs.ErrNotExist)
	}
	f.opens++
	f.mu.Unlock()
	if truncate {
		if err := f.Truncate(0); err != nil {
			c.Release(f)
			return err
		}
	}
	return nil
}

// ReadAt reads the file's bytes.
func (f *LocalFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	size := f.size
	f.mu.Unlock()
	if off >= size {
		return 0, io.EOF
	}
	if int64(len(p)) > size-off {
		p = p[:size-off]
	}
	return f.staged.data.ReadAt(p, off)
}

// writable refuses changes to a file that became an image. Called with
// f.mu held.
func (f *LocalFile) writableLocked(end int64) error {
	switch {
	case f.uploaded != nil:
		return fmt.Errorf("%s was uploaded: images cannot change: %w", f.at, ErrNotPermitted)
	case end > f.c.opts.Writes.MaxFileBytes:
		return fmt.Errorf("%s: %w (%d bytes)", f.at, ErrTooLarge, f.c.opts.Writes.MaxFileBytes)
	}
	return nil
}

// WriteAt writes p at off.
func (f *LocalFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	err := f.writableLocked(off + int64(len(p)))
	wasComplete := f.complete
	f.complete = false
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if wasComplete {
		f.updateSidecar()
	}
	n, err := f.staged.data.WriteAt(p, off)
	f.mu.Lock()
	f.size = max(f.size, off+int64(n))
	f.mtime = time.Now()
	f.version++
	f.mu.Unlock()
	return n, err
}

// Truncate sets the file's size.
func (f *LocalFile) Truncate(size int64) error {
	f.mu.Lock()
	err := f.writableLocked(size)
	wasComplete := f.complete
	f.complete = false
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if wasComplete {
		f.updateSidecar()
	}
	if err := f.staged.data.Truncate(size); err != nil {
		return err
	}
	f.mu.Lock()
	f.size = size
	f.mtime = time.Now()
	f.version++
	f.mu.Unlock()
	return nil
}

// SetMode records chmod on a local file.
func (f *LocalFile) SetMode(mode uint32) {
	f.mu.Lock()
	f.mode = mode & 0o7777
	f.mu.Unlock()
}

// SetModTime records utimes on a local file.
func (f *LocalFile) SetModTime(t time.Time) {
	f.mu.Lock()
	f.mtime = t
	f.mu.Unlock()
}

// content reads the whole staged file.
func (f *LocalFile) content() ([]byte, error) {
	f.mu.Lock()
	size := f.size
	f.mu.Unlock()
	buf := make([]byte, size)
	n, err := f.staged.data.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read staged file: %w", err)
	}
	return buf[:n], nil
}

// Commit sends what the file holds, if it changed since the last commit
// or the last one failed for a passing reason: a LocalImage is uploaded, a
// LocalDocument is validated and saved, a scratch file stays. It returns
// the result of the last commit, so that every close (FLUSH) and fsync of a
// file reports whether its bytes reached the server.
func (c *Catalog) Commit(ctx context.Context, f *LocalFile) error {
	f.commitMu.Lock()
	defer f.commitMu.Unlock()
	f.mu.Lock()
	// A commit that failed for a passing reason (network, server, budget)
	// is tried again by the next close or fsync even without a change.
	if f.gone || (f.version == f.committed && (f.lastErr == nil || isPermanent(f.lastErr))) {
		err := f.lastErr
		f.mu.Unlock()
		return err
	}
	version, kind := f.version, f.kind
	f.mu.Unlock()
	var err error
	switch kind {
	case LocalImage:
		err = c.commitImage(ctx, f)
	case LocalDocument:
		err = c.commitDocument(ctx, f)
	}
	f.mu.Lock()
	f.committed, f.lastErr = version, err
	f.mu.Unlock()
	return err
}

// markComplete records in the sidecar that the writer closed the file.
func (f *LocalFile) markComplete() {
	f.mu.Lock()
	changed := !f.complete
	f.complete = true
	f.mu.Unlock()
	if changed {
		f.updateSidecar()
	}
}

// commitImage uploads a LocalImage.
func (c *Catalog) commitImage(ctx context.Context, f *LocalFile) error {
	f.mu.Lock()
	at, remoteDir := f.at, f.remoteDir
	f.mu.Unlock()
	data, err := f.content()
	if err != nil {
		return err
	}
	contentType, err := c.checkImage(at.String(), data)
	if err != nil {
		return err
	}
	f.markComplete()
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	img, err := c.upload(ctx, f.ds, remoteDir, at.Name, contentType, data)
	if err != nil {
		if errors.Is(err, client.ErrConflict) {
			c.log.Warn("not uploaded: an image of that name exists; it is not overwritten", "path", at.String(), "dataset", f.ds.Meta().Name)
			c.staleListing(f.ds)
		}
		return err
	}
	im := newUploadedImage(img, at.Name)
	c.fillUploaded(ctx, f.ds, im, data)
	c.recordUpload(f.ds, at.Dir, im)
	l := &f.ds.local
	l.mu.Lock()
	if l.files[at.key()] == f {
		delete(l.files, at.key())
	}
	l.mu.Unlock()
	f.mu.Lock()
	f.uploaded = im
	f.listed = false
	f.mu.Unlock()
	c.log.Info("uploaded", "path", at.String(), "dataset", f.ds.Meta().Name, "bytes", len(data), "image_id", img.ID)
	return nil
}

// Release ends one handle of the file. When the last one closes, a file
// that was uploaded or saved, or that the server refused for good (the
// writer was told at close), drops its staged bytes; one that failed for a
// transient reason stays staged and listed, and the next mount tries again.
func (c *Catalog) Release(f *LocalFile) {
	f.mu.Lock()
	f.opens--
	last := f.opens == 0
	dirty := f.version != f.committed
	f.mu.Unlock()
	if !last {
		return
	}
	if dirty {
		// Every close flushes first; a file released with changes never
		// reported was written through a mapping or a lost FLUSH.
		ctx, cancel := context.WithTimeout(c.ctx, uploadTimeout)
		err := c.Commit(ctx, f)
		cancel()
		if err != nil {
			c.log.Warn("closing a file that was not flushed", "name", f.Name(), "err", err)
		}
	}
	// Decide under both locks, so that an open joining the file now either
	// comes first (and the file stays) or finds it gone.
	l := &f.ds.local
	l.mu.Lock()
	f.mu.Lock()
	if f.opens > 0 || f.gone {
		f.mu.Unlock()
		l.mu.Unlock()
		return
	}
	kind, listed, uploaded, saved, err, at, doc := f.kind, f.listed, f.uploaded, f.saved, f.lastErr, f.at, f.doc
	var end, detach bool
	switch {
	case kind == LocalScratch:
		// Kept until unlinked or the mount ends.
	case kind == LocalImage && uploaded != nil, kind == LocalDocument && saved && err == nil:
		end = true
	case err != nil && isPermanent(err):
		end = true
	case err != nil && kind == LocalDocument && !listed:
		// A session of a listed document: the mount shows the server's
		// document again, and the bytes stay on disk for the user.
		detach = true
	}
	if end || detach {
		f.gone = true
		f.listed = false
		if l.files[at.key()] == f {
			delete(l.files, at.key())
		}
		if d := docOf(l, doc); d != nil {
			if d.session == f {
				d.session = nil
			}
			if kind == LocalDocument && listed && err != nil {
				d.hidden = false // the server's document shows again
			}
		}
	}
	f.mu.Unlock()
	l.mu.Unlock()
	switch {
	case end && err != nil:
		c.log.Warn("not sent: the server would refuse it; dropped", "path", at.String(), "err", err)
		f.staged.remove()
	case end:
		f.staged.remove()
	case err != nil && kind != LocalScratch:
		c.log.Warn("not sent: kept for the next attempt (close it again, or the next mount retries)",
			"path", at.String(), "err", err, "staged", f.StagedPath())
		if detach {
			f.staged.close()
		}
	}
}

// docOf returns the state of im's document, if it has one. Called with
// l.mu held.
func docOf(l *localState, im *Image) *docState {
	if im == nil || l.docs == nil {
		return nil
	}
	return l.docs[im.id]
}

// endLocal unlists a local file and drops its staged bytes.
func (c *Catalog) endLocal(f *LocalFile) {
	c.detachSession(f)
	l := &f.ds.local
	f.mu.Lock()
	at := f.at
	f.listed = false
	f.gone = true
	f.mu.Unlock()
	l.mu.Lock()
	if l.files[at.key()] == f {
		delete(l.files, at.key())
	}
	l.mu.Unlock()
	f.staged.remove()
}

// detachSession ends f as its document's write session.
func (c *Catalog) detachSession(f *LocalFile) {
	f.mu.Lock()
	im := f.doc
	f.mu.Unlock()
	if im == nil {
		return
	}
	l := &f.ds.local
	l.mu.Lock()
	if d := l.docs[im.id]; d != nil && d.session == f {
		d.session = nil
	}
	l.mu.Unlock()
}
