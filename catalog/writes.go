package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // DecodeConfig of GIFs
	_ "image/jpeg"
	_ "image/png"
	"path"
	"strings"
	"sync/atomic"

	_ "golang.org/x/image/bmp" // DecodeConfig of BMPs, TIFFs and WebPs
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/pictofs/pictofs/client"
)

// Writes. A mount with a staging directory (WriteOptions.StagingDir) takes
// writes where the API has a route for them, and refuses the rest with a
// precise error:
//
//   - A new file under images/ is staged on disk while it is open and
//     uploaded as a new image when it is closed (Commit): upload URL, an
//     unauthenticated PUT, register — the bulk routes when several files
//     close at once. Its bytes then fill the cache, so reading it back costs
//     no download. Images are never overwritten, renamed or changed.
//   - Writing an image's annotation document (annotations/…/X.json) stages
//     the new document; Commit validates it (JSON, the contract's shape,
//     classes of the dataset) and saves it through the per-image route.
//   - Names starting with "." (and, under annotations/, every name that is
//     not the document of an image) are scratch files: staged and listed in
//     the mount, never sent. Renaming one to an image's name uploads it,
//     to a document's name saves it, which is how rsync, vim, emacs and
//     atomic writers work.
//   - Removing (unlink of an image or a document, rmdir of a folder that
//     holds images) needs WriteOptions.AllowDelete: it archives the image,
//     or clears the document's annotations.
//
// Every staged file has a sidecar beside it (dataset, folder, name, content
// type, whether it was complete), so a file written when the process died is
// still there at the next mount, which uploads the complete ones and reports
// and keeps the rest (RecoverStaged).

// Errors of writes, mapped to errnos by package fs.
var (
	// ErrReadOnly: the catalog takes no writes (no staging directory).
	ErrReadOnly = errors.New("this mount takes no writes")
	// ErrDeleteNotAllowed: a removal on a mount without AllowDelete.
	ErrDeleteNotAllowed = errors.New("removing images, documents and folders is off on this mount (mount with --allow-delete to allow it)")
	// ErrNotPermitted: a change the API has no route for (renaming or
	// changing an uploaded image, a remote folder, dataset.json…).
	ErrNotPermitted = errors.New("the Pictograph API has no way to make this change")
	// ErrUnsupportedType: a file under images/ whose extension is not one
	// of the image types the API takes, or whose bytes are not an image.
	ErrUnsupportedType = errors.New("not an image type the API takes (jpg, jpeg, png, gif, bmp, webp, tif, tiff, heic, heif)")
	// ErrEmptyFile: an image with no bytes.
	ErrEmptyFile = errors.New("empty file")
	// ErrTooLarge: a file over WriteOptions.MaxFileBytes.
	ErrTooLarge = errors.New("file over the size limit of this mount")
	// ErrInvalidDocument: an annotation document that the API would refuse.
	ErrInvalidDocument = errors.New("invalid annotation document")
	// ErrDirNotEmpty: rmdir of a folder that still holds files.
	ErrDirNotEmpty = errors.New("folder is not empty")
	// ErrCrossDataset: a rename between datasets.
	ErrCrossDataset = errors.New("cannot move files between datasets")
	// ErrBadName: a name the API would store differently from how the
	// mount shows it (control characters, invalid UTF-8, too long).
	ErrBadName = errors.New("name cannot be stored as it is")
)

// Defaults of WriteOptions.
const (
	DefaultMaxFileBytes = 100 << 20
	DefaultUploads      = 8
)

// WriteOptions configures writes. The zero value takes no writes.
type WriteOptions struct {
	// StagingDir holds the bytes of files being written, with a sidecar
	// each, until they are uploaded or saved. It must be private to the
	// user (it is created 0700) and may be shared by mounts of one cache.
	// Empty: every write is refused with ErrReadOnly.
	StagingDir string
	// AllowDelete lets unlink archive images and clear documents, and
	// rmdir remove folders that held images. Without it they are refused
	// with ErrDeleteNotAllowed. Local files are removed either way.
	AllowDelete bool
	// MaxFileBytes caps a file written through the mount. Default 100 MiB.
	MaxFileBytes int64
	// Uploads bounds the PUTs of image bytes in flight. Default 8.
	Uploads int
}

func (o WriteOptions) validate() error {
	switch {
	case o.MaxFileBytes < 0:
		return fmt.Errorf("largest file %d: must not be negative", o.MaxFileBytes)
	case o.Uploads < 0:
		return fmt.Errorf("uploads in flight %d: must not be negative", o.Uploads)
	}
	return nil
}

func (o *WriteOptions) setDefaults() {
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.Uploads == 0 {
		o.Uploads = DefaultUploads
	}
}

// writeState is the catalog's state for writes.
type writeState struct {
	// staging is nil when the catalog takes no writes.
	staging *staging
	// putSlots bounds the PUTs in flight (WriteOptions.Uploads).
	putSlots chan struct{}

	uploads, saves, archived, cleared atomic.Int64
}

