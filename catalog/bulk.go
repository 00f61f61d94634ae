package catalog

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/prefetch"
)

// Bulk annotations. Each annotation document costs one API request on the
// per-image route; an annotations-only export of a dataset costs a handful
// (create, a few polls, one download link, one delete) and holds every
// document. So the first time a dataset's documents are needed, the catalog
// starts one `pictograph` export of it, downloads the ZIP into the disk
// cache when it completes (where it survives a remount for AnnotationTTL),
// and serves every document it can match from there.
//
// The ZIP layout of a `pictograph` export is not documented. The catalog
// recognises members that hold one document each, and matches a member to
// an image exactly: by its path (`[annotations/]<directory_path>/<filename>.json`),
// or by an image id inside it. Anything else stays unmatched and its
// document comes from the per-image route: a layout the code does not
// recognise costs requests, never a wrong document. Before a snapshot is
// used, documents it matched are compared byte for byte with the per-image
// route's (documents already fetched, or one fetched to check); one that
// differs rejects the snapshot.
//
// While an export builds, a document read waits for it for up to
// BulkOptions.Wait (WaitTimeout when the hourly budget runs low), since it
// usually lands in seconds and then answers every document with no request;
// past that, documents come from the per-image route.

// exportFormat is the export format the catalog reads.
const exportFormat = "pictograph"

// verifySamples is how many matched documents of each shape already in the
// cache are compared with the per-image route before a snapshot is trusted.
const verifySamples = 2

// steadyPolls is how many one-second polls a build gets before the
// interval grows.
const steadyPolls = 5

// maxShapes is the most document shapes an export may mix: past it the
// layout is not one the catalog can check cheaply, and is not used.
const maxShapes = 3

// bulkState is a dataset's bulk annotation state.
type bulkState struct {
	mu sync.Mutex // guards every field below
	// snap is the current snapshot (nil before the first; stale once older
	// than AnnotationTTL).
	snap *exportSnapshot
	// building is closed when the running build ends; nil when none runs.
	building chan struct{}
	// retryAt holds back a new build after a failed one.
	retryAt time.Time
	// pending is the export this mount made and has not deleted yet.
	pending *madeExport
	seq     int
}

// madeExport names an export this mount created.
type madeExport struct {
	dataset, name string
}

// exportSnapshot is a downloaded export, pinned in the cache while in use.
type exportSnapshot struct {
	h       *blobcache.Handle
	docs    map[string]docRef // image id → member
	builtAt time.Time
	// zipID names the ZIP file by its size and fill time, which stay the
	// same for as long as the cache keeps it: the documents cut out of it
	// are cached under it, so a remount finds them.
	zipID string

	mu      sync.Mutex // guards refs, retired
	refs    int
	retired bool
}

// docRef locates one document in the export ZIP.
type docRef struct {
	off, csize int64  // the member's data in the ZIP file
	method     uint16 // zip.Store or zip.Deflate
	size       int64  // length of the served (re-indented) document
}

func (s *exportSnapshot) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired {
		return false
	}
	s.refs++
	return true
}

func (s *exportSnapshot) release() {
	s.mu.Lock()
	s.refs--
	last := s.retired && s.refs == 0
	s.mu.Unlock()
	if last {
		s.h.Release()
	}
}

// retire drops the snapshot; its file is released when the last reader is
// done with it.
func (s *exportSnapshot) retire() {
	s.mu.Lock()
	already := s.retired
	s.retired = true
	last := !already && s.refs == 0
	s.mu.Unlock()
	if last {
		s.h.Release()
	}
}

// fresh reports whether documents may still be served from s.
func (c *Catalog) fresh(s *exportSnapshot) bool {
	return s != nil && time.Since(s.builtAt) < c.opts.AnnotationTTL
}

// exportKey is the cache key of a dataset's export ZIP.
func (c *Catalog) exportKey(ds *Dataset) blobcache.Key {
	return blobcache.KeyOf(c.opts.Namespace, "export", exportFormat, ds.id)
}

