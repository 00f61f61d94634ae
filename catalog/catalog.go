package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/pictofs/pictofs/client"
)

// listPageSize is the include_images page size: the contract's cap.
const listPageSize = 10000

// Catalog is what a mount shows, without FUSE: the datasets of an
// organization, their image listings, names, inode numbers, signed URLs and
// annotation documents. It is safe for concurrent use.
type Catalog struct {
	opts Options
	log  *slog.Logger
	// ctx lives as long as the catalog; shared loads and background work
	// run under it, so one interrupted caller does not fail the others.
	ctx       context.Context
	cancel    context.CancelFunc
	createdAt time.Time
	bg        sync.WaitGroup // background goroutines (export builds, document readahead)

	rootMu sync.Mutex // guards datasets, byID, listedAt
	// datasets maps entry names at the root to datasets.
	datasets map[string]*Dataset
	// byID keeps dataset state (snapshots, URLs, exports) across root
	// relistings.
	byID     map[string]*Dataset
	listedAt time.Time
	rootSF   singleflight.Group
	// rootChanged is set when this mount changed the root (mkdir, rmdir,
	// mv): its next listing comes from the API, not the shared tier.
	rootChanged atomic.Bool

	// docAhead bounds the document fetches started ahead of a reader.
	docAhead chan struct{}

	writes writeState

	stats counters
}

// counters are the catalog's statistics, read by Stats.
type counters struct {
	urlRefreshes     atomic.Int64
	docsFromExport   atomic.Int64
	docsPerImage     atomic.Int64
	docsEmpty        atomic.Int64
	docsAhead        atomic.Int64
	exportsStarted   atomic.Int64
	exportsCompleted atomic.Int64
	exportsFailed    atomic.Int64
	exportsRejected  atomic.Int64
	exportWaits      atomic.Int64
}

// Stats is a snapshot of the catalog's counters.
type Stats struct {
	URLRefreshes     int64 // download listings fetched for signed URLs
	DocsFromExport   int64 // documents served from an export snapshot
	DocsPerImage     int64 // documents fetched through the per-image route
	DocsEmpty        int64 // empty documents served with no request
	DocsAhead        int64 // document fetches started ahead of the reader
	ExportsStarted   int64 // exports created
	ExportsCompleted int64 // export snapshots loaded (built, or from the cache)
	ExportsFailed    int64 // exports that failed, timed out or could not be read
	ExportsRejected  int64 // export snapshots not used: layout not recognised or a document differed
	ExportWaits      int64 // document reads that waited for a building export
}

// New validates opts and returns a Catalog. Nothing is fetched until asked.
func New(ctx context.Context, opts Options) (*Catalog, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &Catalog{
		opts:      opts,
		log:       opts.Logger,
		ctx:       cctx,
		cancel:    cancel,
		createdAt: time.Now(),
		datasets:  map[string]*Dataset{},
		byID:      map[string]*Dataset{},
		docAhead:  make(chan struct{}, 32),
	}
	if err := c.openWrites(); err != nil {
		cancel()
		return nil, err
	}
	return c, nil
}

// Options returns the catalog's options with their defaults filled in.
func (c *Catalog) Options() Options { return c.opts }

// CreatedAt is when the catalog was made: the mount's root directory time.
func (c *Catalog) CreatedAt() time.Time { return c.createdAt }

// Stats returns the catalog's counters.
func (c *Catalog) Stats() Stats {
	s := &c.stats
	return Stats{
		URLRefreshes: s.urlRefreshes.Load(), DocsFromExport: s.docsFromExport.Load(),
		DocsPerImage: s.docsPerImage.Load(), DocsEmpty: s.docsEmpty.Load(), DocsAhead: s.docsAhead.Load(),
		ExportsStarted: s.exportsStarted.Load(), ExportsCompleted: s.exportsCompleted.Load(),
		ExportsFailed: s.exportsFailed.Load(), ExportsRejected: s.exportsRejected.Load(),
		ExportWaits: s.exportWaits.Load(),
	}
}

// Abort cancels every in-flight request, fetch and background job of the
// catalog at once, and closes the Prefetcher: waiting callers get an error,
// and neither the catalog nor the Prefetcher may be used afterwards.
func (c *Catalog) Abort() {
	c.cancel()
	c.opts.Prefetcher.Close()
}

