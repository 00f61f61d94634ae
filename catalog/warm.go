package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// WarmOptions configures Warm.
type WarmOptions struct {
	// SkipImages and SkipAnnotations leave one kind of file out.
	SkipImages, SkipAnnotations bool
	// Workers is the number of fetches in flight. Default 32.
	Workers int
}

// WarmProgress is the state of a warm-up, reported as it goes.
type WarmProgress struct {
	Files, TotalFiles int   // files done (fetched, already cached, or failed) of all
	Bytes, TotalBytes int64 // bytes done of all (documents count once known)
	Cached            int   // files that were in the cache already
	Failed            int   // files that could not be fetched
}

// WarmResult is the outcome of a warm-up.
type WarmResult struct {
	WarmProgress
	// Errors holds the first errors met (at most 20), each naming its file.
	Errors []error
}

// ErrWontFit is returned by Warm, before it fetches anything, when the files
// to warm are larger than the cache can hold.
var ErrWontFit = errors.New("does not fit in the cache")

// Warm fills the disk cache with the images of a dataset, or of one folder
// of it (subdir, a path under images/ such as "train/cars"; "" for all), and
// with their annotation documents: the bulk export snapshot when bulk
// annotations are on (a few requests for the whole dataset), else one
// request per annotated image, within the client's budget. progress, if
// set, is called once with the totals before anything is fetched, then after
// each file, from one goroutine, never under a lock of the catalog's.
// Cancelling ctx stops the warm-up; what was fetched stays cached.
func (c *Catalog) Warm(ctx context.Context, dataset, subdir string, opts WarmOptions, progress func(WarmProgress)) (WarmResult, error) {
	if opts.Workers <= 0 {
		opts.Workers = 32
	}
	ds, err := c.Dataset(ctx, dataset)
	if err != nil {
		return WarmResult{}, err
	}
	root, err := c.Dir(ctx, ds, strings.Join(splitPath(subdir), "/"))
	if err != nil {
		return WarmResult{}, fmt.Errorf("folder %q of %s: %w", subdir, dataset, err)
	}
	var ims []*Image
	var collect func(d *Dir)
	collect = func(d *Dir) {
		ims = append(ims, d.images...)
		for _, sub := range d.dirs {
			collect(sub)
		}
	}
	collect(root)

	var total WarmProgress
	for _, im := range ims {
		if !opts.SkipImages {
			total.TotalFiles++
			total.TotalBytes += im.size
		}
		if !opts.SkipAnnotations {
			total.TotalFiles++
		}
	}
	if limit := c.opts.Cache.MaxBytes(); total.TotalBytes > limit {
		return WarmResult{WarmProgress: total}, fmt.Errorf("%s: %d images of %d bytes, but the cache holds at most %d bytes: %w",
			dataset, len(ims), total.TotalBytes, limit, ErrWontFit)
	}

	w := &warmer{c: c, ds: ds, state: total, updates: make(chan WarmProgress, 64)}
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		if progress != nil {
			progress(total)
		}
		last := 0
		for p := range w.updates {
			// Workers send in any order: report only what moves forward.
			if progress != nil && p.Files > last {
				last = p.Files
				progress(p)
			}
		}
	}()
	if !opts.SkipAnnotations && len(ims) > 0 {
		// Start the bulk snapshot first: documents then cost no request.
		c.noteDocumentNeed(ds)
	}
	jobs := make(chan func(), opts.Workers)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				job()
			}
		}()
	}
	feed := func(job func()) bool {
		select {
		case jobs <- job:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, im := range ims {
		if !opts.SkipImages && !feed(func() { w.image(ctx, im) }) {
			break
		}
	}
	if !opts.SkipAnnotations && ctx.Err() == nil {
		c.waitForExport(ctx, ds)
		for _, im := range ims {
			if !feed(func() { w.document(ctx, im) }) {
				break
			}
		}
	}
	close(jobs)
	wg.Wait()
	close(w.updates)
	<-reported
	res := w.result()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// warmer counts a warm-up's progress.
type warmer struct {
	c       *Catalog
	ds      *Dataset
	updates chan WarmProgress // to the goroutine that reports progress

	mu     sync.Mutex // guards state, errors
	state  WarmProgress
	errors []error
}

func (w *warmer) image(ctx context.Context, im *Image) {
	req := w.c.imageRequest(w.ds, im)
	if w.c.opts.Cache.Contains(req.Key) {
		w.done(im.size, true, nil)
		return
	}
	h, err := w.c.opts.Prefetcher.Get(ctx, req)
	if err != nil {
		w.done(0, false, fmt.Errorf("image %s: %w", serverPath(im), err))
		return
	}
	size := h.Size()
	h.Release()
	w.done(size, false, nil)
}

func (w *warmer) document(ctx context.Context, im *Image) {
	if n, ok := w.c.KnownAnnotationSize(w.ds, im); ok && (im.annCount == 0 || w.fromSnapshot(im)) {
		w.done(n, true, nil)
		return
	}
	req := w.c.annotationRequest(w.ds, im)
	if h, ok := w.c.opts.Cache.Get(req.Key, req.MaxAge); ok {
		w.done(h.Size(), true, nil)
		h.Release()
		return
	}
	doc, err := w.c.OpenAnnotation(ctx, w.ds, im)
	if err != nil {
		w.done(0, false, fmt.Errorf("annotation document of %s: %w", serverPath(im), err))
		return
	}
	size := doc.Size()
	doc.Release()
	w.done(size, false, nil)
}

func (w *warmer) fromSnapshot(im *Image) bool {
	_, _, ok := w.c.exportDoc(w.ds, im)
	return ok
}

// serverPath is an image's path as the server names it.
func serverPath(im *Image) string {
	if d := strings.Trim(im.remoteDir, "/"); d != "" {
		return d + "/" + im.filename
	}
	return im.filename
}

func (w *warmer) done(bytes int64, cached bool, err error) {
	w.mu.Lock()
	w.state.Files++
	w.state.Bytes += bytes
	if cached {
		w.state.Cached++
	}
	if err != nil {
		w.state.Failed++
		if len(w.errors) < 20 {
			w.errors = append(w.errors, err)
		}
	}
	p := w.state
	w.mu.Unlock()
	w.updates <- p
}

func (w *warmer) result() WarmResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	return WarmResult{WarmProgress: w.state, Errors: w.errors}
}
