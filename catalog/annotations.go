package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/prefetch"
)

// A document is an image's annotation JSON as the official SDK's download
// writes it: the per-image route's body re-serialized with two-space
// indentation, every field kept in its order. Documents come, in this order,
// from the dataset's bulk export snapshot (no request), from the disk cache
// (fetched within AnnotationTTL), or from the per-image route (one request).
// An image whose listing says annotation_count 0 gets the empty document
// with no request at all.

// Doc is an open annotation document: a pinned cache handle, or bytes.
// Exactly one of Handle and Data is set.
type Doc struct {
	Handle *blobcache.Handle
	Data   []byte
}

// Size is the document's length in bytes.
func (d Doc) Size() int64 {
	if d.Handle != nil {
		return d.Handle.Size()
	}
	return int64(len(d.Data))
}

// Release releases the handle, if any.
func (d Doc) Release() {
	if d.Handle != nil {
		d.Handle.Release()
	}
}

// KnownAnnotationSize returns the size of an image's document when it is
// known without a request: an empty document, one in the export snapshot,
// or one fetched before. Listings use it, so that naming documents never
// costs one.
func (c *Catalog) KnownAnnotationSize(ds *Dataset, im *Image) (int64, bool) {
	if ds.annotationCount(im) == 0 {
		return emptyAnnotationDocSize(im.filename), true
	}
	if _, ref, ok := c.exportDoc(ds, im); ok {
		return ref.size, true
	}
	if n := im.annSize.Load(); n > 0 {
		return n, true
	}
	return 0, false
}

// AnnotationSize returns the size of an image's document, fetching the
// document if it is not known (stat must never report a false size).
func (c *Catalog) AnnotationSize(ctx context.Context, ds *Dataset, im *Image) (int64, error) {
	if n, ok := c.KnownAnnotationSize(ds, im); ok {
		c.noteDocumentNeed(ds)
		return n, nil
	}
	doc, err := c.OpenAnnotation(ctx, ds, im)
	if err != nil {
		return 0, err
	}
	defer doc.Release()
	return doc.Size(), nil
}

// OpenAnnotation returns an image's document.
func (c *Catalog) OpenAnnotation(ctx context.Context, ds *Dataset, im *Image) (Doc, error) {
	c.noteDocumentNeed(ds)
	if ds.annotationCount(im) == 0 {
		c.stats.docsEmpty.Add(1)
		return Doc{Data: emptyAnnotationDoc(im.filename)}, nil
	}
	if doc, ok, err := c.documentFromExport(ds, im); ok || err != nil {
		return doc, err
	}
	req := c.annotationRequest(ds, im)
	if h, ok := c.opts.Cache.Get(req.Key, req.MaxAge); ok {
		return Doc{Handle: h}, nil
	}
	// While the export builds, wait for it (bounded) rather than spend a
	// request on every document it is about to cover.
	if c.waitForExport(ctx, ds) {
		if doc, ok, err := c.documentFromExport(ds, im); ok || err != nil {
			return doc, err
		}
	}
	ctx, cancel := c.waitCtx(ctx)
	defer cancel()
	h, err := c.opts.Prefetcher.Get(ctx, req)
	if errors.Is(err, context.DeadlineExceeded) {
		err = c.waitError("annotation document", err)
	}
	if err != nil {
		return Doc{}, fmt.Errorf("annotation document of %s: %w", im.name, err)
	}
	im.annSize.Store(h.Size())
	return Doc{Handle: h}, nil
}

// noteDocumentNeed marks the dataset's documents as being read, and starts
// a build of its bulk snapshot if it has none fresh enough and none runs.
func (c *Catalog) noteDocumentNeed(ds *Dataset) {
	ds.docsRead.Store(true)
	c.startBulk(ds)
}

// annotationRequest is the prefetch request for an annotated image's
// document through the per-image route.
func (c *Catalog) annotationRequest(ds *Dataset, im *Image) prefetch.Request {
	return prefetch.Request{
		Key:    c.annotationKey(ds, im),
		Size:   -1,
		Name:   im.name + ".json",
		MaxAge: c.opts.AnnotationTTL,
		Fetch: func(ctx context.Context, w io.Writer) error {
			raw, err := c.opts.API.AnnotationFile(ctx, im.id)
			if err != nil {
				return err
			}
			c.stats.docsPerImage.Add(1)
			doc, err := formatAnnotationDoc(raw)
			if err != nil {
				return fmt.Errorf("annotation document of image %s: %w", im.id, err)
			}
			_, err = w.Write(doc)
			return err
		},
	}
}

// documentAhead starts the fetch of an image's document when its image is
// opened, once the dataset's documents are being read: the reader asks for
// it next, so the two round trips overlap. It spends a request only where
// the reader would have spent it (no snapshot covers the document and it is
// not cached), only while the budget has room, and never while an export
// that will cover it is building.
func (c *Catalog) documentAhead(ds *Dataset, im *Image) {
	if ds.annotationCount(im) == 0 || !ds.docsRead.Load() {
		return
	}
	if _, _, ok := c.exportDoc(ds, im); ok || c.exportBuilding(ds) {
		return
	}
	c.fetchDocumentsAhead(ds, []*Image{im})
}

