package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

func tinyPNG(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 3, 2))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLocalFilesWithoutAMount drives the write path of the catalog
// directly, as package fs does: a new image, a scratch file renamed to an
// image name, a document saved in place and through an editor's backup.
func TestLocalFilesWithoutAMount(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	seed(t, srv, "set", 4, 1)
	cacheDir := t.TempDir()
	e := newEnv(t, srv, cacheDir, func(o *catalog.Options) {
		o.Writes = catalog.WriteOptions{StagingDir: filepath.Join(cacheDir, "staging")}
	})
	ctx := context.Background()
	ds, _, _ := images(t, e, "set")
	data := tinyPNG(t)

	f, err := e.Catalog.Create(ctx, ds, catalog.Path{Name: "new.png"}, 0o644)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if a := f.Attr(); a.Kind != catalog.LocalImage || a.Open != 1 {
		t.Errorf("a new .png: %+v, want an open LocalImage", a)
	}
	if _, err := e.Catalog.Create(ctx, ds, catalog.Path{Name: "new.png"}, 0o644); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of a listed local file: got %v, want fs.ErrExist", err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.Catalog.Commit(ctx, f); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	e.Catalog.Release(f)
	up := f.Attr().Uploaded
	if up == nil || up.Size() != int64(len(data)) {
		t.Fatalf("after Commit: uploaded %v, want an image of %d bytes", up, len(data))
	}
	top, _ := e.Catalog.Dir(ctx, ds, "")
	if top.FindImage("new.png") != up || e.Catalog.LocalFileAt(ds, catalog.Path{Name: "new.png"}) != nil {
		t.Errorf("the listing does not show the upload in place of the local file")
	}
	if top.FindAnnotation("new.png.json") != up {
		t.Errorf("the upload has no document under annotations/")
	}
	before := srv.Stats().StorageGets
	h, err := e.Catalog.OpenImage(ctx, ds, up)
	if err != nil {
		t.Fatal(err)
	}
	h.Release()
	if srv.Stats().StorageGets != before {
		t.Errorf("opening the upload cost a download, want it served from the cache")
	}

	s, err := e.Catalog.Create(ctx, ds, catalog.Path{Name: ".new2.png.tmp"}, 0o600)
	if err != nil || s.Attr().Kind != catalog.LocalScratch {
		t.Fatalf("Create of a hidden name: %v %+v, want a scratch file", err, s)
	}
	s.WriteAt(data, 0)
	if err := e.Catalog.Commit(ctx, s); err != nil {
		t.Errorf("Commit of a scratch file: %v", err)
	}
	e.Catalog.Release(s)
	if _, err := e.Catalog.Rename(ctx, ds, catalog.Path{Name: ".new2.png.tmp"}, catalog.Path{Name: "new2.png"}, false); err != nil {
		t.Fatalf("Rename of a scratch file to an image name: %v", err)
	}
	if s.Attr().Uploaded == nil {
		t.Errorf("the rename did not upload")
	}
	if _, err := e.Catalog.Rename(ctx, ds, catalog.Path{Name: "new2.png"}, catalog.Path{Name: "new3.png"}, false); !errors.Is(err, catalog.ErrNotPermitted) {
		t.Errorf("Rename of an image: got %v, want ErrNotPermitted", err)
	}

	// A document: in place, then the way vim's backup goes.
	sub, _ := e.Catalog.Dir(ctx, ds, "")
	var im *catalog.Image
	for _, x := range sub.Images() {
		if x.AnnotationCount() > 0 {
			im = x
		}
	}
	if im == nil {
		t.Fatal("no annotated image")
	}
	docPath := catalog.Path{Annotations: true, Name: im.Name() + ".json"}
	d, err := e.Catalog.OpenDocument(ctx, ds, docPath, im, true)
	if err != nil {
		t.Fatalf("OpenDocument: %v", err)
	}
	if err := e.Catalog.Commit(ctx, d); !errors.Is(err, catalog.ErrInvalidDocument) {
		t.Errorf("Commit of a truncated document: got %v, want ErrInvalidDocument", err)
	}
	d.WriteAt([]byte(`{"annotations": []}`), 0)
	if err := e.Catalog.Commit(ctx, d); err != nil {
		t.Fatalf("Commit of an emptied document: %v", err)
	}
	e.Catalog.Release(d)
	if n, err := e.Catalog.AnnotationSize(ctx, ds, im); err != nil || n != int64(len(routeDocument(t, e.API, im.ID()))) {
		t.Errorf("size after the save: %d %v, want the server document's", n, err)
	}
	res, err := e.Catalog.Rename(ctx, ds, docPath, catalog.Path{Annotations: true, Name: im.Name() + ".json~"}, false)
	if err != nil || res.Became == nil {
		t.Fatalf("Rename of a document to a backup name: %+v %v", res, err)
	}
	if !e.Catalog.DocumentHidden(ds, im) {
		t.Errorf("the document is listed after it was renamed away")
	}
	n, err := e.Catalog.Create(ctx, ds, docPath, 0o644)
	if err != nil || n.Attr().Kind != catalog.LocalDocument {
		t.Fatalf("Create of the hidden document's name: %v", err)
	}
	doc := `{"annotations": [{"name": "square", "type": "bbox", "bounding_box": {"x": 1, "y": 1, "w": 2, "h": 2}}]}`
	n.WriteAt([]byte(doc), 0)
	if err := e.Catalog.Commit(ctx, n); err != nil {
		t.Fatalf("Commit of the new document: %v", err)
	}
	e.Catalog.Release(n)
	if e.Catalog.DocumentHidden(ds, im) {
		t.Errorf("the document is still hidden after it was written")
	}
	if got := routeDocument(t, e.API, im.ID()); !strings.Contains(string(got), `"square"`) {
		t.Errorf("server document after the save: %s", got)
	}
	if err := e.Catalog.Remove(ctx, ds, catalog.Path{Annotations: true, Name: im.Name() + ".json~"}); err != nil {
		t.Errorf("Remove of the backup: %v", err)
	}
	if err := e.Catalog.Remove(ctx, ds, docPath); !errors.Is(err, catalog.ErrDeleteNotAllowed) {
		t.Errorf("Remove of a document without AllowDelete: got %v, want ErrDeleteNotAllowed", err)
	}
}
