package catalog

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pictofs/pictofs/client"
)

// localState is what the changes made through this mount add to, or take
// from, a dataset's listing, until a listing of the server shows them.
type localState struct {
	mu sync.Mutex // guards every field below
	// files are the local files (staged, not on the server) listed in the
	// mount, by where they are listed.
	files map[localKey]*LocalFile
	// dirs are the folders made by mkdir, by key, until rmdir.
	dirs map[string]string // key → the folder's directory_path
	// added are images uploaded through this mount, kept in every listing
	// until one that started after their upload.
	added []addedImage
	// removed are images archived through this mount (by id), left out of
	// every listing until one that started after their removal.
	removed map[string]addedImage
	// docs is the state of documents changed through this mount, by image id.
	docs map[string]*docState
	// edits counts the documents in docs, so that listings of datasets with
	// none skip the lookup.
	edits atomic.Int32

	uploads uploadBatchers
}

// localKey is where a local file is listed.
type localKey struct {
	annotations bool
	dir, name   string
}

type addedImage struct {
	dirKey string
	im     *Image
	at     time.Time
}

// docState is what this mount changed of one image's document.
type docState struct {
	// gen changes the document's inode number each time its node was
	// renamed away (the kernel keeps the old inode under the new name).
	gen int
	// edited: saved or cleared through this mount. The document is then
	// never served from an export (one built before the change would be
	// stale), and its cached copy is keyed by editGen.
	edited  bool
	editGen int
	// count is the annotation count after the change, or -1 if unknown.
	count int
	// editedAt is when it was saved: its modification time.
	editedAt time.Time
	// hidden: renamed away and not written again; not listed.
	hidden bool
	// session is the open write session of the document, if any.
	session *LocalFile
}

// doc returns (creating) the state of an image's document. Called with
// l.mu held.
func (l *localState) doc(imageID string) *docState {
	if l.docs == nil {
		l.docs = map[string]*docState{}
	}
	d := l.docs[imageID]
	if d == nil {
		d = &docState{count: -1}
		l.docs[imageID] = d
		l.edits.Add(1)
	}
	return d
}

