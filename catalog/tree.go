package catalog

import (
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pictofs/pictofs/client"
)

// Image is one image of a dataset listing. It holds only what the tree, the
// byte fetch and stat need, to keep memory near 200 bytes per image.
type Image struct {
	id        string
	name      string // the entry name in images/, unique in its directory
	filename  string // the server's filename (the byte route and empty documents need it)
	remoteDir string // the server's directory_path (shared with Dir.remotePath when equal)
	size      int64
	createdAt int64 // unix nanoseconds
	annCount  int32
	// annSize is the byte size of the annotation document once known: set
	// at build time when annCount is 0, else after the first fetch.
	annSize atomic.Int64
}

// Dir is one directory of a dataset listing, shared by images/ and
// annotations/: the same subdirectories appear under both.
type Dir struct {
	name       string   // entry name ("" for the top)
	remotePath string   // the server's directory_path, e.g. "/train/cars"
	key        string   // joined safe path, for inode numbers
	dirs       []*Dir   // sorted by name
	images     []*Image // sorted by name
	// readahead is set once a listing of the directory queued its images.
	readahead atomic.Bool
	// statAhead tracks sequential document stats in this directory.
	statAhead statAheadState
}

// snapshot is an immutable listing of one dataset's images.
type snapshot struct {
	dirs     map[string]*Dir // Dir.key → Dir
	count    int
	loadedAt time.Time
}

// Name is the directory's entry name ("" for the top).
func (d *Dir) Name() string { return d.name }

// Key names the directory within its dataset ("" for the top); Catalog.Dir
// resolves it in the current listing.
func (d *Dir) Key() string { return d.key }

// Dirs are the subdirectories, sorted by name.
func (d *Dir) Dirs() []*Dir { return d.dirs }

// Images are the images, sorted by entry name.
func (d *Dir) Images() []*Image { return d.images }

// ID is the image's UUID.
func (im *Image) ID() string { return im.id }

// Name is the image's entry name in images/; its annotation document is
// Name()+".json" in annotations/.
func (im *Image) Name() string { return im.name }

// Size is the image's size in bytes.
func (im *Image) Size() int64 { return im.size }

// ModTime is the image's creation time.
func (im *Image) ModTime() time.Time { return time.Unix(0, im.createdAt) }

// AnnotationCount is the listing's annotation_count.
func (im *Image) AnnotationCount() int { return int(im.annCount) }

// FindDir returns the subdirectory called name, or nil.
func (d *Dir) FindDir(name string) *Dir {
	i := sort.Search(len(d.dirs), func(i int) bool { return d.dirs[i].name >= name })
	if i < len(d.dirs) && d.dirs[i].name == name {
		return d.dirs[i]
	}
	return nil
}

// FindImage returns the image whose entry name is name, or nil.
func (d *Dir) FindImage(name string) *Image {
	i := sort.Search(len(d.images), func(i int) bool { return d.images[i].name >= name })
	if i < len(d.images) && d.images[i].name == name {
		return d.images[i]
	}
	return nil
}

// FindAnnotation returns the image whose annotation document is name
// ("<image name>.json"), or nil.
func (d *Dir) FindAnnotation(name string) *Image {
	stem, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return nil
	}
	return d.FindImage(stem)
}

// snapshotBuilder collects listing pages into a snapshot.
type snapshotBuilder struct {
	byPath map[string]*Dir // remote directory_path (normalized) → Dir
	// pending holds the images of each directory until build resolves names.
	pending map[*Dir][]pendingImage
	status  string
}

func newSnapshotBuilder(statusFilter string) *snapshotBuilder {
	top := &Dir{remotePath: "/"}
	return &snapshotBuilder{
		byPath:  map[string]*Dir{"": top},
		pending: map[*Dir][]pendingImage{},
		status:  statusFilter,
	}
}

