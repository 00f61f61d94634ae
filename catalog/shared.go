package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
)

// The shared cache tier (Options.SharedCache) lets mounts on several machines
// share what each would otherwise fetch on its own:
//
//   - blobs: a local miss asks the tier before storage; what comes from
//     upstream is published in the background, after it arrived whole. One
//     node at a time fetches a blob (a short lease); the others wait for it
//     briefly, then fetch it themselves.
//   - the root listing, each dataset's image listing, and which images the
//     download listings cover (ids only), with their age: a second node lists
//     a dataset with no API request while they are younger than ListTTL.
//   - each dataset's export ZIP, with its age: one node builds it (a lease
//     held while it builds; a dead holder's lease expires), the others wait
//     for it and load it with no request.
//
// Signed URLs and the API key never reach the tier: listings are published
// without URLs, and only content keys, names and bytes are passed.

// Shared snapshot names.
func sharedDatasetsName() string            { return "datasets" }
func sharedListingName(ds *Dataset) string  { return "listing/" + ds.id }
func sharedCoverageName(ds *Dataset) string { return "coverage/" + ds.id }
func sharedExportName(ds *Dataset) string   { return "export/" + exportFormat + "/" + ds.id }

const (
	// fetchLeaseTTL bounds how long a node that took a blob's fetch lease
	// may keep others waiting if it dies.
	fetchLeaseTTL = 30 * time.Second
	// fetchWait is how long a node waits for a blob another node fetches.
	fetchWait = 3 * time.Second
	// sharedPoll is the interval of those waits.
	sharedPoll = 25 * time.Millisecond
)

// sharedFetch fetches a blob through the tier: from it when it has the blob,
// else from upstream (once for all nodes when they ask together), then
// published.
func (c *Catalog) sharedFetch(ctx context.Context, key blobcache.Key, size int64, w io.Writer, upstream func(context.Context, io.Writer) error) error {
	t := c.opts.SharedCache
	if t == nil {
		return upstream(ctx, w)
	}
	if data, ok := t.Get(ctx, string(key), size); ok {
		_, err := w.Write(data)
		return err
	}
	if size < 0 || size > t.MaxBlobBytes() {
		return upstream(ctx, w)
	}
	lease, held := t.TryLease(ctx, "fetch/"+string(key), fetchLeaseTTL)
	if held {
		// Another node fetches it: wait for it to land in the tier.
		if data, ok := c.waitShared(ctx, string(key), size); ok {
			_, err := w.Write(data)
			return err
		}
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	err := upstream(ctx, io.MultiWriter(w, buf))
	if err == nil {
		t.Publish(string(key), buf.Bytes())
	}
	if lease != nil {
		lease.Release()
	}
	return err
}

// waitShared polls the tier for a blob for up to fetchWait.
func (c *Catalog) waitShared(ctx context.Context, key string, size int64) ([]byte, bool) {
	deadline := time.Now().Add(fetchWait)
	for time.Now().Before(deadline) {
		t := time.NewTimer(sharedPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, false
		}
		if data, ok := c.opts.SharedCache.Get(ctx, key, size); ok {
			return data, true
		}
		if !c.opts.SharedCache.Up() {
			return nil, false
		}
	}
	return nil, false
}

// sharedMeta returns a snapshot from the tier when it is younger than maxAge.
func (c *Catalog) sharedMeta(ctx context.Context, name string, maxAge time.Duration) ([]byte, time.Time, bool) {
	t := c.opts.SharedCache
	if t == nil {
		return nil, time.Time{}, false
	}
	data, at, ok := t.GetMeta(ctx, name)
	if !ok || time.Since(at) >= maxAge || at.After(time.Now().Add(time.Minute)) {
		return nil, time.Time{}, false
	}
	return data, at, true
}

// publishMeta publishes a snapshot, as JSON, for ttl.
func (c *Catalog) publishMeta(name string, v any, at time.Time, ttl time.Duration) {
	t := c.opts.SharedCache
	if t == nil {
		return
	}
	data, err := json.Marshal(v)
	if err != nil || int64(len(data)) > t.MaxMetaBytes() {
		return
	}
	t.PublishMeta(name, data, at, ttl)
}

// sharedDatasets returns the root listing from the tier.
func (c *Catalog) sharedDatasets(ctx context.Context) ([]client.Dataset, time.Time, bool) {
	data, at, ok := c.sharedMeta(ctx, sharedDatasetsName(), c.opts.ListTTL)
	if !ok {
		return nil, time.Time{}, false
	}
	var list []client.Dataset
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, time.Time{}, false
	}
	return list, at, true
}