// docView returns a copy of an image's document state, if it has one.
func (ds *Dataset) docView(imageID string) (docState, bool) {
	l := &ds.local
	if l.edits.Load() == 0 {
		return docState{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.docs[imageID]
	if d == nil {
		return docState{}, false
	}
	return *d, true
}

// documentEdited reports whether im's document was changed through this
// mount: it is then never served from an export snapshot.
func (ds *Dataset) documentEdited(im *Image) bool {
	d, ok := ds.docView(im.id)
	return ok && d.edited
}

// annotationCount is the image's annotation count: the listing's, or the
// one known after a change through this mount (-1: unknown, fetch it).
func (ds *Dataset) annotationCount(im *Image) int {
	if d, ok := ds.docView(im.id); ok && d.edited {
		return d.count
	}
	return int(im.annCount)
}

// DocumentHidden reports whether im's document was renamed away through
// this mount and not written since: it is not listed.
func (c *Catalog) DocumentHidden(ds *Dataset, im *Image) bool {
	d, ok := ds.docView(im.id)
	return ok && d.hidden
}

// documentGen is the generation of im's document node (AnnotationIno).
func (ds *Dataset) documentGen(imageID string) int {
	d, ok := ds.docView(imageID)
	if !ok {
		return 0
	}
	return d.gen
}

// DocumentModTime is the modification time of im's document: when it was
// last saved through this mount, else the image's time.
func (c *Catalog) DocumentModTime(ds *Dataset, im *Image) time.Time {
	if d, ok := ds.docView(im.id); ok && d.edited {
		return d.editedAt
	}
	return im.ModTime()
}

// withLocal applies the changes made through this mount to a snapshot
// listed from the server (the listing started at listStart): images
// uploaded or archived since stay so until a listing that started after
// them, and folders made by mkdir stay until rmdir. Called with ds.mu held.
func (c *Catalog) withLocal(ds *Dataset, s *snapshot, listStart time.Time) *snapshot {
	l := &ds.local
	l.mu.Lock()
	defer l.mu.Unlock()
	l.added = slices.DeleteFunc(l.added, func(a addedImage) bool { return a.at.Before(listStart) })
	for id, r := range l.removed {
		if r.at.Before(listStart) {
			delete(l.removed, id)
		}
	}
	if len(l.added) == 0 && len(l.removed) == 0 && len(l.dirs) == 0 {
		return s
	}
	e := s.edit()
	for key, remote := range l.dirs {
		if e.s.dirs[key] == nil {
			e.ensureDir(key, remote)
		}
	}
	for _, a := range l.added {
		e.addImage(a.dirKey, a.im)
	}
	for id, r := range l.removed {
		e.removeImage(r.dirKey, id)
	}
	return e.done()
}

// snapEdit makes a changed copy of a snapshot, copying only the
// directories it changes (and their parents, which point to them).
type snapEdit struct {
	s      *snapshot
	cloned map[string]*Dir
}

func (s *snapshot) edit() *snapEdit {
	return &snapEdit{
		s:      &snapshot{dirs: maps.Clone(s.dirs), count: s.count, loadedAt: s.loadedAt},
		cloned: map[string]*Dir{},
	}
}

func (e *snapEdit) done() *snapshot { return e.s }

// parentKey is the key of a directory's parent ("" for a top folder).
func parentKey(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return ""
}

func baseName(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// joinKey is the key of the folder name in the folder parent.
func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}

// joinRemote is the directory_path of the folder name in the folder whose
// directory_path is parent.
func joinRemote(parent, name string) string {
	return strings.TrimRight(parent, "/") + "/" + name
}

// dir returns a private copy of the directory key, linked into copies of
// its parents; nil if the snapshot has no such directory.
func (e *snapEdit) dir(key string) *Dir {
	if d := e.cloned[key]; d != nil {
		return d
	}
	old := e.s.dirs[key]
	if old == nil {
		return nil
	}
	d := &Dir{name: old.name, remotePath: old.remotePath, key: old.key,
		dirs: slices.Clone(old.dirs), images: slices.Clone(old.images)}
	e.s.dirs[key] = d
	e.cloned[key] = d
	if key != "" {
		if p := e.dir(parentKey(key)); p != nil {
			for i, sub := range p.dirs {
				if sub == old {
					p.dirs[i] = d
				}
			}
		}
	}
	return d
}

// ensureDir makes the directory key (and its parents) exist. remote is its
// directory_path, used only if it must be made.
func (e *snapEdit) ensureDir(key, remote string) *Dir {
	if d := e.dir(key); d != nil {
		return d
	}
	if key == "" {
		return nil
	}
	p := e.ensureDir(parentKey(key), remoteParent(remote))
	if p == nil {
		return nil
	}
	d := &Dir{name: baseName(key), remotePath: remote, key: key}
	e.s.dirs[key] = d
	e.cloned[key] = d
	i, _ := slices.BinarySearchFunc(p.dirs, d.name, func(x *Dir, name string) int { return strings.Compare(x.name, name) })
	p.dirs = slices.Insert(p.dirs, i, d)
	return d
}

// addImage adds im to the directory key (made if need be) unless an image
// of that id or name is there.
func (e *snapEdit) addImage(key string, im *Image) {
	if old := e.s.dirs[key]; old != nil {
		for _, x := range old.images {
			if x.id == im.id || x.name == im.name {
				return
			}
		}
	}
	d := e.ensureDir(key, im.remoteDir)
	if d == nil {
		return
	}
	i, _ := slices.BinarySearchFunc(d.images, im.name, func(x *Image, name string) int { return strings.Compare(x.name, name) })
	d.images = slices.Insert(d.images, i, im)
	e.s.count++
}

// removeImage takes the image id out of the directory key.
func (e *snapEdit) removeImage(key, id string) {
	old := e.s.dirs[key]
	if old == nil || slices.IndexFunc(old.images, func(x *Image) bool { return x.id == id }) < 0 {
		return
	}
	d := e.dir(key)
	d.images = slices.DeleteFunc(d.images, func(x *Image) bool { return x.id == id })
	e.s.count--
}

// removeDir takes the directory key (and everything under it) out.
func (e *snapEdit) removeDir(key string) {
	if key == "" || e.s.dirs[key] == nil {
		return
	}
	if p := e.dir(parentKey(key)); p != nil {
		p.dirs = slices.DeleteFunc(p.dirs, func(x *Dir) bool { return x.key == key })
	}
	for k := range e.s.dirs {
		if k == key || strings.HasPrefix(k, key+"/") {
			delete(e.s.dirs, k)
			delete(e.cloned, k)
		}
	}
}

// changeSnapshot applies change to the dataset's current listing, if it
// has one. The caller records the change in ds.local first, so that a
// listing being loaded meanwhile gets it too.
func (c *Catalog) changeSnapshot(ds *Dataset, change func(e *snapEdit)) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.snap == nil {
		return
	}
	e := ds.snap.edit()
	change(e)
	ds.snap = e.done()
}

// newUploadedImage is the listing entry of an image this mount registered.
func newUploadedImage(img *client.Image, name string) *Image {
	im := &Image{
		id:        img.ID,
		name:      name,
		filename:  img.Filename,
		remoteDir: img.DirectoryPath,
		size:      img.FileSize,
		createdAt: img.CreatedAt.UnixNano(),
		annCount:  int32(img.AnnotationCount),
	}
	if im.annCount == 0 {
		im.annSize.Store(emptyAnnotationDocSize(img.Filename))
	}
	return im
}

// recordUpload adds an image uploaded through this mount to the listing.
func (c *Catalog) recordUpload(ds *Dataset, dirKey string, im *Image) {
	l := &ds.local
	l.mu.Lock()
	l.added = append(l.added, addedImage{dirKey: dirKey, im: im, at: time.Now()})
	l.mu.Unlock()
	c.changeSnapshot(ds, func(e *snapEdit) { e.addImage(dirKey, im) })
}

// recordRemoval takes an image archived through this mount out of the
// listing.
func (c *Catalog) recordRemoval(ds *Dataset, dirKey string, im *Image) {
	l := &ds.local
	l.mu.Lock()
	if l.removed == nil {
		l.removed = map[string]addedImage{}
	}
	l.removed[im.id] = addedImage{dirKey: dirKey, im: im, at: time.Now()}
	l.added = slices.DeleteFunc(l.added, func(a addedImage) bool { return a.im.id == im.id })
	l.mu.Unlock()
	c.changeSnapshot(ds, func(e *snapEdit) { e.removeImage(dirKey, im.id) })
}

// staleListing makes the next look at the dataset list it again: the
// server holds something the listing does not (a name taken meanwhile).
func (c *Catalog) staleListing(ds *Dataset) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.snap != nil {
		s := *ds.snap
		s.loadedAt = time.Time{}
		ds.snap = &s
	}
}
