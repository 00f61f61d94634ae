package catalog

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// RenameResult says what a rename made of the node that was renamed.
type RenameResult struct {
	// Became is set when an annotation document was renamed away (an
	// editor's backup, "X.json" → "X.json~"): the node that stood for the
	// document now stands for this local file, which holds the document's
	// bytes, and the document is not listed until it is written again.
	Became *LocalFile
}

// Rename moves the entry from to to, within one dataset. What the API can
// do is done: a local file renamed to an image name is uploaded, to a
// document's name is saved (the rename returns the result), to a scratch
// name is moved; a document renamed to a scratch name leaves a local copy
// there and is hidden until written again; an empty folder made through
// the mount moves. Everything else that exists on the server (images,
// folders that hold them) cannot be renamed: ErrNotPermitted. With
// noReplace an existing target is fs.ErrExist.
func (c *Catalog) Rename(ctx context.Context, ds *Dataset, from, to Path, noReplace bool) (RenameResult, error) {
	if !c.Writable() {
		return RenameResult{}, ErrReadOnly
	}
	if from == to {
		return RenameResult{}, nil
	}
	fromDir, err := c.Dir(ctx, ds, from.Dir)
	if err != nil {
		return RenameResult{}, err
	}
	toDir, err := c.Dir(ctx, ds, to.Dir)
	if err != nil {
		return RenameResult{}, err
	}
	target := c.LocalFileAt(ds, to)
	targetExists := target != nil || toDir.FindDir(to.Name) != nil ||
		(!to.Annotations && toDir.FindImage(to.Name) != nil)
	if im := toDir.FindAnnotation(to.Name); to.Annotations && im != nil && !c.DocumentHidden(ds, im) {
		targetExists = true
	}
	if noReplace && targetExists {
		return RenameResult{}, fmt.Errorf("%s: %w", to, fs.ErrExist)
	}
	if toDir.FindDir(to.Name) != nil {
		return RenameResult{}, fmt.Errorf("%s is a folder: %w", to, ErrNotPermitted)
	}
	if src := c.LocalFileAt(ds, from); src != nil {
		return RenameResult{}, c.renameLocal(ctx, ds, src, to, toDir, target)
	}
	if im := fromDir.FindAnnotation(from.Name); from.Annotations && im != nil && !c.DocumentHidden(ds, im) {
		return c.renameDocumentAway(ctx, ds, im, from, to, toDir, target)
	}
	switch {
	case !from.Annotations && fromDir.FindImage(from.Name) != nil:
		return RenameResult{}, fmt.Errorf("%s: images cannot be renamed: %w", from, ErrNotPermitted)
	case fromDir.FindDir(from.Name) != nil:
		return RenameResult{}, c.renameDir(ds, fromDir.FindDir(from.Name), from, to, toDir)
	}
	return RenameResult{}, fmt.Errorf("%s: %w", from, fs.ErrNotExist)
}

