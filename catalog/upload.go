package catalog

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pictofs/pictofs/client"
)

// Uploads. Each image costs an upload URL and a register request, and one
// PUT to storage. Requests of one dataset are grouped as in a group commit:
// the first file to close is sent at once, and the files that close while a
// request is in flight go together in the next one, through the bulk routes
// (up to client.MaxBulkUpload each). A writer that closes one file after
// another (cp, rsync) waits for no window; writers in parallel share
// requests.

// uploadBatchers are a dataset's request groups.
type uploadBatchers struct {
	urls      batcher[client.UploadURLRequest, *client.UploadURL]
	registers batcher[client.RegisterImageRequest, *client.Image]
}

// batcher runs requests of one kind in groups: one group in flight at a
// time, the requests that arrive meanwhile wait and go in the next.
type batcher[Req, Resp any] struct {
	mu      sync.Mutex // guards queue and running
	queue   []*batchCall[Req, Resp]
	running bool
}

type batchCall[Req, Resp any] struct {
	req  Req
	resp Resp
	err  error
	done chan struct{}
}

// do queues req and waits for its answer, or for ctx. run answers a group
// (one answer or error per request, in order); it runs on the catalog's
// background context, so one caller giving up does not fail the others.
func (b *batcher[Req, Resp]) do(ctx context.Context, c *Catalog, req Req, maxGroup int,
	run func(ctx context.Context, reqs []Req) ([]Resp, []error)) (Resp, error) {
	call := &batchCall[Req, Resp]{req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, call)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		c.goBackground(func() { b.loop(c, maxGroup, run) })
	}
	select {
	case <-call.done:
		return call.resp, call.err
	case <-ctx.Done():
		var zero Resp
		return zero, ctx.Err()
	}
}

func (b *batcher[Req, Resp]) loop(c *Catalog, maxGroup int, run func(context.Context, []Req) ([]Resp, []error)) {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		n := min(len(b.queue), maxGroup)
		group := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		reqs := make([]Req, len(group))
		for i, call := range group {
			reqs[i] = call.req
		}
		resps, errs := run(c.ctx, reqs)
		for i, call := range group {
			call.resp, call.err = resps[i], errs[i]
			close(call.done)
		}
	}
}

// eachAlone answers a group one request at a time, in parallel.
func eachAlone[Req, Resp any](ctx context.Context, reqs []Req, one func(context.Context, Req) (Resp, error)) ([]Resp, []error) {
	resps, errs := make([]Resp, len(reqs)), make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i], errs[i] = one(ctx, r)
		}()
	}
	wg.Wait()
	return resps, errs
}

// maxUploadGroup is the largest group of one request.
const maxUploadGroup = 500

// upload sends an image's bytes and registers it: the image the server
// made. remoteDir is its directory_path ("/" for the top).
func (c *Catalog) upload(ctx context.Context, ds *Dataset, remoteDir, filename, contentType string, data []byte) (*client.Image, error) {
	api := c.opts.API.(uploadAPI)
	dsName := ds.Meta().Name
	remoteDir = cmp.Or(remoteDir, "/")
	width, height := imageSize(data)
	l := &ds.local
	up, err := l.uploads.urls.do(ctx, c, client.UploadURLRequest{
		Dataset: dsName, Filename: filename, DirectoryPath: remoteDir, ContentType: contentType,
	}, maxUploadGroup, func(ctx context.Context, reqs []client.UploadURLRequest) ([]*client.UploadURL, []error) {
		return c.uploadURLs(ctx, reqs)
	})
	if err != nil {
		return nil, fmt.Errorf("upload URL for %s: %w", filename, err)
	}
	select {
	case c.writes.putSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	err = api.PutUpload(ctx, up.UploadURL, contentType, data)
	<-c.writes.putSlots
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", filename, err)
	}
	img, err := l.uploads.registers.do(ctx, c, client.RegisterImageRequest{
		Dataset: dsName, Filename: cmp.Or(up.Filename, filename), DirectoryPath: cmp.Or(up.DirectoryPath, remoteDir),
		FileSize: int64(len(data)), ContentType: contentType, Width: width, Height: height,
	}, maxUploadGroup, func(ctx context.Context, reqs []client.RegisterImageRequest) ([]*client.Image, []error) {
		return c.registerImages(ctx, reqs)
	})
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", filename, err)
	}
	c.writes.uploads.Add(1)
	return img, nil
}

// uploadURLs asks for the upload URLs of a group.
func (c *Catalog) uploadURLs(ctx context.Context, reqs []client.UploadURLRequest) ([]*client.UploadURL, []error) {
	if resps, errs, ok := c.bulkUploadURLs(ctx, reqs); ok {
		return resps, errs
	}
	return eachAlone(ctx, reqs, c.opts.API.(uploadAPI).RequestUploadURL)
}

// registerImages registers a group of uploaded images.
func (c *Catalog) registerImages(ctx context.Context, reqs []client.RegisterImageRequest) ([]*client.Image, []error) {
	if resps, errs, ok := c.bulkRegister(ctx, reqs); ok {
		return resps, errs
	}
	return eachAlone(ctx, reqs, c.opts.API.(uploadAPI).RegisterImage)
}

// fillUploaded puts the bytes of an image just uploaded into the cache,
// under the key its reads use, so reading it back costs no download.
func (c *Catalog) fillUploaded(ctx context.Context, ds *Dataset, im *Image, data []byte) {
	req := c.imageRequest(ds, im)
	h, err := c.opts.Cache.Fill(ctx, req.Key, int64(len(data)), func(ctx context.Context, w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		c.log.Debug("uploaded image not cached", "name", im.name, "err", err)
		return
	}
	h.Release()
}

// uploadTimeout bounds one upload (URL, PUT, register) on behalf of a
// closing file: the client's retries (§7) fit in it.
const uploadTimeout = 10 * time.Minute
