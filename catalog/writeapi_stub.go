//go:build !contract

package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
)

// Until the client has the write routes of §11 (branch contract).

func (c *Catalog) annotationKey(ds *Dataset, im *Image) blobcache.Key {
	if d, ok := ds.docView(im.id); ok && d.editGen > 0 {
		return blobcache.KeyOf(c.opts.Namespace, "annotation", ds.id, im.id, "edit", strconv.Itoa(d.editGen))
	}
	return blobcache.KeyOf(c.opts.Namespace, "annotation", ds.id, im.id)
}

func (c *Catalog) baseAnnotationKey(ds *Dataset, im *Image) blobcache.Key {
	return blobcache.KeyOf(c.opts.Namespace, "annotation", ds.id, im.id)
}

func (c *Catalog) saveAnnotations(ctx context.Context, ds *Dataset, im *Image, anns json.RawMessage) (int, error) {
	return 0, fmt.Errorf("save annotations: %w", errNoWriteRoute)
}

func (c *Catalog) clearAnnotations(ctx context.Context, ds *Dataset, im *Image) error {
	return fmt.Errorf("clear annotations: %w", errNoWriteRoute)
}

func (c *Catalog) archiveImage(ctx context.Context, ds *Dataset, im *Image) error {
	return fmt.Errorf("archive image: %w", errNoWriteRoute)
}

func (c *Catalog) bulkUploadURLs(ctx context.Context, reqs []client.UploadURLRequest) ([]*client.UploadURL, []error, bool) {
	return nil, nil, false
}

func (c *Catalog) bulkRegister(ctx context.Context, reqs []client.RegisterImageRequest) ([]*client.Image, []error, bool) {
	return nil, nil, false
}