// ListedNames returns the entry names of the datasets at the root as last
// listed (none before the first listing), sorted, without listing.
func (c *Catalog) ListedNames() []string {
	c.rootMu.Lock()
	names := make([]string, 0, len(c.datasets))
	for name := range c.datasets {
		names = append(names, name)
	}
	c.rootMu.Unlock()
	sort.Strings(names)
	return names
}

// Close stops background work and deletes the exports this catalog made
// and still holds, within ctx (where the role allows; a refusal is logged
// at debug level).
func (c *Catalog) Close(ctx context.Context) {
	c.rootMu.Lock()
	all := make([]*Dataset, 0, len(c.byID))
	for _, ds := range c.byID {
		all = append(all, ds)
	}
	c.rootMu.Unlock()
	c.cancel()
	c.bg.Wait()
	c.closeWrites()
	for _, ds := range all {
		c.deleteLeftoverExport(ctx, ds)
	}
}

// goBackground runs fn on its own goroutine, tracked for Close.
func (c *Catalog) goBackground(fn func()) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		fn()
	}()
}

// waitCtx bounds a caller's wait on the API by WaitTimeout.
func (c *Catalog) waitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.WaitTimeout)
}

// await waits for a shared result on behalf of one caller, for at most
// WaitTimeout, and wraps a timeout so the caller can tell it from a failure.
func await[T any](c *Catalog, ctx context.Context, what string, ch <-chan singleflight.Result) (T, error) {
	var zero T
	ctx, cancel := c.waitCtx(ctx)
	defer cancel()
	select {
	case res := <-ch:
		if res.Err != nil {
			return zero, res.Err
		}
		v, _ := res.Val.(T)
		return v, nil
	case <-ctx.Done():
		return zero, c.waitError(what, ctx.Err())
	}
}

// waitError describes a wait on the API that ran out: as a rate limit when
// a 429 holds the client's requests back, else as the context's error.
func (c *Catalog) waitError(what string, err error) error {
	if t, ok := c.opts.API.(throttler); ok && time.Now().Before(t.RateLimitedUntil()) {
		return fmt.Errorf("%s: waited %v while the API rate-limits this key: %w", what, c.opts.WaitTimeout, client.ErrRateLimited)
	}
	return fmt.Errorf("%s: waited %v: %w", what, c.opts.WaitTimeout, err)
}

// DatasetEntry is one entry of the root listing.
type DatasetEntry struct {
	Name    string
	Dataset *Dataset
}