// renameLocal moves a local file, uploading or saving it when its new name
// is an image's or a document's.
func (c *Catalog) renameLocal(ctx context.Context, ds *Dataset, f *LocalFile, to Path, toDir *Dir, target *LocalFile) error {
	kind, im, err := c.kindOf(ds, toDir, to)
	if err != nil {
		return err
	}
	switch kind {
	case LocalImage:
		if toDir.FindImage(to.Name) != nil {
			return fmt.Errorf("%s: %w", to, fs.ErrExist)
		}
		f.mu.Lock()
		uploaded := f.uploaded != nil
		f.mu.Unlock()
		if uploaded {
			return fmt.Errorf("%s was uploaded: images cannot be renamed: %w", f.Name(), ErrNotPermitted)
		}
		f.commitMu.Lock()
		defer f.commitMu.Unlock()
		f.mu.Lock()
		from, fromRemote, fromKind, fromDoc := f.at, f.remoteDir, f.kind, f.doc
		f.mu.Unlock()
		c.moveLocal(ds, f, to, toDir.remotePath, LocalImage, nil, nil)
		err := c.commitImage(ctx, f)
		if err != nil {
			// The rename failed: the file stays where it was.
			c.moveLocal(ds, f, from, fromRemote, fromKind, fromDoc, nil)
			return err
		}
		f.mu.Lock()
		f.committed, f.lastErr = f.version, nil
		f.mu.Unlock()
		if target != nil {
			c.endLocal(target)
		}
		c.finishLocal(f)
		return nil
	case LocalDocument:
		data, err := f.content()
		if err != nil {
			return err
		}
		if err := c.saveDocument(ctx, ds, im, to, data); err != nil {
			return err
		}
		c.moveLocal(ds, f, to, toDir.remotePath, LocalDocument, im, target)
		f.mu.Lock()
		f.saved, f.committed, f.lastErr = true, f.version, nil
		mtime := f.mtime
		f.mu.Unlock()
		c.setEditTime(ds, im, mtime)
		c.endListed(f)
		c.finishLocal(f)
		return nil
	}
	c.moveLocal(ds, f, to, toDir.remotePath, LocalScratch, nil, target)
	return nil
}

// moveLocal lists f at to as kind, dropping the local file it replaces.
func (c *Catalog) moveLocal(ds *Dataset, f *LocalFile, to Path, remoteDir string, kind LocalKind, im *Image, replaced *LocalFile) {
	if replaced != nil && replaced != f {
		replaced.mu.Lock()
		im, kind := replaced.doc, replaced.kind
		replaced.mu.Unlock()
		c.endLocal(replaced)
		if im != nil && kind == LocalDocument {
			c.unhide(ds, im)
		}
	}
	c.detachSession(f)
	l := &ds.local
	f.mu.Lock()
	from := f.at
	f.at, f.remoteDir, f.kind, f.doc = to, remoteDir, kind, im
	if kind != LocalScratch {
		// A new name is a new thing to send.
		f.version++
		f.saved = false
	}
	f.mu.Unlock()
	l.mu.Lock()
	if l.files[from.key()] == f {
		delete(l.files, from.key())
	}
	if l.files == nil {
		l.files = map[localKey]*LocalFile{}
	}
	l.files[to.key()] = f
	l.mu.Unlock()
	f.mu.Lock()
	f.listed = true
	f.mu.Unlock()
	f.updateSidecar()
}

// finishLocal drops the staged bytes of a local file that was uploaded or
// saved, unless it is open (then its last Release does).
func (c *Catalog) finishLocal(f *LocalFile) {
	l := &f.ds.local
	f.mu.Lock()
	at, open := f.at, f.opens > 0
	f.listed = false
	if !open {
		f.gone = true
	}
	f.mu.Unlock()
	l.mu.Lock()
	if l.files[at.key()] == f {
		delete(l.files, at.key())
	}
	l.mu.Unlock()
	if !open {
		f.staged.remove()
	}
}

// renameDocumentAway renames a document to a scratch name: a local file
// there gets the document's bytes, and the document is hidden until it is
// written again (vim and emacs back a file up this way before they write
// it anew). Renaming a document to anything else is ErrNotPermitted.
func (c *Catalog) renameDocumentAway(ctx context.Context, ds *Dataset, im *Image, from, to Path, toDir *Dir, target *LocalFile) (RenameResult, error) {
	if kind, _, err := c.kindOf(ds, toDir, to); err != nil || kind != LocalScratch || !to.Annotations {
		return RenameResult{}, fmt.Errorf("%s: a document can only be renamed to a scratch name in annotations/ (a backup): %w", from, ErrNotPermitted)
	}
	doc, err := c.OpenAnnotation(ctx, ds, im)
	if err != nil {
		return RenameResult{}, err
	}
	data, err := docBytes(doc)
	doc.Release()
	if err != nil {
		return RenameResult{}, err
	}
	g, err := c.newLocal(ds, to, toDir.remotePath, LocalScratch, nil, 0o644)
	if err != nil {
		return RenameResult{}, err
	}
	if _, err := g.staged.data.WriteAt(data, 0); err != nil {
		g.staged.remove()
		return RenameResult{}, fmt.Errorf("stage document copy: %w", err)
	}
	g.size = int64(len(data))
	g.mtime = c.DocumentModTime(ds, im)
	g.committed = g.version
	g.listed = true
	if target != nil {
		c.endLocal(target)
	}
	l := &ds.local
	l.mu.Lock()
	if l.files == nil {
		l.files = map[localKey]*LocalFile{}
	}
	l.files[to.key()] = g
	st := l.doc(im.id)
	st.hidden = true
	st.gen++
	l.mu.Unlock()
	c.log.Debug("document renamed away; hidden until written again", "from", from.String(), "to", to.String())
	return RenameResult{Became: g}, nil
}

