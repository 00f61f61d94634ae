package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/prefetch"
)

// OpenImage returns a pinned cache handle to an image's bytes, fetching them
// first (ahead of any readahead) when they are not cached. Once the
// dataset's documents are being read, it also starts the fetch of the
// image's document, which a training loop reads next.
func (c *Catalog) OpenImage(ctx context.Context, ds *Dataset, im *Image) (*blobcache.Handle, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
	defer cancel()
	c.documentAhead(ds, im)
	h, err := c.opts.Prefetcher.Get(ctx, c.imageRequest(ds, im))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", im.name, err)
	}
	return h, nil
}

// ListedDir is called when a directory of images/ is listed: its images are
// queued for readahead, once per listing, in listing order.
func (c *Catalog) ListedDir(ds *Dataset, d *Dir) {
	if d.readahead.Swap(true) {
		return
	}
	c.goBackground(func() { c.readaheadImages(ds, d) })
}

// readaheadImages queues the readahead of a directory's images that the
// download listings cover. Any other image costs an API request on the byte
// route: readahead must not spend the hourly plan on a guess (a read still
// fetches such an image on demand).
func (c *Catalog) readaheadImages(ds *Dataset, d *Dir) {
	covered, err := c.coverage(ds)
	if err != nil {
		c.log.Warn("readahead skipped: no signed URLs", "dataset", ds.id, "err", err)
		return
	}
	reqs := make([]prefetch.Request, 0, min(len(d.images), len(covered)))
	for _, im := range d.images {
		if covered[im.id] {
			reqs = append(reqs, c.imageRequest(ds, im))
		}
	}
	if len(reqs) > 0 {
		c.opts.Prefetcher.Enqueue(reqs)
	}
}

// coverage returns which images the dataset's download listings cover: the
// set kept from an earlier call while it is fresh, else from the signed URLs
// when they are loaded, else from the shared tier, else by loading them.
// Callers must not modify the map.
func (c *Catalog) coverage(ds *Dataset) (map[string]bool, error) {
	ds.mu.Lock()
	covered, coveredAt := ds.covered, ds.coveredAt
	urls, urlsAt := ds.urls, ds.urlsAt
	ds.mu.Unlock()
	if covered != nil && time.Since(coveredAt) < c.opts.URLMaxAge && !coveredAt.Before(urlsAt) {
		return covered, nil
	}
	if urls == nil || time.Since(urlsAt) >= c.opts.URLMaxAge {
		if covered, ok := c.sharedCoverage(c.ctx, ds); ok {
			c.keepCoverage(ds, covered, time.Now())
			return covered, nil
		}
		if _, _, _, err := c.signedURL(c.ctx, ds, ""); err != nil {
			return nil, err
		}
		ds.mu.Lock()
		urls, urlsAt = ds.urls, ds.urlsAt
		ds.mu.Unlock()
	}
	covered = make(map[string]bool, len(urls))
	for id := range urls {
		covered[id] = true
	}
	c.keepCoverage(ds, covered, urlsAt)
	return covered, nil
}

// keepCoverage stores covered as the dataset's coverage as of at.
func (c *Catalog) keepCoverage(ds *Dataset, covered map[string]bool, at time.Time) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if at.After(ds.coveredAt) || ds.covered == nil {
		ds.covered, ds.coveredAt = covered, at
	}
}

// imageRequest is the prefetch request for an image's bytes.
func (c *Catalog) imageRequest(ds *Dataset, im *Image) prefetch.Request {
	key := blobcache.KeyOf(c.opts.Namespace, "image", ds.id, im.id, strconv.FormatInt(im.size, 10), strconv.FormatInt(im.createdAt, 10))
	return prefetch.Request{
		Key:  key,
		Size: im.size,
		Name: im.name,
		Fetch: func(ctx context.Context, w io.Writer) error {
			return c.sharedFetch(ctx, key, im.size, w, func(ctx context.Context, w io.Writer) error {
				return c.fetchImage(ctx, ds, im, w)
			})
		},
	}
}

// fetchImage copies an image's bytes into w: through its signed URL when the
// download listing covers it (refreshing the listing once on a 403), else
// through the authenticated byte route.
func (c *Catalog) fetchImage(ctx context.Context, ds *Dataset, im *Image, w io.Writer) error {
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

func (c *Catalog) copySigned(ctx context.Context, u string, w io.Writer) error {
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

// signedURL returns the image's signed URL and when its listing was fetched,
// or ok=false when the download listing does not cover the image.
func (c *Catalog) signedURL(ctx context.Context, ds *Dataset, imageID string) (u string, at time.Time, ok bool, err error) {
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
func (c *Catalog) refreshURLs(ctx context.Context, ds *Dataset, staleAt time.Time) error {
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
		c.stats.urlRefreshes.Add(1)
		return nil, nil
	})
	_, err := await[any](c, ctx, "download listing", ch)
	return err
}

// downloadURLs fetches the signed URLs of a dataset's images, keyed by id.
func (c *Catalog) downloadURLs(ds *Dataset) (map[string]string, error) {
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
	if c.opts.StatusFilter == "" && truncated {
		// A download listing stops at 10000 items and has no offset, but
		// each status_filter gives its own 10000, so a larger dataset gets
		// signed URLs for up to four times as many images for three or
		// four more requests, instead of one request per image on the
		// byte route.
		for _, status := range Statuses {
			part, err := fetch(status)
			if err != nil {
				c.log.Warn("download listing by status failed; images it would cover use the byte route", "status", status, "err", err)
				continue
			}
			add(part)
		}
	}
	if c.opts.SharedCache != nil && c.opts.StatusFilter == "" {
		// Which images are covered, never the URLs: they are secrets.
		ids := make([]string, 0, len(urls))
		for id := range urls {
			ids = append(ids, id)
		}
		c.publishMeta(sharedCoverageName(ds), ids, time.Now(), c.opts.URLMaxAge)
	}
	return urls, nil
}