// Datasets returns the root listing, sorted by name, listing again when it
// is older than ListTTL. A failed relisting keeps serving the previous one.
func (c *Catalog) Datasets(ctx context.Context) ([]DatasetEntry, error) {
	all, err := c.listDatasets(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]DatasetEntry, 0, len(all))
	for name, ds := range all {
		out = append(out, DatasetEntry{Name: name, Dataset: ds})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Dataset returns the dataset whose entry name at the root is name.
func (c *Catalog) Dataset(ctx context.Context, name string) (*Dataset, error) {
	all, err := c.listDatasets(ctx)
	if err != nil {
		return nil, err
	}
	if ds := all[name]; ds != nil {
		return ds, nil
	}
	return nil, fmt.Errorf("dataset %q: %w", name, client.ErrNotFound)
}

// listDatasets returns the current name → dataset map (never modified once
// published), listing again when it is older than ListTTL.
func (c *Catalog) listDatasets(ctx context.Context) (map[string]*Dataset, error) {
	c.rootMu.Lock()
	fresh := !c.listedAt.IsZero() && time.Since(c.listedAt) < c.opts.ListTTL
	current := c.datasets
	c.rootMu.Unlock()
	if fresh {
		return current, nil
	}
	ch := c.rootSF.DoChan("root", func() (any, error) {
		if !c.rootChanged.Load() {
			if list, at, ok := c.sharedDatasets(c.ctx); ok {
				c.setDatasets(list, at)
				return nil, nil
			}
		}
		c.rootChanged.Store(false)
		list, err := c.opts.API.AllDatasets(c.ctx)
		if err != nil {
			return nil, fmt.Errorf("list datasets: %w", err)
		}
		now := time.Now()
		c.setDatasets(list, now)
		c.publishMeta(sharedDatasetsName(), list, now, c.opts.ListTTL)
		return nil, nil
	})
	if _, err := await[any](c, ctx, "list datasets", ch); err != nil {
		c.rootMu.Lock()
		stale := !c.listedAt.IsZero()
		current = c.datasets
		c.rootMu.Unlock()
		if stale {
			c.log.Warn("listing datasets failed; serving the previous listing", "err", err)
			return current, nil
		}
		return nil, err
	}
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	return c.datasets, nil
}

// setDatasets replaces the root listing, made at listedAt, keeping the state
// of datasets that are still there.
func (c *Catalog) setDatasets(list []client.Dataset, listedAt time.Time) {
	claims := make([]nameClaim, len(list))
	for i, d := range list {
		claims[i] = nameClaim{safe: SanitizeName(d.Name), id: d.ID}
	}
	names := dedupeNames(claims, nil)
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	byName := make(map[string]*Dataset, len(list))
	byID := make(map[string]*Dataset, len(list))
	for i, meta := range list {
		ds := c.byID[meta.ID]
		if ds == nil {
			ds = &Dataset{id: meta.ID}
		}
		ds.setMeta(meta)
		byName[names[i]] = ds
		byID[meta.ID] = ds
	}
	c.datasets, c.byID, c.listedAt = byName, byID, listedAt
}

// withRoot applies a change to a copy of the root listing and publishes it,
// so that maps handed out earlier never change under their readers.
func (c *Catalog) withRoot(change func(byName, byID map[string]*Dataset)) {
	c.rootChanged.Store(true)
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	byName := make(map[string]*Dataset, len(c.datasets)+1)
	for k, v := range c.datasets {
		byName[k] = v
	}
	byID := make(map[string]*Dataset, len(c.byID)+1)
	for k, v := range c.byID {
		byID[k] = v
	}
	change(byName, byID)
	c.datasets, c.byID = byName, byID
}

// CreateDataset makes a dataset called name (mkdir at the root).
func (c *Catalog) CreateDataset(ctx context.Context, name string) (*Dataset, error) {
	if ds, _ := c.Dataset(ctx, name); ds != nil {
		return nil, fmt.Errorf("create dataset %q: %w", name, client.ErrConflict)
	}
	meta, err := c.opts.API.CreateDataset(ctx, client.CreateDatasetRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("create dataset %q: %w", name, err)
	}
	ds := &Dataset{id: meta.ID}
	ds.setMeta(*meta)
	c.withRoot(func(byName, byID map[string]*Dataset) {
		byName[name] = ds
		byID[meta.ID] = ds
	})
	return ds, nil
}

// DeleteDataset deletes a dataset (rmdir at the root), only when it holds no
// image at all, archived or not: rm -rf can never destroy a dataset.
func (c *Catalog) DeleteDataset(ctx context.Context, name string) error {
	ds, err := c.Dataset(ctx, name)
	if err != nil {
		return err
	}
	fresh, err := c.opts.API.GetDataset(ctx, ds.id)
	if err != nil {
		return fmt.Errorf("rmdir %q: %w", name, err)
	}
	if n := fresh.ImageCount + fresh.ArchivedImageCount; n > 0 {
		return fmt.Errorf("rmdir %q: %d images (%d archived): %w", name, n, fresh.ArchivedImageCount, ErrNotEmpty)
	}
	if _, err := c.opts.API.DeleteDataset(ctx, ds.id); err != nil {
		return fmt.Errorf("delete dataset %q: %w", name, err)
	}
	c.withRoot(func(byName, byID map[string]*Dataset) {
		if byName[name] == ds {
			delete(byName, name)
			delete(byID, ds.id)
		}
	})
	return nil
}

// RenameDataset renames a dataset (mv at the root).
func (c *Catalog) RenameDataset(ctx context.Context, oldName, newName string) error {
	ds, err := c.Dataset(ctx, oldName)
	if err != nil {
		return err
	}
	if oldName == newName {
		return nil
	}
	if other, _ := c.Dataset(ctx, newName); other != nil {
		return fmt.Errorf("rename to %q: %w", newName, client.ErrConflict)
	}
	meta, err := c.opts.API.UpdateDataset(ctx, ds.id, client.UpdateDatasetRequest{NewName: &newName})
	if err != nil {
		return fmt.Errorf("rename dataset %q to %q: %w", oldName, newName, err)
	}
	ds.setMeta(*meta)
	c.withRoot(func(byName, byID map[string]*Dataset) {
		if byName[oldName] == ds {
			delete(byName, oldName)
			byName[newName] = ds
		}
	})
	return nil
}

// Dataset is one dataset's state in the catalog.
type Dataset struct {
	id string

	mu sync.Mutex // guards meta, snap, urls, urlsAt, covered, coveredAt
	// meta is the Dataset object without images.
	meta   client.Dataset
	snap   *snapshot
	urls   map[string]string // image id → signed URL, from the download listings
	urlsAt time.Time
	// covered is the set of image ids the download listings cover, as of
	// coveredAt (from urls, or from the shared tier); never modified once
	// stored, so readers use it without the lock.
	covered   map[string]bool
	coveredAt time.Time

	loadSF singleflight.Group
	urlSF  singleflight.Group

	// docsRead is set once any annotation document of the dataset was
	// asked for: from then on, opening an image fetches its document ahead.
	docsRead atomic.Bool

	bulk bulkState

	// local holds the changes made through this mount.
	local localState
}

// ID is the dataset's UUID.
func (ds *Dataset) ID() string { return ds.id }

func (ds *Dataset) setMeta(meta client.Dataset) {
	meta.Images = nil
	ds.mu.Lock()
	ds.meta = meta
	ds.mu.Unlock()
}

// Meta is the Dataset object, without images.
func (ds *Dataset) Meta() client.Dataset {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.meta
}

// ModTime is the dataset's update time (else its creation time): the time
// of its directories.
func (ds *Dataset) ModTime() time.Time {
	m := ds.Meta()
	if !m.UpdatedAt.IsZero() {
		return m.UpdatedAt
	}
	return m.CreatedAt
}

// JSON is the content of dataset.json: the Dataset object, indented.
func (ds *Dataset) JSON() []byte {
	doc, err := json.MarshalIndent(ds.Meta(), "", "  ")
	if err != nil {
		return []byte("{}\n")
	}
	return append(doc, '\n')
}

// snapshot returns the dataset's image listing, listing again when it is
// older than ListTTL. A failed relisting keeps serving the previous one.
func (c *Catalog) snapshot(ctx context.Context, ds *Dataset) (*snapshot, error) {
	ds.mu.Lock()
	snap := ds.snap
	ds.mu.Unlock()
	if snap != nil && time.Since(snap.loadedAt) < c.opts.ListTTL {
		return snap, nil
	}
	ch := ds.loadSF.DoChan("images", func() (any, error) {
		start := time.Now()
		s, meta, err := c.listImages(ds)
		if err != nil {
			return nil, err
		}
		ds.setMeta(*meta)
		ds.mu.Lock()
		s = c.withLocal(ds, s, start)
		ds.snap = s
		ds.mu.Unlock()
		c.log.Debug("listed dataset", "dataset", meta.Name, "images", s.count)
		return s, nil
	})
	s, err := await[*snapshot](c, ctx, "list images", ch)
	if err != nil {
		if snap != nil {
			c.log.Warn("listing images failed; serving the previous listing", "dataset", ds.id, "err", err)
			return snap, nil
		}
		return nil, err
	}
	return s, nil
}

// listImages lists a dataset's images: from the shared tier when it holds a
// listing younger than ListTTL, else from the API (then published).
func (c *Catalog) listImages(ds *Dataset) (*snapshot, *client.Dataset, error) {
	if s, meta, ok := c.sharedSnapshot(c.ctx, ds); ok {
		return s, meta, nil
	}
	b := newSnapshotBuilder(c.opts.StatusFilter)
	var shared []listedImage
	meta, err := c.opts.API.EachDatasetImage(c.ctx, ds.id, listPageSize, func(page []client.Image) error {
		b.add(page)
		if c.opts.SharedCache != nil {
			for _, img := range page {
				shared = append(shared, listedOf(img))
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list images of dataset %s: %w", ds.id, err)
	}
	now := time.Now()
	if shared != nil {
		m := *meta
		m.Images = nil
		c.publishMeta(sharedListingName(ds), sharedImageListing{Dataset: m, Images: shared}, now, c.opts.ListTTL)
	}
	return b.build(now), meta, nil
}

// Dir returns the directory with key dirKey ("" for the top of images/ and
// annotations/) in the dataset's current listing.
func (c *Catalog) Dir(ctx context.Context, ds *Dataset, dirKey string) (*Dir, error) {
	snap, err := c.snapshot(ctx, ds)
	if err != nil {
		return nil, err
	}
	d := snap.dirs[dirKey]
	if d == nil {
		return nil, fmt.Errorf("directory %q: %w", dirKey, client.ErrNotFound)
	}
	return d, nil
}

func randomID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