// unhide lists im's document again.
func (c *Catalog) unhide(ds *Dataset, im *Image) {
	l := &ds.local
	l.mu.Lock()
	if d := l.docs[im.id]; d != nil {
		d.hidden = false
	}
	l.mu.Unlock()
}

// renameDir moves an empty folder made through the mount.
func (c *Catalog) renameDir(ds *Dataset, d *Dir, from, to Path, toDir *Dir) error {
	l := &ds.local
	l.mu.Lock()
	defer l.mu.Unlock()
	_, local := l.dirs[d.key]
	if !local || len(d.images) > 0 || len(d.dirs) > 0 || l.hasLocalUnder(d.key) {
		return fmt.Errorf("%s: folders on the server cannot be renamed: %w", from, ErrNotPermitted)
	}
	if err := checkNewName(to.Name); err != nil {
		return err
	}
	key := joinKey(to.Dir, to.Name)
	remote := joinRemote(toDir.remotePath, to.Name)
	delete(l.dirs, d.key)
	l.dirs[key] = remote
	ds.mu.Lock()
	if ds.snap != nil {
		e := ds.snap.edit()
		e.removeDir(d.key)
		e.ensureDir(key, remote)
		ds.snap = e.done()
	}
	ds.mu.Unlock()
	return nil
}

