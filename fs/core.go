package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/prefetch"
)

// listPageSize is the include_images page size: the contract's cap.
const listPageSize = 10000

// core is the filesystem without FUSE: datasets, snapshots, signed URLs and
// the fetch functions handed to the prefetcher.
type core struct {
	opts Options
	log  *slog.Logger
	// ctx lives as long as the mount; shared loads run under it so that one
	// interrupted caller does not fail the others.
	ctx       context.Context
	mountedAt time.Time

	rootMu sync.Mutex // guards datasets, byID, listedAt
	// datasets maps entry names at the root to datasets.
	datasets map[string]*dataset
	// byID keeps dataset state (snapshots, URLs) across root relistings.
	byID     map[string]*dataset
	listedAt time.Time
	rootSF   singleflight.Group

	urlRefreshes atomic.Int64
	// daemonReads counts reads of cached blobs served by this process
	// rather than by the kernel through passthrough.
	daemonReads atomic.Int64
}

// dataset is one dataset's state in the mount.
type dataset struct {
	id string

	mu sync.Mutex // guards meta, snap, urls, urlsAt
	// meta is the Dataset object without images.
	meta   client.Dataset
	snap   *snapshot
	urls   map[string]string // image id → signed URL, from the download listing
	urlsAt time.Time

	loadSF singleflight.Group
	urlSF  singleflight.Group
}

func newCore(ctx context.Context, opts Options) *core {
	return &core{
		opts:      opts,
		log:       opts.Logger,
		ctx:       ctx,
		mountedAt: time.Now(),
		datasets:  map[string]*dataset{},
		byID:      map[string]*dataset{},
	}
}

// inodeOf derives a stable inode number from ids (FNV-1a over the
// length-prefixed parts), so the same entry has the same number across
// remounts. It runs for every entry of every listing, so it must be cheap.
func inodeOf(parts ...string) uint64 {
	h := fnv.New64a()
	var n [8]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		io.WriteString(h, p)
	}
	ino := h.Sum64() &^ (1 << 63)
	if ino < 2 {
		ino += 2
	}
	return ino
}