// startBulk starts a build of the dataset's snapshot unless one runs, the
// current one is fresh enough, bulk annotations are off, or a build failed
// recently. A snapshot in its last fifth of AnnotationTTL is rebuilt ahead
// of time, so a long training run never falls back to the per-image route.
func (c *Catalog) startBulk(ds *Dataset) {
	if c.opts.Bulk.Disable {
		return
	}
	b := &ds.bulk
	b.mu.Lock()
	if b.building != nil || time.Now().Before(b.retryAt) ||
		(b.snap != nil && time.Since(b.snap.builtAt) < c.opts.AnnotationTTL*4/5) {
		b.mu.Unlock()
		return
	}
	done := make(chan struct{})
	b.building = done
	b.seq++
	seq := b.seq
	b.mu.Unlock()
	c.goBackground(func() {
		snap, err := c.buildSnapshot(ds, seq)
		b.mu.Lock()
		old := b.snap
		switch {
		case err == nil:
			b.snap = snap
			b.retryAt = time.Time{}
		case c.ctx.Err() == nil:
			b.retryAt = time.Now().Add(c.opts.AnnotationTTL)
		}
		b.building = nil
		b.mu.Unlock()
		close(done)
		if err == nil && old != nil {
			old.retire()
		}
		if err != nil && c.ctx.Err() == nil {
			c.stats.exportsFailed.Add(1)
			c.log.Warn("bulk annotations unavailable; documents come from the per-image route",
				"dataset", ds.Meta().Name, "err", err, "retry_in", c.opts.AnnotationTTL)
		}
	})
}

// exportDoc returns the member of im in the dataset's fresh snapshot, and
// that snapshot. A snapshot's docs never change once published; a document
// edited through this mount is skipped here (documentEdited) instead.
func (c *Catalog) exportDoc(ds *Dataset, im *Image) (*exportSnapshot, docRef, bool) {
	b := &ds.bulk
	b.mu.Lock()
	snap := b.snap
	b.mu.Unlock()
	if snap == nil || !c.fresh(snap) || ds.documentEdited(im) {
		return nil, docRef{}, false
	}
	ref, ok := snap.docs[im.id]
	return snap, ref, ok
}

// exportBuilding reports whether a build runs that will give the dataset a
// snapshot it does not have yet.
func (c *Catalog) exportBuilding(ds *Dataset) bool {
	b := &ds.bulk
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.building != nil && !c.fresh(b.snap)
}