// Remove removes the entry at p (unlink). A local file is dropped; an image
// is archived and a document cleared, both only with AllowDelete.
func (c *Catalog) Remove(ctx context.Context, ds *Dataset, p Path) error {
	if !c.Writable() {
		return ErrReadOnly
	}
	if f := c.LocalFileAt(ds, p); f != nil {
		c.endLocal(f)
		f.mu.Lock()
		im := f.doc
		kind := f.kind
		f.mu.Unlock()
		if kind == LocalDocument && im != nil {
			c.unhide(ds, im)
		}
		return nil
	}
	d, err := c.Dir(ctx, ds, p.Dir)
	if err != nil {
		return err
	}
	if !p.Annotations {
		im := d.FindImage(p.Name)
		if im == nil {
			return fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		if !c.opts.Writes.AllowDelete {
			return fmt.Errorf("rm %s: %w", p, ErrDeleteNotAllowed)
		}
		if err := c.archiveImage(ctx, ds, im); err != nil {
			return fmt.Errorf("archive %s: %w", p, err)
		}
		c.recordRemoval(ds, p.Dir, im)
		c.writes.archived.Add(1)
		c.log.Info("archived image", "path", p.String(), "dataset", ds.Meta().Name, "image_id", im.id)
		return nil
	}
	im := d.FindAnnotation(p.Name)
	if im == nil || c.DocumentHidden(ds, im) {
		return fmt.Errorf("%s: %w", p, fs.ErrNotExist)
	}
	if !c.opts.Writes.AllowDelete {
		return fmt.Errorf("rm %s: %w", p, ErrDeleteNotAllowed)
	}
	if err := c.clearAnnotations(ctx, ds, im); err != nil {
		return fmt.Errorf("clear %s: %w", p, err)
	}
	c.documentChanged(ds, im, 0)
	c.writes.cleared.Add(1)
	c.log.Info("cleared annotations", "path", p.String(), "dataset", ds.Meta().Name, "image_id", im.id)
	return nil
}

// MakeDir makes the folder name in the folder parent (mkdir). It exists in
// the mount (under images/ and annotations/ alike) until rmdir; on the
// server folders exist only through the images in them.
func (c *Catalog) MakeDir(ctx context.Context, ds *Dataset, parent, name string) (*Dir, error) {
	if !c.Writable() {
		return nil, ErrReadOnly
	}
	if err := checkNewName(name); err != nil {
		return nil, err
	}
	d, err := c.Dir(ctx, ds, parent)
	if err != nil {
		return nil, err
	}
	if d.FindDir(name) != nil || d.FindImage(name) != nil || d.FindAnnotation(name) != nil ||
		c.LocalFileAt(ds, Path{Dir: parent, Name: name}) != nil || c.LocalFileAt(ds, Path{Annotations: true, Dir: parent, Name: name}) != nil {
		return nil, fmt.Errorf("%s: %w", Path{Dir: parent, Name: name}, fs.ErrExist)
	}
	key, remote := joinKey(parent, name), joinRemote(d.remotePath, name)
	l := &ds.local
	l.mu.Lock()
	if l.dirs == nil {
		l.dirs = map[string]string{}
	}
	l.dirs[key] = remote
	l.mu.Unlock()
	c.changeSnapshot(ds, func(e *snapEdit) { e.ensureDir(key, remote) })
	return c.Dir(ctx, ds, key)
}

// RemoveDir removes the folder name from the folder parent (rmdir): an
// empty one at once; one that holds files is ErrDirNotEmpty, or
// ErrDeleteNotAllowed without AllowDelete.
func (c *Catalog) RemoveDir(ctx context.Context, ds *Dataset, parent, name string) error {
	if !c.Writable() {
		return ErrReadOnly
	}
	d, err := c.Dir(ctx, ds, parent)
	if err != nil {
		return err
	}
	sub := d.FindDir(name)
	if sub == nil {
		return fmt.Errorf("%s: %w", Path{Dir: parent, Name: name}, fs.ErrNotExist)
	}
	l := &ds.local
	l.mu.Lock()
	empty := len(sub.images) == 0 && len(sub.dirs) == 0 && !l.hasLocalUnder(sub.key)
	if empty {
		delete(l.dirs, sub.key)
	}
	l.mu.Unlock()
	switch {
	case empty:
		c.changeSnapshot(ds, func(e *snapEdit) { e.removeDir(sub.key) })
		return nil
	case !c.opts.Writes.AllowDelete:
		return fmt.Errorf("rmdir %s: %w", Path{Dir: parent, Name: name}, ErrDeleteNotAllowed)
	}
	return fmt.Errorf("rmdir %s: %w", Path{Dir: parent, Name: name}, ErrDirNotEmpty)
}

// closeWrites ends the local files when the mount ends: scratch files are
// dropped (they live as long as the mount), and files that were not sent
// stay staged for the next mount.
func (c *Catalog) closeWrites() {
	c.rootMu.Lock()
	all := make([]*Dataset, 0, len(c.byID))
	for _, ds := range c.byID {
		all = append(all, ds)
	}
	c.rootMu.Unlock()
	for _, ds := range all {
		l := &ds.local
		l.mu.Lock()
		files := make([]*LocalFile, 0, len(l.files))
		for _, f := range l.files {
			files = append(files, f)
		}
		l.files = nil
		l.mu.Unlock()
		var dropped []string
		for _, f := range files {
			f.mu.Lock()
			kind, at := f.kind, f.at
			f.mu.Unlock()
			if kind == LocalScratch {
				dropped = append(dropped, at.String())
				f.staged.remove()
				continue
			}
			c.log.Warn("not sent before the mount ended: kept for the next mount", "path", at.String(),
				"dataset", ds.Meta().Name, "staged", f.StagedPath())
			f.staged.close()
		}
		if len(dropped) > 0 {
			c.log.Info("scratch files dropped with the mount", "dataset", ds.Meta().Name, "files", strings.Join(dropped, ", "))
		}
	}
}

// RecoveryReport says what RecoverStaged did.
type RecoveryReport struct {
	// Uploaded are the staged images uploaded.
	Uploaded []string
	// Kept are the staged files kept where they are (their paths), each
	// with a log line saying why.
	Kept []string
}

// RecoverStaged uploads the images that an earlier mount of this
// organization staged and did not upload (it was killed or unmounted before
// it could), and reports and keeps the rest: files that were still being
// written (they may be cut short), documents (saving them later could undo
// a newer change), scratch files, and images whose name is taken now.
// Nothing is deleted unless it was uploaded.
func (c *Catalog) RecoverStaged(ctx context.Context) RecoveryReport {
	var rep RecoveryReport
	if !c.Writable() {
		return rep
	}
	files, bad := c.writes.staging.leftovers(c.opts.Namespace)
	for _, p := range bad {
		c.log.Warn("staged file without a readable sidecar: kept", "staged", p)
		rep.Kept = append(rep.Kept, p)
	}
	for _, f := range files {
		if c.recoverOne(ctx, f) {
			rep.Uploaded = append(rep.Uploaded, f.sc.Dataset+":"+joinRemote(f.sc.DirectoryPath, f.sc.Name))
			continue
		}
		rep.Kept = append(rep.Kept, f.dataPath())
	}
	return rep
}

// StartRecovery runs RecoverStaged in the background, until Close.
func (c *Catalog) StartRecovery() {
	if c.Writable() {
		c.goBackground(func() { c.RecoverStaged(c.ctx) })
	}
}

// recoverOne uploads one leftover staged image, or says why it keeps it.
func (c *Catalog) recoverOne(ctx context.Context, f *leftover) bool {
	sc := f.sc
	where := []any{"dataset", sc.Dataset, "directory_path", sc.DirectoryPath, "name", sc.Name, "staged", f.dataPath()}
	keep := func(msg string, args ...any) bool {
		c.log.Warn(msg, append(where, args...)...)
		f.close()
		return false
	}
	switch {
	case sc.Kind != LocalImage.String():
		return keep("a file written before pictofs stopped is kept in the staging area (only complete images are uploaded)", "kind", sc.Kind)
	case !sc.Complete:
		return keep("an image was being written when pictofs stopped; it may be cut short and is kept in the staging area, not uploaded")
	}
	ds := c.datasetByID(ctx, sc.DatasetID)
	if ds == nil {
		return keep("the dataset of a staged image is gone; kept in the staging area")
	}
	data, err := os.ReadFile(f.dataPath())
	if err != nil {
		return keep("staged image unreadable; kept", "err", err)
	}
	contentType, err := c.checkImage(sc.Name, data)
	if err != nil {
		return keep("staged image cannot be uploaded; kept", "err", err)
	}
	img, err := c.upload(ctx, ds, sc.DirectoryPath, sc.Name, contentType, data)
	if err != nil {
		return keep("staged image not uploaded; kept (an image of that name may exist now, or the next mount tries again)", "err", err)
	}
	im := newUploadedImage(img, sc.Name)
	c.fillUploaded(ctx, ds, im, data)
	c.recordUpload(ds, strings.Join(splitRemoteDir(sc.DirectoryPath), "/"), im)
	f.remove()
	c.log.Info("uploaded an image staged before pictofs stopped", where[:6]...)
	return true
}

// datasetByID returns the dataset with id, listing datasets if need be.
func (c *Catalog) datasetByID(ctx context.Context, id string) *Dataset {
	if _, err := c.listDatasets(ctx); err != nil {
		return nil
	}
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	return c.byID[id]
}