// pendingImage is what build needs of a listed image. The rest of a
// client.Image (URLs, tags, status…) is dropped as each page arrives, so that
// a listing of a million images never holds a million client.Images.
type pendingImage struct {
	id, filename, dirPath string
	size, createdAt       int64
	annCount              int32
}

// add files one listing page.
func (b *snapshotBuilder) add(page []client.Image) {
	for _, img := range page {
		b.addImage(listedOf(img))
	}
}

// listedOf is what the catalog keeps of a listed image.
func listedOf(img client.Image) listedImage {
	return listedImage{ID: img.ID, Filename: img.Filename, Dir: img.DirectoryPath, Status: img.Status,
		Size: img.FileSize, Created: img.CreatedAt.UnixNano(), Annotations: int32(img.AnnotationCount)}
}

// listedImage is what the catalog keeps of a listed image before the status
// filter; it is also the form in which listings are shared between mounts.
type listedImage struct {
	ID          string `json:"i"`
	Filename    string `json:"f"`
	Dir         string `json:"d,omitempty"`
	Status      string `json:"s,omitempty"`
	Size        int64  `json:"z"`
	Created     int64  `json:"t"`
	Annotations int32  `json:"a,omitempty"`
}

// addImage files one image, unless the status filter leaves it out.
func (b *snapshotBuilder) addImage(img listedImage) {
	if b.status != "" && img.Status != b.status {
		return
	}
	d := b.dirFor(img.Dir)
	p := pendingImage{id: img.ID, filename: img.Filename, dirPath: d.remotePath, size: img.Size,
		createdAt: img.Created, annCount: img.Annotations}
	if img.Dir != d.remotePath {
		p.dirPath = img.Dir
	}
	b.pending[d] = append(b.pending[d], p)
}

// dirFor returns (creating) the directory for a directory_path.
func (b *snapshotBuilder) dirFor(remote string) *Dir {
	segs := splitRemoteDir(remote)
	key := strings.Join(segs, "/")
	if d, ok := b.byPath[key]; ok {
		return d
	}
	parent := b.dirFor(remoteParent(remote))
	d := &Dir{name: segs[len(segs)-1], remotePath: remote, key: key}
	parent.dirs = append(parent.dirs, d)
	b.byPath[key] = d
	return d
}

// remoteParent drops the last non-empty segment of a directory_path.
func remoteParent(remote string) string {
	trimmed := strings.TrimRight(remote, "/")
	i := strings.LastIndex(trimmed, "/")
	if i <= 0 {
		return "/"
	}
	return trimmed[:i]
}

// build resolves entry names and sorts every directory.
func (b *snapshotBuilder) build(now time.Time) *snapshot {
	s := &snapshot{dirs: b.byPath, loadedAt: now}
	for _, d := range b.byPath {
		sort.Slice(d.dirs, func(i, j int) bool { return d.dirs[i].name < d.dirs[j].name })
		reserved := make(map[string]bool, len(d.dirs))
		for _, sub := range d.dirs {
			reserved[sub.name] = true
		}
		imgs := b.pending[d]
		claims := make([]nameClaim, len(imgs))
		for i, img := range imgs {
			claims[i] = nameClaim{safe: sanitizeName(img.filename, maxImageNameBytes), id: img.id}
		}
		names := dedupeNamesMax(claims, reserved, maxImageNameBytes)
		d.images = make([]*Image, len(imgs))
		for i, img := range imgs {
			im := &Image{
				id:        img.id,
				name:      names[i],
				filename:  img.filename,
				remoteDir: img.dirPath,
				size:      img.size,
				createdAt: img.createdAt,
				annCount:  img.annCount,
			}
			if im.name == img.filename {
				im.filename = im.name // share one string
			}
			if im.annCount == 0 {
				im.annSize.Store(emptyAnnotationDocSize(img.filename))
			}
			d.images[i] = im
			s.count++
		}
		sort.Slice(d.images, func(i, j int) bool { return d.images[i].name < d.images[j].name })
		delete(b.pending, d)
	}
	return s
}
