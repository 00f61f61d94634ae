package fs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/prefetch"
)

// errno maps err for a FUSE reply and logs what is not routine.
func (c *core) errno(err error, name string) syscall.Errno {
	e := toErrno(err)
	switch e {
	case 0, syscall.ENOENT, syscall.EEXIST, syscall.ENOTEMPTY, syscall.EINTR, syscall.EROFS:
	default:
		var apiErr *client.APIError
		attrs := []any{"name", name, "errno", e.Error(), "err", err}
		if errors.As(err, &apiErr) {
			attrs = append(attrs, "status", apiErr.Status, "attempts", apiErr.Attempts, "request_id", apiErr.RequestID)
		}
		c.log.Warn("request failed", attrs...)
	}
	return e
}

func sortEntries(entries []fuse.DirEntry) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// prefetchDir queues a listed directory's files for readahead, once per
// snapshot, in listing order.
func (c *core) prefetchDir(ds *dataset, d *dir, annotations bool) {
	flag := &d.prefetchedImages
	if annotations {
		flag = &d.prefetchedAnnotations
	}
	if flag.Swap(true) {
		return
	}
	if !annotations {
		go c.prefetchImages(ds, d)
		return
	}
	reqs := make([]prefetch.Request, 0, len(d.images))
	for _, im := range d.images {
		if im.annCount > 0 {
			reqs = append(reqs, c.annotationRequest(ds, im))
		}
	}
	if len(reqs) > 0 {
		c.opts.Prefetcher.Enqueue(reqs)
	}
}

// prefetchImages queues the readahead of a directory's images that the
// download listings cover. Any other image costs an API request on the byte
// route: readahead must not spend the hourly plan on a guess (a read still
// fetches such an image on demand).
func (c *core) prefetchImages(ds *dataset, d *dir) {
	if _, _, _, err := c.signedURL(c.ctx, ds, ""); err != nil {
		c.log.Warn("readahead skipped: no signed URLs", "err", err)
		return
	}
	ds.mu.Lock()
	urls := ds.urls
	ds.mu.Unlock()
	reqs := make([]prefetch.Request, 0, min(len(d.images), len(urls)))
	for _, im := range d.images {
		if _, ok := urls[im.id]; ok {
			reqs = append(reqs, c.imageRequest(ds, im))
		}
	}
	if len(reqs) > 0 {
		c.opts.Prefetcher.Enqueue(reqs)
	}
}

// createDataset makes a dataset for mkdir.
func (c *core) createDataset(ctx context.Context, name string) (*dataset, error) {
	meta, err := c.opts.API.CreateDataset(ctx, client.CreateDatasetRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("create dataset %q: %w", name, err)
	}
	return c.addDataset(name, *meta), nil
}

// deleteDataset deletes a dataset for rmdir, only when it has no images.
func (c *core) deleteDataset(ctx context.Context, name string) error {
	ds, err := c.lookupDataset(ctx, name)
	if err != nil {
		return err
	}
	fresh, err := c.opts.API.GetDataset(ctx, ds.id)
	if err != nil {
		return fmt.Errorf("rmdir %q: %w", name, err)
	}
	if fresh.ImageCount > 0 {
		return fmt.Errorf("rmdir %q: %d images: %w", name, fresh.ImageCount, errNotEmpty)
	}
	if _, err := c.opts.API.DeleteDataset(ctx, ds.id); err != nil {
		return fmt.Errorf("delete dataset %q: %w", name, err)
	}
	c.removeDataset(name)
	return nil
}

// renameDatasetRemote renames a dataset for mv at the root.
func (c *core) renameDatasetRemote(ctx context.Context, oldName, newName string) error {
	ds, err := c.lookupDataset(ctx, oldName)
	if err != nil {
		return err
	}
	if oldName == newName {
		return nil
	}
	if other, _ := c.lookupDataset(ctx, newName); other != nil {
		return fmt.Errorf("rename to %q: %w", newName, client.ErrConflict)
	}
	meta, err := c.opts.API.UpdateDataset(ctx, ds.id, client.UpdateDatasetRequest{NewName: &newName})
	if err != nil {
		return fmt.Errorf("rename dataset %q to %q: %w", oldName, newName, err)
	}
	c.renameDataset(oldName, newName, *meta)
	return nil
}
