package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
)

// The write routes of §11 beyond the single upload, each behind its own
// narrow interface (*client.Client has them all): a client without one
// makes that change ErrNotPermitted, and one without the bulk routes
// uploads one image per request.

// bulkUploadAPI uploads images in groups (§11).
type bulkUploadAPI interface {
	BulkUploadURLs(ctx context.Context, dataset string, images []client.BulkUploadItem) (*client.BulkUploadURLs, error)
	BulkRegisterImages(ctx context.Context, dataset string, images []client.BulkRegisterItem) (*client.BulkRegisterResult, error)
}

// annotationSaveAPI saves and clears an image's annotations (§11).
type annotationSaveAPI interface {
	SaveAnnotationsAt(ctx context.Context, dataset, directoryPath, filename string, annotations json.RawMessage) (*client.SaveResult, error)
	DeleteAnnotations(ctx context.Context, dataset, directoryPath, filename string) (*client.DeleteAnnotationsResult, error)
}

// imageDeleteAPI archives an image (§11).
type imageDeleteAPI interface {
	DeleteImage(ctx context.Context, dataset, directoryPath, filename string, permanent bool) error
}

// annotationKey is the cache key of im's document. A document changed
// through this mount gets a new key each time, so a fetch of the old one
// still in flight can never be served as the new one.
func (c *Catalog) annotationKey(ds *Dataset, im *Image) blobcache.Key {
	if d, ok := ds.docView(im.id); ok && d.editGen > 0 {
		return blobcache.KeyOf(c.opts.Namespace, "annotation", ds.id, im.id, "edit", strconv.Itoa(d.editGen))
	}
	return blobcache.KeyOf(c.opts.Namespace, "annotation", ds.id, im.id)
}

// baseAnnotationKey is the key of im's document as a mount that changed
// nothing caches it: dropped on a change, so the next mount fetches again.
func (c *Catalog) baseAnnotationKey(ds *Dataset, im *Image) blobcache.Key {
	return blobcache.KeyOf(c.opts.Namespace, "annotation", ds.id, im.id)
}

// saveAnnotations replaces im's annotations and returns their new count.
func (c *Catalog) saveAnnotations(ctx context.Context, ds *Dataset, im *Image, anns json.RawMessage) (int, error) {
	api, ok := c.opts.API.(annotationSaveAPI)
	if !ok {
		return 0, fmt.Errorf("save annotations: %w", errNoWriteRoute)
	}
	res, err := api.SaveAnnotationsAt(ctx, ds.id, im.remoteDir, im.filename, anns)
	if err != nil {
		return 0, err
	}
	return res.NewCount, nil
}

// clearAnnotations removes all of im's annotations.
func (c *Catalog) clearAnnotations(ctx context.Context, ds *Dataset, im *Image) error {
	api, ok := c.opts.API.(annotationSaveAPI)
	if !ok {
		return fmt.Errorf("clear annotations: %w", errNoWriteRoute)
	}
	_, err := api.DeleteAnnotations(ctx, ds.id, im.remoteDir, im.filename)
	return err
}

// archiveImage archives im (never a permanent delete).
func (c *Catalog) archiveImage(ctx context.Context, ds *Dataset, im *Image) error {
	api, ok := c.opts.API.(imageDeleteAPI)
	if !ok {
		return fmt.Errorf("archive image: %w", errNoWriteRoute)
	}
	return api.DeleteImage(ctx, ds.id, im.remoteDir, im.filename, false)
}

// bulkUploadURLs asks for a group's upload URLs in one request, when the
// group has several and the API has the bulk route. A refusal of the whole
// group (one bad item) is answered item by item, so that each gets its own
// error.
func (c *Catalog) bulkUploadURLs(ctx context.Context, reqs []client.UploadURLRequest) ([]*client.UploadURL, []error, bool) {
	api, ok := c.opts.API.(bulkUploadAPI)
	if !ok || len(reqs) < 2 {
		return nil, nil, false
	}
	items := make([]client.BulkUploadItem, len(reqs))
	for i, r := range reqs {
		items[i] = client.BulkUploadItem{Filename: r.Filename, DirectoryPath: r.DirectoryPath, ContentType: r.ContentType}
	}
	resps, errs := make([]*client.UploadURL, len(reqs)), make([]error, len(reqs))
	out, err := api.BulkUploadURLs(ctx, reqs[0].Dataset, items)
	switch {
	case err != nil && isPermanent(err):
		return nil, nil, false
	case err != nil:
		for i := range errs {
			errs[i] = err
		}
		return resps, errs, true
	}
	for i, u := range out.UploadURLs {
		resps[i] = &client.UploadURL{Filename: u.Filename, DirectoryPath: u.DirectoryPath, UploadURL: u.UploadURL,
			ExpiresInMinutes: out.ExpiresInMinutes}
	}
	return resps, errs, true
}

// bulkRegister registers a group in one request, when it has several and
// the API has the bulk route. An image the server refuses as a duplicate
// is ErrConflict; one refused for another reason is registered alone, so
// that its error is the route's typed one.
func (c *Catalog) bulkRegister(ctx context.Context, reqs []client.RegisterImageRequest) ([]*client.Image, []error, bool) {
	api, ok := c.opts.API.(bulkUploadAPI)
	if !ok || len(reqs) < 2 {
		return nil, nil, false
	}
	items := make([]client.BulkRegisterItem, len(reqs))
	for i, r := range reqs {
		items[i] = client.BulkRegisterItem{Filename: r.Filename, DirectoryPath: r.DirectoryPath, FileSize: r.FileSize,
			ContentType: r.ContentType, Width: r.Width, Height: r.Height}
	}
	resps, errs := make([]*client.Image, len(reqs)), make([]error, len(reqs))
	out, err := api.BulkRegisterImages(ctx, reqs[0].Dataset, items)
	switch {
	case err != nil && isPermanent(err):
		return nil, nil, false
	case err != nil:
		for i := range errs {
			errs[i] = err
		}
		return resps, errs, true
	}
	type place struct{ dir, name string }
	index := make(map[place]int, len(reqs))
	for i, r := range reqs {
		index[place{normalizeRemoteDir(r.DirectoryPath), r.Filename}] = i
	}
	for i := range out.Succeeded {
		img := &out.Succeeded[i]
		if j, ok := index[place{normalizeRemoteDir(img.DirectoryPath), img.Filename}]; ok {
			resps[j] = img
		}
	}
	var retry []int
	for _, f := range out.Failed {
		j, ok := index[place{normalizeRemoteDir(f.DirectoryPath), f.Filename}]
		if !ok {
			continue
		}
		if saysExists(f.Error) {
			errs[j] = fmt.Errorf("%s: %w", f.Error, client.ErrConflict)
		} else {
			retry = append(retry, j)
		}
	}
	for j := range resps {
		if resps[j] == nil && errs[j] == nil && !slices.Contains(retry, j) {
			retry = append(retry, j)
		}
	}
	for _, j := range retry {
		resps[j], errs[j] = c.opts.API.(uploadAPI).RegisterImage(ctx, reqs[j])
	}
	return resps, errs, true
}

// normalizeRemoteDir makes "", "/", "a", "/a/" comparable.
func normalizeRemoteDir(p string) string { return "/" + strings.Join(splitPath(p), "/") }

// saysExists reports whether a refusal says the name is taken.
func saysExists(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "duplicate") || (strings.Contains(m, "exist") && !strings.Contains(m, "not exist"))
}
