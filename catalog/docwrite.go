package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Saving annotation documents. A document is written as the mount serves
// it — {"image": <filename>, "annotations": [ … ]} — and saved through the
// per-image route with exactly {"annotations": [ … ]}. It is checked first,
// so that nothing the API would refuse is sent: valid JSON, an object with
// an "annotations" array of objects, each with only the contract's keys, a
// known type with its geometry, and a class of the dataset.

// annotationKeys are the keys an annotation object may have (§4, §11): the
// API refuses any other ("class", "label", a shorthand "bbox": […]).
var annotationKeys = map[string]bool{
	"id": true, "name": true, "type": true, "confidence": true,
	"bounding_box": true, "polygon": true, "polyline": true, "keypoint": true,
}

// geometryKey is the geometry each annotation type carries.
var geometryKey = map[string]string{
	"bbox": "bounding_box", "polygon": "polygon", "polyline": "polyline", "keypoint": "keypoint",
}

// validateDocument checks a document written for im against the contract
// and the dataset's classes, and returns its annotations array as sent.
func validateDocument(doc []byte, filename string, classes map[string]bool) (json.RawMessage, error) {
	fail := func(format string, args ...any) (json.RawMessage, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidDocument}, args...)...)
	}
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 {
		return fail("the document is empty")
	}
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&top); err != nil {
		return fail("not a JSON object: %v", err)
	}
	if dec.More() {
		return fail("text after the JSON object")
	}
	if img, ok := top["image"]; ok {
		var name string
		if err := json.Unmarshal(img, &name); err != nil || name != filename {
			return fail("\"image\" is %s, but this is the document of %q", bytes.TrimSpace(img), filename)
		}
	}
	raw, ok := top["annotations"]
	if !ok {
		return fail("no \"annotations\" array")
	}
	var anns []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &anns); err != nil {
		return fail("\"annotations\" must be an array of objects: %v", err)
	}
	for i, a := range anns {
		if a == nil {
			return fail("annotations[%d] is null", i)
		}
		var unknown []string
		for k := range a {
			if !annotationKeys[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fail("annotations[%d] has unknown key %q (allowed: id, name, type, confidence, bounding_box, polygon, polyline, keypoint)", i, unknown[0])
		}
		var name, typ string
		if err := json.Unmarshal(a["name"], &name); err != nil || name == "" {
			return fail("annotations[%d].name must be a class name", i)
		}
		if err := json.Unmarshal(a["type"], &typ); err != nil || geometryKey[typ] == "" {
			return fail("annotations[%d].type must be bbox, polygon, polyline or keypoint", i)
		}
		if g := a[geometryKey[typ]]; len(g) == 0 || g[0] != '{' {
			return fail("annotations[%d] of type %s needs a %q object", i, typ, geometryKey[typ])
		}
		if !classes[name] {
			return fail("annotations[%d]: class %q is not a class of the dataset (%s)", i, name, classList(classes))
		}
	}
	return raw, nil
}

func classList(classes map[string]bool) string {
	if len(classes) == 0 {
		return "it has none"
	}
	names := make([]string, 0, len(classes))
	for n := range classes {
		names = append(names, n)
	}
	slices.Sort(names)
	return "its classes: " + strings.Join(names, ", ")
}

// classesOf returns the dataset's class names. refresh fetches the
// dataset first (a class may have been added since it was listed).
func (c *Catalog) classesOf(ctx context.Context, ds *Dataset, refresh bool) map[string]bool {
	if refresh {
		if meta, err := c.opts.API.GetDataset(ctx, ds.id); err == nil {
			ds.setMeta(*meta)
		}
	}
	out := map[string]bool{}
	for _, cl := range ds.Meta().Classes {
		out[cl.Name] = true
	}
	return out
}

// OpenDocument opens im's document for writing: the write session of the
// document, made for the first writer (holding the current document unless
// truncate), shared by the others. Release ends the caller's handle.
func (c *Catalog) OpenDocument(ctx context.Context, ds *Dataset, p Path, im *Image, truncate bool) (*LocalFile, error) {
	if !c.Writable() {
		return nil, ErrReadOnly
	}
	l := &ds.local
	l.mu.Lock()
	var f *LocalFile
	if d := l.docs[im.id]; d != nil && d.session != nil {
		f = d.session
		f.mu.Lock()
		f.opens++
		f.mu.Unlock()
	}
	l.mu.Unlock()
	if f != nil {
		if truncate {
			if err := f.Truncate(0); err != nil {
				c.Release(f)
				return nil, err
			}
		}
		return f, nil
	}
	var current []byte
	if !truncate {
		doc, err := c.OpenAnnotation(ctx, ds, im)
		if err != nil {
			return nil, err
		}
		current, err = docBytes(doc)
		doc.Release()
		if err != nil {
			return nil, err
		}
	}
	d, err := c.Dir(ctx, ds, p.Dir)
	if err != nil {
		return nil, err
	}
	f, err = c.newLocal(ds, p, d.remotePath, LocalDocument, im, 0o644)
	if err != nil {
		return nil, err
	}
	if len(current) > 0 {
		if _, err := f.staged.data.WriteAt(current, 0); err != nil {
			f.staged.remove()
			return nil, fmt.Errorf("stage document: %w", err)
		}
		f.size = int64(len(current))
	}
	// Opening is no change: nothing to save until a write.
	f.committed = f.version
	f.saved = true
	f.opens = 1
	l.mu.Lock()
	st := l.doc(im.id)
	if other := st.session; other != nil {
		other.mu.Lock()
		other.opens++
		other.mu.Unlock()
		l.mu.Unlock()
		f.staged.remove()
		if truncate {
			if err := other.Truncate(0); err != nil {
				c.Release(other)
				return nil, err
			}
		}
		return other, nil
	}
	st.session = f
	l.mu.Unlock()
	if truncate {
		// An open with O_TRUNC changes the document even if nothing is
		// written: saving an empty document is refused at close.
		f.mu.Lock()
		f.version++
		f.mu.Unlock()
	}
	return f, nil
}