// fetchDocumentsAhead fetches documents in the background with the priority
// of a read, at most cap(docAhead) at a time; a document that does not get a
// slot at once is left to its reader.
func (c *Catalog) fetchDocumentsAhead(ds *Dataset, ims []*Image) {
	for _, im := range ims {
		if !c.budgetAllows(1) {
			return
		}
		req := c.annotationRequest(ds, im)
		if c.opts.Cache.Contains(req.Key) {
			continue
		}
		select {
		case c.docAhead <- struct{}{}:
		default:
			return
		}
		c.stats.docsAhead.Add(1)
		c.goBackground(func() {
			defer func() { <-c.docAhead }()
			ctx, cancel := c.waitCtx(c.ctx)
			defer cancel()
			h, err := c.opts.Prefetcher.Get(ctx, req)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					c.log.Debug("document readahead failed", "name", req.Name, "err", err)
				}
				return
			}
			im.annSize.Store(h.Size())
			h.Release()
		})
	}
}

// budgetAllows reports whether n speculative requests leave the client's
// hourly budget above the low-water mark.
func (c *Catalog) budgetAllows(n int) bool {
	b, ok := c.opts.API.(budgeter)
	if !ok {
		return true
	}
	left, limited := b.BudgetLeft()
	return !limited || left-n >= c.opts.Bulk.LowBudget
}

// budgetLow reports whether the client's hourly budget is below the
// low-water mark.
func (c *Catalog) budgetLow() bool { return !c.budgetAllows(0) }

// statAheadMax is the most documents a run of sequential stats fetches
// ahead (ls -l, du, tar without a bulk snapshot).
const statAheadMax = 32

// statAheadState follows stats of documents in one directory: stats in
// listing order widen a window of documents fetched ahead, as a sequential
// read widens a read window; any other stat closes it.
type statAheadState struct {
	mu       sync.Mutex // guards after, window, aheadEnd
	after    int        // index+1 of the image statted last; 0 before the first
	window   int
	aheadEnd int // documents before this index were already fetched ahead
}

// StatAhead is called for every stat of a document of d. When the stats
// follow listing order, the next documents are fetched in parallel ahead of
// them (a window that doubles up to statAheadMax, within the budget), so
// that ls -l of a folder costs the documents it shows, not their round trips
// one after another. Nothing is fetched ahead while an export that will
// cover them builds, nor for documents already known.
func (c *Catalog) StatAhead(ds *Dataset, d *Dir, im *Image) {
	i := indexOf(d.images, im)
	if i < 0 {
		return
	}
	s := &d.statAhead
	s.mu.Lock()
	if s.after > 0 && i == s.after {
		s.window = min(max(2*s.window, 1), statAheadMax)
	} else {
		s.window, s.aheadEnd = 0, 0
	}
	s.after = i + 1
	start, end := max(i+1, s.aheadEnd), min(i+1+s.window, len(d.images))
	if end > start {
		s.aheadEnd = end
	}
	s.mu.Unlock()
	if end <= start || c.exportBuilding(ds) {
		return
	}
	var ahead []*Image
	for _, next := range d.images[start:end] {
		if _, known := c.KnownAnnotationSize(ds, next); !known {
			ahead = append(ahead, next)
		}
	}
	c.fetchDocumentsAhead(ds, ahead)
}

func indexOf(ims []*Image, im *Image) int {
	lo, hi := 0, len(ims)
	for lo < hi {
		mid := (lo + hi) / 2
		if ims[mid].name < im.name {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(ims) && ims[lo] == im {
		return lo
	}
	return -1
}

// formatAnnotationDoc re-serializes a document with two-space indentation,
// keeping every field in its order, as the official SDK's download writes it.
func formatAnnotationDoc(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// emptyAnnotationDoc is the document of an image without annotations, served
// with no request.
func emptyAnnotationDoc(filename string) []byte {
	doc, _ := json.MarshalIndent(struct {
		Image       string   `json:"image"`
		Annotations []string `json:"annotations"`
	}{filename, []string{}}, "", "  ")
	return doc
}

// emptyAnnotationDocSize is len(emptyAnnotationDoc(filename)), computed
// without building the document for the common names that JSON copies as
// they are (printable ASCII but for ", \, <, > and &), so that listing a
// million images does not encode a million documents.
func emptyAnnotationDocSize(filename string) int64 {
	for i := 0; i < len(filename); i++ {
		switch c := filename[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return int64(len(emptyAnnotationDoc(filename)))
		}
	}
	return int64(len("{\n  \"image\": \"\",\n  \"annotations\": []\n}") + len(filename))
}