// WriteStats counts the changes made through the mount.
type WriteStats struct {
	Uploads  int64 // images uploaded
	Saves    int64 // annotation documents saved
	Archived int64 // images archived by unlink
	Cleared  int64 // documents cleared by unlink
}

// WriteStats returns the counts of changes made through the mount.
func (c *Catalog) WriteStats() WriteStats {
	w := &c.writes
	return WriteStats{Uploads: w.uploads.Load(), Saves: w.saves.Load(), Archived: w.archived.Load(), Cleared: w.cleared.Load()}
}

// openWrites opens the staging directory, if writes are configured.
func (c *Catalog) openWrites() error {
	c.writes.putSlots = make(chan struct{}, c.opts.Writes.Uploads)
	if c.opts.Writes.StagingDir == "" {
		return nil
	}
	if _, ok := c.opts.API.(uploadAPI); !ok {
		return errors.New("catalog: Writes.StagingDir is set but the API cannot upload")
	}
	st, err := openStaging(c.opts.Writes.StagingDir)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	c.writes.staging = st
	return nil
}

// uploadAPI is the part of the API that uploads one image (§5).
type uploadAPI interface {
	RequestUploadURL(ctx context.Context, req client.UploadURLRequest) (*client.UploadURL, error)
	PutUpload(ctx context.Context, uploadURL, contentType string, body []byte) error
	RegisterImage(ctx context.Context, req client.RegisterImageRequest) (*client.Image, error)
}

// Writable reports whether the catalog takes writes.
func (c *Catalog) Writable() bool {
	return c.writes.staging != nil
}

// imageTypes maps the extensions the API takes (§11) to content types.
var imageTypes = map[string]string{
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
	".bmp": "image/bmp", ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff",
	".heic": "image/heic", ".heif": "image/heif",
}

// ContentTypeOf returns the content type of an image file name, from its
// extension (case-insensitive), or "" when the API does not take it.
func ContentTypeOf(name string) string {
	return imageTypes[strings.ToLower(path.Ext(name))]
}

// IsScratchName reports whether name is a local scratch file in images/: a
// hidden file (rsync's ".name.XXXXXX", editors' swap files) or a backup
// ("name~"). Scratch files are staged and listed, never uploaded.
func IsScratchName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~")
}

// imageMagic reports whether data starts like an image of one of the types
// the API takes, whatever its extension says (a PNG named .jpg is common
// and the API takes it).
func imageMagic(data []byte) bool {
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}),
		bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")),
		bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")),
		bytes.HasPrefix(data, []byte("BM")),
		bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")),
		len(data) >= 12 && bytes.Equal(data[:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WEBP")):
		return true
	case len(data) >= 12 && bytes.Equal(data[4:8], []byte("ftyp")):
		switch string(data[8:12]) {
		case "heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1", "avif":
			return true
		}
	}
	return false
}

// imageSize returns an image's width and height, or zeros for a format the
// standard decoders do not read (HEIC): the register route takes 0 as
// "unknown".
func imageSize(data []byte) (int, int) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0, 0
	}
	return cfg.Width, cfg.Height
}

// checkImage checks that data can be uploaded as name.
func (c *Catalog) checkImage(name string, data []byte) (contentType string, err error) {
	contentType = ContentTypeOf(name)
	switch {
	case contentType == "":
		return "", fmt.Errorf("%s: %w", name, ErrUnsupportedType)
	case len(data) == 0:
		return "", fmt.Errorf("%s: %w: nothing to upload", name, ErrEmptyFile)
	case int64(len(data)) > c.opts.Writes.MaxFileBytes:
		return "", fmt.Errorf("%s: %d bytes: %w (%d bytes)", name, len(data), ErrTooLarge, c.opts.Writes.MaxFileBytes)
	case !imageMagic(data):
		return "", fmt.Errorf("%s: its bytes are not an image: %w", name, ErrUnsupportedType)
	}
	return contentType, nil
}

// checkNewName checks that a name made through the mount would be listed
// under the same name once it is on the server.
func checkNewName(name string) error {
	if name == "" || name == "." || name == ".." || SanitizeName(name) != name || len(name) > maxImageNameBytes {
		return fmt.Errorf("%q: %w", name, ErrBadName)
	}
	return nil
}

// isPermanent reports whether a failed upload or save cannot succeed by
// trying again as it is: the file is then dropped when it is closed (the
// caller was told), while a file that failed for a transient reason stays
// staged and listed, and the next mount tries it again.
func isPermanent(err error) bool {
	for _, e := range []error{ErrUnsupportedType, ErrEmptyFile, ErrTooLarge, ErrInvalidDocument, ErrBadName,
		client.ErrConflict, client.ErrValidation, client.ErrForbidden, client.ErrUnauthorized,
		client.ErrNotFound, client.ErrPaymentRequired, ErrNotPermitted} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