// waitForExport waits for a build that will give the dataset a snapshot, for
// up to BulkOptions.Wait, or WaitTimeout when the budget runs low. It
// reports whether the build ended meanwhile.
func (c *Catalog) waitForExport(ctx context.Context, ds *Dataset) bool {
	b := &ds.bulk
	b.mu.Lock()
	done := b.building
	fresh := c.fresh(b.snap)
	b.mu.Unlock()
	if done == nil || fresh {
		return false
	}
	wait := c.opts.Bulk.Wait
	if c.budgetLow() {
		wait = c.opts.WaitTimeout
		c.log.Info("request budget low: reading documents waits for the export", "dataset", ds.Meta().Name, "wait", wait)
	}
	if wait <= 0 {
		return false
	}
	c.stats.exportWaits.Add(1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// documentFromExport reads im's document from the dataset's fresh snapshot.
// ok is false when the snapshot does not cover im.
func (c *Catalog) documentFromExport(ds *Dataset, im *Image) (doc Doc, ok bool, err error) {
	snap, ref, ok := c.exportDoc(ds, im)
	if !ok {
		return Doc{}, false, nil
	}
	// Each document read from the snapshot is kept as a blob of its own,
	// named after the snapshot it came from, so that later opens (the next
	// epoch, a remount) are served from a cache file, through passthrough.
	key := blobcache.KeyOf(c.opts.Namespace, "export-document", exportFormat, ds.id, im.id, snap.zipID)
	if h, ok := c.opts.Cache.Get(key, 0); ok {
		c.stats.docsFromExport.Add(1)
		return Doc{Handle: h}, true, nil
	}
	if !snap.acquire() {
		return Doc{}, false, nil
	}
	data, err := readMember(snap.h, ref)
	snap.release()
	if err != nil || int64(len(data)) != ref.size {
		c.log.Warn("export snapshot unreadable; documents come from the per-image route", "dataset", ds.Meta().Name, "err", err)
		c.dropSnapshot(ds, snap)
		return Doc{}, false, nil
	}
	c.stats.docsFromExport.Add(1)
	h, err := c.opts.Cache.Fill(c.ctx, key, int64(len(data)), func(_ context.Context, w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return Doc{Data: data}, true, nil // no room in the cache: served from memory
	}
	return Doc{Handle: h}, true, nil
}

// dropSnapshot retires snap if it is still the dataset's snapshot.
func (c *Catalog) dropSnapshot(ds *Dataset, snap *exportSnapshot) {
	b := &ds.bulk
	b.mu.Lock()
	current := b.snap == snap
	if current {
		b.snap = nil
		b.retryAt = time.Now().Add(c.opts.AnnotationTTL)
	}
	b.mu.Unlock()
	if current {
		c.opts.Cache.Remove(c.exportKey(ds))
		snap.retire()
	}
}

// readMember returns the re-indented document of one ZIP member.
func readMember(h *blobcache.Handle, ref docRef) ([]byte, error) {
	var r io.Reader = io.NewSectionReader(h.File(), ref.off, ref.csize)
	switch ref.method {
	case zip.Store:
	case zip.Deflate:
		fr := flate.NewReader(r)
		defer fr.Close()
		r = fr
	default:
		return nil, fmt.Errorf("zip method %d", ref.method)
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxDocumentBytes {
		return nil, errors.New("document over the size limit")
	}
	return formatAnnotationDoc(raw)
}

// maxDocumentBytes bounds one document read from an export.
const maxDocumentBytes = 64 << 20

// buildSnapshot makes the dataset's snapshot: from the cached ZIP when it is
// fresh, else from a new export.
func (c *Catalog) buildSnapshot(ds *Dataset, seq int) (*exportSnapshot, error) {
	ctx := c.ctx
	snap, err := c.snapshot(ctx, ds)
	if err != nil {
		return nil, err
	}
	key := c.exportKey(ds)
	if h, ok := c.opts.Cache.Get(key, c.opts.AnnotationTTL); ok {
		// A ZIP this cache checked before needs no new check: a remount
		// costs no request.
		s, err := c.loadSnapshot(ctx, ds, snap, h, fileTime(h), !c.opts.Cache.Contains(c.verifiedKey(ds, zipID(h))))
		if err == nil {
			c.log.Info("bulk annotations from the cache", "dataset", ds.Meta().Name, "documents", len(s.docs))
			return s, nil
		}
		c.log.Warn("cached export snapshot not used", "dataset", ds.Meta().Name, "err", err)
		c.opts.Cache.Remove(key)
	}
	// With a shared tier, one node builds the export and the others load
	// it from there; its publisher checked it.
	h, at, lease, err := c.exportFromOtherNode(ctx, ds)
	if err != nil {
		return nil, err
	}
	if h != nil {
		s, err := c.loadSnapshot(ctx, ds, snap, h, at, false)
		if err == nil {
			c.log.Info("bulk annotations from the shared cache", "dataset", ds.Meta().Name, "documents", len(s.docs))
			return s, nil
		}
		c.opts.Cache.Remove(key)
		return nil, err
	}
	if lease != nil {
		defer lease.Release()
	}
	h, err = c.downloadExport(ctx, ds, seq)
	if err != nil {
		return nil, err
	}
	builtAt := time.Now()
	s, err := c.loadSnapshot(ctx, ds, snap, h, builtAt, true)
	if err != nil {
		return nil, err
	}
	c.publishExport(ds, s.h, builtAt)
	return s, nil
}

// fileTime is the cache file's modification time, which the cache sets to
// the time it was filled.
func fileTime(h *blobcache.Handle) time.Time {
	if fi, err := h.File().Stat(); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}

// downloadExport creates an annotations-only export of the dataset, waits
// for it, fetches its ZIP into the cache, and deletes the export.
func (c *Catalog) downloadExport(ctx context.Context, ds *Dataset, seq int) (*blobcache.Handle, error) {
	api := c.opts.API
	dsName := ds.Meta().Name
	made := &madeExport{dataset: dsName, name: c.exportName(ds, seq)}
	exp, err := api.CreateExport(ctx, client.CreateExportRequest{
		DatasetName: dsName, Name: made.name, Format: exportFormat, IncludeImages: false,
	})
	if errors.Is(err, client.ErrConflict) {
		made.name = c.exportName(ds, seq) + "-" + randomID()
		exp, err = api.CreateExport(ctx, client.CreateExportRequest{
			DatasetName: dsName, Name: made.name, Format: exportFormat, IncludeImages: false,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("create export: %w", err)
	}
	c.stats.exportsStarted.Add(1)
	c.log.Info("building bulk annotations", "dataset", dsName, "export", made.name)
	b := &ds.bulk
	b.mu.Lock()
	b.pending = made
	b.mu.Unlock()
	defer c.deleteExport(ds, made)

	exp, err = c.pollExport(ctx, api, made, exp)
	if err != nil {
		return nil, err
	}
	req := prefetch.Request{
		Key:    c.exportKey(ds),
		Size:   -1,
		Name:   "export " + made.name,
		MaxAge: c.opts.AnnotationTTL,
		Fetch: func(ctx context.Context, w io.Writer) error {
			u, err := api.ExportDownloadURL(ctx, made.dataset, made.name)
			if err != nil {
				return fmt.Errorf("export download link: %w", err)
			}
			rc, n, err := api.OpenExport(ctx, u, 0, -1)
			if err != nil {
				return err
			}
			return copyBody(w, rc, n)
		},
	}
	// A cached copy from before would be older than this export.
	c.opts.Cache.Remove(req.Key)
	h, err := c.opts.Prefetcher.Get(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("download export %s: %w", made.name, err)
	}
	c.log.Info("bulk annotations downloaded", "dataset", dsName, "export", made.name,
		"bytes", h.Size(), "images", exp.ImageCount)
	return h, nil
}

// exportName is unique per mount, dataset and build, and within the
// contract's 100 characters.
func (c *Catalog) exportName(ds *Dataset, seq int) string {
	id := strings.ReplaceAll(ds.id, "-", "")
	if len(id) > 32 {
		id = id[:32]
	}
	return fmt.Sprintf("pictofs-%s-%s-%d", c.opts.Bulk.MountID, id, seq)
}

// pollExport polls until the export completes, fails, or BuildTimeout
// passes: every second for the first few seconds (a build usually takes
// seconds, and readers may be waiting for it), then at doubling intervals
// up to PollInterval. Each poll is an API request: a 3 s build costs three.
func (c *Catalog) pollExport(ctx context.Context, api API, made *madeExport, exp *client.Export) (*client.Export, error) {
	deadline := time.Now().Add(c.opts.Bulk.BuildTimeout)
	wait := time.Second
	for polls := 0; ; polls++ {
		switch exp.Status {
		case client.ExportCompleted:
			return exp, nil
		case client.ExportFailed:
			msg := exp.ErrorMessage
			if msg == "" {
				msg = "no reason given"
			}
			return nil, fmt.Errorf("export %s failed: %s", made.name, msg)
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("export %s still %q after %v", made.name, exp.Status, c.opts.Bulk.BuildTimeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		if polls >= steadyPolls {
			wait = min(2*wait, c.opts.Bulk.PollInterval)
		}
		next, err := api.GetExport(ctx, made.dataset, made.name)
		if err != nil {
			return nil, fmt.Errorf("poll export %s: %w", made.name, err)
		}
		exp = next
	}
}

// deleteExport deletes an export this mount made: it is not needed once
// downloaded, or once it failed. A refusal (a role that may not delete)
// is not an error.
func (c *Catalog) deleteExport(ds *Dataset, made *madeExport) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 10*time.Second)
	defer cancel()
	err := c.opts.API.DeleteExport(ctx, made.dataset, made.name)
	switch {
	case err == nil, errors.Is(err, client.ErrNotFound):
	case errors.Is(err, client.ErrForbidden), errors.Is(err, client.ErrUnauthorized):
		c.log.Debug("export left in place: this key may not delete exports", "export", made.name)
	default:
		c.log.Warn("could not delete export", "export", made.name, "err", err)
	}
	b := &ds.bulk
	b.mu.Lock()
	if b.pending == made {
		b.pending = nil
	}
	b.mu.Unlock()
}

// deleteLeftoverExport deletes an export whose build was cut short by
// Close.
func (c *Catalog) deleteLeftoverExport(ctx context.Context, ds *Dataset) {
	b := &ds.bulk
	b.mu.Lock()
	made := b.pending
	snap := b.snap
	b.snap = nil
	b.mu.Unlock()
	if snap != nil {
		snap.retire()
	}
	if made == nil {
		return
	}
	if err := c.opts.API.DeleteExport(ctx, made.dataset, made.name); err != nil &&
		!errors.Is(err, client.ErrNotFound) && !errors.Is(err, client.ErrForbidden) {
		c.log.Warn("could not delete export", "export", made.name, "err", err)
	}
}

// loadSnapshot indexes a downloaded ZIP against the dataset's listing and,
// if verify is set, checks it against the per-image route. It takes over h.
func (c *Catalog) loadSnapshot(ctx context.Context, ds *Dataset, listing *snapshot, h *blobcache.Handle, builtAt time.Time, verify bool) (*exportSnapshot, error) {
	docs, shapes, unmatched, err := indexExport(h, listing)
	if err != nil {
		h.Release()
		return nil, err
	}
	if len(shapes) > maxShapes {
		h.Release()
		c.stats.exportsRejected.Add(1)
		return nil, fmt.Errorf("export layout not recognised: its documents have %d different shapes", len(shapes))
	}
	annotated := 0
	for _, d := range listing.dirs {
		for _, im := range d.images {
			if im.annCount > 0 {
				annotated++
			}
		}
	}
	if len(docs) == 0 && annotated > 0 {
		h.Release()
		c.stats.exportsRejected.Add(1)
		return nil, fmt.Errorf("export layout not recognised: no member matched an image (%d members unmatched)", unmatched)
	}
	s := &exportSnapshot{h: h, docs: docs, builtAt: builtAt, zipID: zipID(h)}
	if verify {
		if err := c.verifySnapshot(ctx, ds, listing, s, shapes); err != nil {
			s.retire()
			c.opts.Cache.Remove(c.exportKey(ds))
			c.stats.exportsRejected.Add(1)
			return nil, err
		}
	}
	c.markVerified(ctx, ds, s.zipID)
	c.stats.exportsCompleted.Add(1)
	c.log.Info("bulk annotations ready", "dataset", ds.Meta().Name, "documents", len(docs),
		"annotated_images", annotated, "unmatched_members", unmatched)
	return s, nil
}

// zipID identifies the export ZIP h holds by its size and fill time.
func zipID(h *blobcache.Handle) string {
	return strconv.FormatInt(h.Size(), 10) + "-" + strconv.FormatInt(fileTime(h).UnixNano(), 10)
}

// verifiedKey names the marker that says this cache checked the export ZIP
// whose zipID is id.
func (c *Catalog) verifiedKey(ds *Dataset, id string) blobcache.Key {
	return blobcache.KeyOf(c.opts.Namespace, "export-checked", exportFormat, ds.id, id)
}

// markVerified records that the export ZIP whose zipID is id was checked.
func (c *Catalog) markVerified(ctx context.Context, ds *Dataset, id string) {
	key := c.verifiedKey(ds, id)
	if c.opts.Cache.Contains(key) {
		return
	}
	mark, err := c.opts.Cache.Fill(ctx, key, 1, func(_ context.Context, w io.Writer) error {
		_, err := w.Write([]byte{1})
		return err
	})
	if err == nil {
		mark.Release()
	}
}

// indexExport matches the ZIP's members to the listing's images, and
// groups the matched images by the shape of their document (its top-level
// keys in order), so that each shape is checked against the per-image route.
func indexExport(h *blobcache.Handle, listing *snapshot) (docs map[string]docRef, shapes map[string][]string, unmatched int, err error) {
	zr, err := zip.NewReader(h.File(), h.Size())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read export ZIP: %w", err)
	}
	byPath := make(map[string]*Image, listing.count)
	byID := make(map[string]*Image, listing.count)
	for _, d := range listing.dirs {
		for _, im := range d.images {
			byPath[pathKey(splitPath(im.remoteDir), im.filename)] = im
			byID[im.id] = im
		}
	}
	docs = make(map[string]docRef, listing.count)
	shapeOf := make(map[string]string, listing.count)
	dup := map[string]bool{}
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || !strings.HasSuffix(f.Name, ".json") {
			continue
		}
		raw, err := readZipFile(f)
		if err != nil {
			unmatched++
			continue
		}
		im := matchMember(f.Name, raw, byPath, byID)
		if im == nil {
			unmatched++
			continue
		}
		doc, err := formatAnnotationDoc(raw)
		if err != nil {
			unmatched++
			continue
		}
		off, err := f.DataOffset()
		if err != nil || (f.Method != zip.Store && f.Method != zip.Deflate) {
			unmatched++
			continue
		}
		if _, seen := docs[im.id]; seen {
			dup[im.id] = true
		}
		docs[im.id] = docRef{off: off, csize: int64(f.CompressedSize64), method: f.Method, size: int64(len(doc))}
		shapeOf[im.id] = docShape(raw)
	}
	for id := range dup {
		delete(docs, id) // two members claim one image: neither is trusted
		unmatched += 2
	}
	shapes = map[string][]string{}
	for id := range docs {
		shapes[shapeOf[id]] = append(shapes[shapeOf[id]], id)
	}
	return docs, shapes, unmatched, nil
}

// docShape names a document's top-level keys in order, with the kind of
// its "image" value: documents of one shape are written by one code path.
func docShape(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "?"
	}
	var b strings.Builder
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "?"
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "?"
		}
		b.WriteString(key)
		if key == "image" && len(v) > 0 {
			b.WriteByte(':')
			b.WriteByte(v[0])
		}
		b.WriteByte(',')
	}
	return b.String()
}

func readZipFile(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > maxDocumentBytes {
		return nil, errors.New("member over the size limit")
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// matchMember finds the image a member holds the document of: by the
// member's path ([annotations/]<directory_path>/<filename>.json), else by an
// image id inside it ("image_id", or "image": {"id": …}). A member whose
// "image" names another file matches nothing.
func matchMember(name string, raw []byte, byPath, byID map[string]*Image) *Image {
	var head struct {
		Image   json.RawMessage `json:"image"`
		ImageID string          `json:"image_id"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil
	}
	var imageName string
	var imageObj struct {
		ID       string `json:"id"`
		Filename string `json:"filename"`
	}
	switch {
	case len(head.Image) > 0 && head.Image[0] == '"':
		json.Unmarshal(head.Image, &imageName)
	case len(head.Image) > 0 && head.Image[0] == '{':
		json.Unmarshal(head.Image, &imageObj)
	}
	segs := splitPath(strings.TrimSuffix(name, ".json"))
	if len(segs) > 1 && segs[0] == "annotations" {
		segs = segs[1:]
	}
	var im *Image
	if len(segs) > 0 {
		im = byPath[pathKey(segs[:len(segs)-1], segs[len(segs)-1])]
	}
	if im == nil {
		id := head.ImageID
		if id == "" {
			id = imageObj.ID
		}
		im = byID[id]
	}
	if im == nil {
		return nil
	}
	if imageName != "" && imageName != im.filename {
		return nil
	}
	if imageObj.Filename != "" && imageObj.Filename != im.filename {
		return nil
	}
	return im
}

// splitPath splits a slash-separated path into its non-empty segments.
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

func pathKey(dirSegs []string, filename string) string {
	return strings.Join(dirSegs, "/") + "\x00" + filename
}

// verifySnapshot compares documents of each shape with the per-image
// route's: up to verifySamples that are in the cache already, else one
// fetched to check (one request per shape, usually one in all).
func (c *Catalog) verifySnapshot(ctx context.Context, ds *Dataset, listing *snapshot, s *exportSnapshot, shapes map[string][]string) error {
	byID := make(map[string]*Image, len(s.docs))
	for _, d := range listing.dirs {
		for _, im := range d.images {
			if _, ok := s.docs[im.id]; ok && im.annCount > 0 {
				byID[im.id] = im
			}
		}
	}
	for _, ids := range shapes {
		var cached, uncached []*Image
		for _, id := range ids {
			im := byID[id]
			if im == nil {
				continue
			}
			if c.opts.Cache.Contains(c.annotationRequest(ds, im).Key) {
				cached = append(cached, im)
			} else if len(uncached) == 0 {
				uncached = append(uncached, im)
			}
		}
		samples := uncached
		if len(cached) > 0 {
			samples = cached[:min(len(cached), verifySamples)]
		}
		for _, im := range samples {
			if err := c.verifyDocument(ctx, ds, s, im); err != nil {
				return err
			}
		}
	}
	return nil
}

// verifyDocument compares im's document in the snapshot with the per-image
// route's.
func (c *Catalog) verifyDocument(ctx context.Context, ds *Dataset, s *exportSnapshot, im *Image) error {
	fromExport, err := readMember(s.h, s.docs[im.id])
	if err != nil {
		return fmt.Errorf("export document of %s: %w", im.name, err)
	}
	h, err := c.opts.Prefetcher.Get(ctx, c.annotationRequest(ds, im))
	if err != nil {
		return fmt.Errorf("check export against the per-image route: %w", err)
	}
	fromRoute, err := io.ReadAll(io.NewSectionReader(h.File(), 0, h.Size()))
	h.Release()
	if err != nil {
		return err
	}
	if !bytes.Equal(fromExport, fromRoute) {
		return fmt.Errorf("export document of %s differs from the per-image route's (%d vs %d bytes): not served", im.name, len(fromExport), len(fromRoute))
	}
	return nil
}