// listDatasets returns the root listing, listing again when it is older than
// ListTTL. A failed relisting keeps serving the previous one.
func (c *core) listDatasets(ctx context.Context) (map[string]*dataset, error) {
	c.rootMu.Lock()
	fresh := !c.listedAt.IsZero() && time.Since(c.listedAt) < c.opts.ListTTL
	current := c.datasets
	c.rootMu.Unlock()
	if fresh {
		return current, nil
	}
	ch := c.rootSF.DoChan("root", func() (any, error) {
		list, err := c.opts.API.AllDatasets(c.ctx)
		if err != nil {
			return nil, fmt.Errorf("list datasets: %w", err)
		}
		c.setDatasets(list)
		return nil, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			c.rootMu.Lock()
			stale := !c.listedAt.IsZero()
			current = c.datasets
			c.rootMu.Unlock()
			if stale {
				c.log.Warn("listing datasets failed; serving the previous listing", "err", res.Err)
				return current, nil
			}
			return nil, res.Err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	return c.datasets, nil
}

// setDatasets replaces the root listing, keeping the state of datasets that
// are still there.
func (c *core) setDatasets(list []client.Dataset) {
	claims := make([]nameClaim, len(list))
	for i, d := range list {
		claims[i] = nameClaim{safe: SanitizeName(d.Name), id: d.ID}
	}
	names := dedupeNames(claims, nil)
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	byName := make(map[string]*dataset, len(list))
	byID := make(map[string]*dataset, len(list))
	for i, meta := range list {
		ds := c.byID[meta.ID]
		if ds == nil {
			ds = &dataset{id: meta.ID}
		}
		ds.setMeta(meta)
		byName[names[i]] = ds
		byID[meta.ID] = ds
	}
	c.datasets, c.byID, c.listedAt = byName, byID, time.Now()
}

// addDataset puts a dataset made by mkdir into the listing at once.
func (c *core) addDataset(name string, meta client.Dataset) *dataset {
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	ds := &dataset{id: meta.ID}
	ds.setMeta(meta)
	c.datasets[name] = ds
	c.byID[meta.ID] = ds
	return ds
}

// removeDataset drops an entry from the listing at once.
func (c *core) removeDataset(name string) {
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	if ds, ok := c.datasets[name]; ok {
		delete(c.byID, ds.id)
		delete(c.datasets, name)
	}
}

// renameDataset moves an entry in the listing at once.
func (c *core) renameDataset(oldName, newName string, meta client.Dataset) {
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	if ds, ok := c.datasets[oldName]; ok {
		delete(c.datasets, oldName)
		ds.setMeta(meta)
		c.datasets[newName] = ds
	}
}

func (c *core) lookupDataset(ctx context.Context, name string) (*dataset, error) {
	all, err := c.listDatasets(ctx)
	if err != nil {
		return nil, err
	}
	c.rootMu.Lock()
	ds := all[name]
	c.rootMu.Unlock()
	if ds == nil {
		return nil, fmt.Errorf("dataset %q: %w", name, client.ErrNotFound)
	}
	return ds, nil
}

func (ds *dataset) setMeta(meta client.Dataset) {
	meta.Images = nil
	ds.mu.Lock()
	ds.meta = meta
	ds.mu.Unlock()
}

func (ds *dataset) metadata() client.Dataset {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.meta
}

// snapshot returns the dataset's image listing, listing again when it is
// older than ListTTL. A failed relisting keeps serving the previous one.
func (c *core) snapshot(ctx context.Context, ds *dataset) (*snapshot, error) {
	ds.mu.Lock()
	snap := ds.snap
	ds.mu.Unlock()
	if snap != nil && time.Since(snap.loadedAt) < c.opts.ListTTL {
		return snap, nil
	}
	ch := ds.loadSF.DoChan("images", func() (any, error) {
		b := newSnapshotBuilder(c.opts.StatusFilter)
		meta, err := c.opts.API.EachDatasetImage(c.ctx, ds.id, listPageSize, func(page []client.Image) error {
			b.add(page)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list images of dataset %s: %w", ds.id, err)
		}
		s := b.build(time.Now())
		ds.setMeta(*meta)
		ds.mu.Lock()
		ds.snap = s
		ds.mu.Unlock()
		c.log.Debug("listed dataset", "dataset", meta.Name, "images", s.count)
		return s, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			if snap != nil {
				c.log.Warn("listing images failed; serving the previous listing", "err", res.Err)
				return snap, nil
			}
			return nil, res.Err
		}
		return res.Val.(*snapshot), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// signedURL returns the image's signed URL and when its listing was fetched,
// or ok=false when the download listing does not cover the image.
func (c *core) signedURL(ctx context.Context, ds *dataset, imageID string) (u string, at time.Time, ok bool, err error) {
	ds.mu.Lock()
	urls, urlsAt := ds.urls, ds.urlsAt
	ds.mu.Unlock()
	if urls == nil || time.Since(urlsAt) >= c.opts.URLMaxAge {
		if err := c.refreshURLs(ctx, ds, urlsAt); err != nil {
			return "", time.Time{}, false, err
		}
		ds.mu.Lock()
		urls, urlsAt = ds.urls, ds.urlsAt
		ds.mu.Unlock()
	}
	u, ok = urls[imageID]
	return u, urlsAt, ok, nil
}

// refreshURLs fetches the download listing again unless someone already did
// since staleAt. Concurrent callers share one request.
func (c *core) refreshURLs(ctx context.Context, ds *dataset, staleAt time.Time) error {
	ch := ds.urlSF.DoChan("urls", func() (any, error) {
		ds.mu.Lock()
		done := ds.urls != nil && ds.urlsAt.After(staleAt) && time.Since(ds.urlsAt) < c.opts.URLMaxAge
		ds.mu.Unlock()
		if done {
			return nil, nil
		}
		urls, err := c.downloadURLs(ds)
		if err != nil {
			return nil, err
		}
		ds.mu.Lock()
		ds.urls, ds.urlsAt = urls, time.Now()
		ds.mu.Unlock()
		c.urlRefreshes.Add(1)
		return nil, nil
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// imageStatuses are the contract's image statuses. A download listing stops
// at 10000 items and has no offset, but each status_filter gives its own
// 10000, so a larger dataset gets signed URLs for up to four times as many
// images for three or four more requests, instead of one request per image
// on the byte route.
var imageStatuses = []string{"new", "annotate", "review", "complete"}

// downloadURLs fetches the signed URLs of a dataset's images, keyed by id.
func (c *core) downloadURLs(ds *dataset) (map[string]string, error) {
	fetch := func(status string) (*client.DownloadListing, error) {
		listing, err := c.opts.API.DownloadListing(c.ctx, ds.id, client.DownloadOptions{
			Mode:         "images_only",
			StatusFilter: status,
			Limit:        listPageSize,
		})
		if err != nil {
			return nil, fmt.Errorf("download listing of dataset %s: %w", ds.id, err)
		}
		return listing, nil
	}
	listing, err := fetch(c.opts.StatusFilter)
	if err != nil {
		return nil, err
	}
	urls := make(map[string]string, len(listing.Items))
	add := func(l *client.DownloadListing) {
		for _, it := range l.Items {
			if it.ImageURL != "" {
				urls[it.ID] = it.ImageURL
			}
		}
	}
	add(listing)
	truncated := listing.TotalItems > len(listing.Items) || len(listing.Items) >= listPageSize
	if c.opts.StatusFilter != "" || !truncated {
		return urls, nil
	}
	for _, status := range imageStatuses {
		part, err := fetch(status)
		if err != nil {
			c.log.Warn("download listing by status failed; images it would cover use the byte route", "status", status, "err", err)
			continue
		}
		add(part)
	}
	return urls, nil
}

// imageRequest is the prefetch request for an image's bytes.
func (c *core) imageRequest(ds *dataset, im *image) prefetch.Request {
	return prefetch.Request{
		Key:  blobcache.KeyOf(c.opts.Namespace, "image", ds.id, im.id, strconv.FormatInt(im.size, 10), strconv.FormatInt(im.createdAt, 10)),
		Size: im.size,
		Name: im.name,
		Fetch: func(ctx context.Context, w io.Writer) error {
			return c.fetchImage(ctx, ds, im, w)
		},
	}
}

// fetchImage copies an image's bytes into w: through its signed URL when the
// download listing covers it (refreshing the listing once on a 403), else
// through the authenticated byte route.
func (c *core) fetchImage(ctx context.Context, ds *dataset, im *image, w io.Writer) error {
	u, at, ok, err := c.signedURL(ctx, ds, im.id)
	if err != nil {
		return err
	}
	if !ok {
		rc, n, err := c.opts.API.OpenImage(ctx, ds.id, im.remoteDir, im.filename, 0, -1)
		if err != nil {
			return err
		}
		return copyBody(w, rc, n)
	}
	err = c.copySigned(ctx, u, w)
	if !errors.Is(err, client.ErrURLExpired) {
		return err
	}
	if err := c.refreshURLs(ctx, ds, at); err != nil {
		return err
	}
	if u, _, ok, err = c.signedURL(ctx, ds, im.id); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("image %s left the download listing: %w", im.id, client.ErrNotFound)
	}
	return c.copySigned(ctx, u, w)
}

func (c *core) copySigned(ctx context.Context, u string, w io.Writer) error {
	rc, n, err := c.opts.API.OpenSigned(ctx, u, 0, -1)
	if err != nil {
		return err
	}
	return copyBody(w, rc, n)
}

// copyBody copies a body and checks its length against the expected one.
func copyBody(w io.Writer, rc io.ReadCloser, want int64) error {
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if want >= 0 && n != want {
		return fmt.Errorf("body ended after %d of %d bytes: %w", n, want, io.ErrUnexpectedEOF)
	}
	return nil
}

// annotationRequest is the prefetch request for an annotated image's
// document.
func (c *core) annotationRequest(ds *dataset, im *image) prefetch.Request {
	return prefetch.Request{
		Key:    blobcache.KeyOf(c.opts.Namespace, "annotation", ds.id, im.id),
		Size:   -1,
		Name:   im.name + ".json",
		MaxAge: c.opts.AnnotationTTL,
		Fetch: func(ctx context.Context, w io.Writer) error {
			raw, err := c.opts.API.AnnotationFile(ctx, im.id)
			if err != nil {
				return err
			}
			doc, err := formatAnnotationDoc(raw)
			if err != nil {
				return fmt.Errorf("annotation document of image %s: %w", im.id, err)
			}
			_, err = w.Write(doc)
			return err
		},
	}
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

// datasetJSON is the content of dataset.json.
func datasetJSON(meta client.Dataset) []byte {
	meta.Images = nil
	doc, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return []byte("{}\n")
	}
	return append(doc, '\n')
}