// sharedImageListing is a dataset's listing as mounts share it: no URLs.
type sharedImageListing struct {
	Dataset client.Dataset `json:"dataset"`
	Images  []listedImage  `json:"images"`
}

// sharedSnapshot builds a dataset's listing from the tier.
func (c *Catalog) sharedSnapshot(ctx context.Context, ds *Dataset) (*snapshot, *client.Dataset, bool) {
	data, at, ok := c.sharedMeta(ctx, sharedListingName(ds), c.opts.ListTTL)
	if !ok {
		return nil, nil, false
	}
	var l sharedImageListing
	if err := json.Unmarshal(data, &l); err != nil || l.Dataset.ID != ds.id {
		return nil, nil, false
	}
	b := newSnapshotBuilder(c.opts.StatusFilter)
	for _, img := range l.Images {
		b.addImage(img)
	}
	return b.build(at), &l.Dataset, true
}

// sharedCoverage returns which images of the dataset the download listings
// cover, from the tier.
func (c *Catalog) sharedCoverage(ctx context.Context, ds *Dataset) (map[string]bool, bool) {
	data, _, ok := c.sharedMeta(ctx, sharedCoverageName(ds), c.opts.URLMaxAge)
	if !ok {
		return nil, false
	}
	var ids []string
	if err := json.Unmarshal(data, &ids); err != nil {
		return nil, false
	}
	covered := make(map[string]bool, len(ids))
	for _, id := range ids {
		covered[id] = true
	}
	return covered, true
}

// sharedExport fills the local cache with the dataset's export ZIP from the
// tier, when it holds one younger than AnnotationTTL.
func (c *Catalog) sharedExport(ctx context.Context, ds *Dataset) (*blobcache.Handle, time.Time, bool) {
	data, at, ok := c.sharedMeta(ctx, sharedExportName(ds), c.opts.AnnotationTTL)
	if !ok {
		return nil, time.Time{}, false
	}
	h, err := c.opts.Cache.Fill(ctx, c.exportKey(ds), int64(len(data)), func(_ context.Context, w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		c.log.Warn("shared export snapshot not cached", "dataset", ds.id, "err", err)
		return nil, time.Time{}, false
	}
	return h, at, true
}

// publishExport publishes a verified export ZIP.
func (c *Catalog) publishExport(ds *Dataset, h *blobcache.Handle, builtAt time.Time) {
	t := c.opts.SharedCache
	if t == nil || h.Size() > t.MaxMetaBytes() {
		return
	}
	data, err := io.ReadAll(io.NewSectionReader(h.File(), 0, h.Size()))
	if err != nil {
		return
	}
	t.PublishMeta(sharedExportName(ds), data, builtAt, c.opts.AnnotationTTL)
}

// exportFromOtherNode waits while another node holds the dataset's export
// lease, for its snapshot to appear in the tier. It returns the lease when
// this node should build the export itself (nil without a tier, or when the
// tier is down).
func (c *Catalog) exportFromOtherNode(ctx context.Context, ds *Dataset) (h *blobcache.Handle, at time.Time, lease leaseHolder, err error) {
	t := c.opts.SharedCache
	if t == nil {
		return nil, time.Time{}, nil, nil
	}
	leaseTTL := c.opts.Bulk.BuildTimeout + time.Minute
	deadline := time.Now().Add(c.opts.Bulk.BuildTimeout)
	logged := false
	for {
		if h, at, ok := c.sharedExport(ctx, ds); ok {
			return h, at, nil, nil
		}
		l, held := t.TryLease(ctx, sharedExportName(ds), leaseTTL)
		if l != nil {
			return nil, time.Time{}, l, nil
		}
		if !held || time.Now().After(deadline) {
			return nil, time.Time{}, nil, nil // the tier failed, or the holder is too slow: build it here
		}
		if !logged {
			c.log.Info("another mount builds this dataset's export; waiting for it", "dataset", ds.Meta().Name)
			logged = true
		}
		timer := time.NewTimer(time.Second)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, time.Time{}, nil, fmt.Errorf("wait for the shared export: %w", ctx.Err())
		}
	}
}

// leaseHolder is a held lease of the tier.
type leaseHolder interface{ Release() }