// docBytes reads an open document whole.
func docBytes(doc Doc) ([]byte, error) {
	if doc.Handle == nil {
		return doc.Data, nil
	}
	buf := make([]byte, doc.Handle.Size())
	if _, err := doc.Handle.File().ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read document: %w", err)
	}
	return buf, nil
}

// DocumentSession returns the open write session of im's document, if any:
// while it is open, the document reads as what was written.
func (c *Catalog) DocumentSession(ds *Dataset, im *Image) *LocalFile {
	l := &ds.local
	if l.edits.Load() == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.docs[im.id]; d != nil {
		return d.session
	}
	return nil
}

// commitDocument validates a LocalDocument and saves it.
func (c *Catalog) commitDocument(ctx context.Context, f *LocalFile) error {
	f.mu.Lock()
	at, im := f.at, f.doc
	f.mu.Unlock()
	data, err := f.content()
	if err != nil {
		return err
	}
	if err := c.saveDocument(ctx, f.ds, im, at, data); err != nil {
		return err
	}
	f.mu.Lock()
	f.saved = true
	mtime := f.mtime
	f.mu.Unlock()
	c.setEditTime(f.ds, im, mtime)
	f.markComplete()
	if f.listed {
		c.endListed(f)
	}
	return nil
}

// endListed ends the entry of a listed document that was saved: the
// document is listed again in its place.
func (c *Catalog) endListed(f *LocalFile) {
	l := &f.ds.local
	f.mu.Lock()
	at := f.at
	f.listed = false
	f.mu.Unlock()
	l.mu.Lock()
	if l.files[at.key()] == f {
		delete(l.files, at.key())
	}
	l.mu.Unlock()
}

// saveDocument validates data as im's document and saves it.
func (c *Catalog) saveDocument(ctx context.Context, ds *Dataset, im *Image, at Path, data []byte) error {
	if int64(len(data)) > c.opts.Writes.MaxFileBytes {
		return fmt.Errorf("%s: %w", at, ErrTooLarge)
	}
	anns, err := validateDocument(data, im.filename, c.classesOf(ctx, ds, false))
	if err != nil && strings.Contains(err.Error(), "is not a class of the dataset") {
		anns, err = validateDocument(data, im.filename, c.classesOf(ctx, ds, true))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", at, err)
	}
	count, err := c.saveAnnotations(ctx, ds, im, anns)
	if err != nil {
		return fmt.Errorf("save %s: %w", at, err)
	}
	c.documentChanged(ds, im, count)
	c.writes.saves.Add(1)
	c.log.Info("saved annotations", "path", at.String(), "dataset", ds.Meta().Name, "annotations", count)
	return nil
}

// documentChanged records that im's document changed through this mount:
// the cached copy, the export snapshot's and the known size are dropped,
// and the next read fetches the server's document (count -1) or serves
// the empty one (count 0).
func (c *Catalog) documentChanged(ds *Dataset, im *Image, count int) {
	oldKey := c.annotationRequest(ds, im).Key
	l := &ds.local
	l.mu.Lock()
	d := l.doc(im.id)
	d.edited = true
	d.editGen++
	d.count = count
	d.hidden = false
	d.editedAt = time.Now()
	l.mu.Unlock()
	c.opts.Cache.Remove(oldKey)
	c.opts.Cache.Remove(c.baseAnnotationKey(ds, im))
	// No export snapshot serves it again: reads skip edited documents
	// (exportDoc), and edited never goes back to false.
	// The cached export ZIP holds the old document: the next mount must
	// not load it.
	c.opts.Cache.Remove(c.exportKey(ds))
	im.annSize.Store(0)
	if count == 0 {
		im.annSize.Store(emptyAnnotationDocSize(im.filename))
	}
}

// setEditTime sets the modification time of im's document.
func (c *Catalog) setEditTime(ds *Dataset, im *Image, t time.Time) {
	l := &ds.local
	l.mu.Lock()
	l.doc(im.id).editedAt = t
	l.mu.Unlock()
}

// errNoWriteRoute is returned when the API client has no route for a
// change.
var errNoWriteRoute = fmt.Errorf("the API client has no route for this change: %w", ErrNotPermitted)
