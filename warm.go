package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/dustin/go-humanize"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/internal/control"
)

// errWarmTooBig is wrapped by a warm refused because it cannot fit.
var errWarmTooBig = errors.New("does not fit the cache")

// warmCatalog fills the cache with the images and annotation documents of a
// dataset, or of one folder of it, through catalog.(*Catalog).Warm, reported
// in the control protocol's terms. What its callers rely on:
//   - subdir is a folder under images/ in entry names ("" = the whole
//     dataset); its documents under annotations/ are warmed with it;
//   - the totals come first, from the listing, before anything is fetched:
//     progress is called once with Files == 0 and the totals, and a total
//     above the cache's capacity (--cache-size) fails with an error wrapping
//     errWarmTooBig before any fetch;
//   - progress is called from one goroutine at a time;
//   - a failed file counts in Failed and does not stop the warm; ctx ending
//     stops it and returns ctx's error;
//   - the result's FailedPaths lists some failures, for the summary.
func warmCatalog(ctx context.Context, cat *catalog.Catalog, dataset, subdir string, progress func(control.WarmProgress)) (control.WarmResult, error) {
	res, err := cat.Warm(ctx, dataset, subdir, catalog.WarmOptions{}, func(p catalog.WarmProgress) {
		progress(controlProgress(p))
	})
	out := control.WarmResult{WarmProgress: controlProgress(res.WarmProgress)}
	for _, e := range res.Errors {
		out.FailedPaths = append(out.FailedPaths, e.Error())
	}
	if errors.Is(err, catalog.ErrWontFit) {
		return out, fmt.Errorf("%s needs %s but the cache holds at most %s (--cache-size): %w",
			filepath.Join(dataset, subdir), humanize.IBytes(uint64(res.TotalBytes)), humanize.IBytes(uint64(cat.Options().Cache.MaxBytes())), errWarmTooBig)
	}
	return out, err
}

func controlProgress(p catalog.WarmProgress) control.WarmProgress {
	return control.WarmProgress{Files: int64(p.Files), Bytes: p.Bytes, TotalFiles: int64(p.TotalFiles), TotalBytes: p.TotalBytes, Failed: int64(p.Failed)}
}
