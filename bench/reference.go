package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
)

// refFile is what a mount must serve for one image: the SHA-256 and size of
// its bytes (from the authenticated byte route) and of its annotation
// document (the per-image route's body, re-serialized with two-space
// indentation as the SDK writes it; the SDK's empty document for an image
// the listing says has no annotations).
type refFile struct {
	imageSHA, docSHA   string
	imageSize, docSize int64
}

// reference is every file of a dataset as the API serves it, keyed by the
// image's path under images/.
type reference struct {
	dataset   string
	files     map[string]refFile
	annotated int // images with annotation_count > 0
}

// line is rel's digest line (see digestLine).
func (r *reference) line(rel string) string {
	f := r.files[rel]
	return rel + " " + f.imageSHA + " " + f.docSHA
}

// expected is the count and digest of an epoch that reads every file.
func (r *reference) expected() expected {
	lines := make([]string, 0, len(r.files))
	for rel := range r.files {
		lines = append(lines, r.line(rel))
	}
	return expected{images: len(lines), digest: digestOf(lines)}
}

// checkLines compares the digest lines of a partial epoch with the
// reference: every line must be the reference's for its image, and no image
// may come twice. It returns how many lines it checked.
func (r *reference) checkLines(what string, lines []string) (int, error) {
	seen := make(map[string]bool, len(lines))
	var bad []string
	for _, l := range lines {
		rel := l
		if len(l) > 130 { // "<rel> <64 hex> <64 hex>"
			rel = l[:len(l)-130]
		}
		if _, ok := r.files[rel]; !ok || r.line(rel) != l || seen[rel] {
			bad = append(bad, rel)
		}
		seen[rel] = true
	}
	if len(bad) > 0 {
		return len(lines), fmt.Errorf("%s read wrong bytes (or an image twice) for %d of %d images, e.g. %q", what, len(bad), len(lines), bad[0])
	}
	return len(lines), nil
}

// buildReferences starts the devserver of dataDir in-process, with no
// injected latency, and reads every dataset in names through the API the way
// the SDK does: every image's bytes from the byte route (unless withImages
// says no) and every annotated image's document from the per-image route.
// The harness checks what mounts serve against these.
func buildReferences(ctx context.Context, dataDir string, names []string, withImages map[string]bool, logf func(string, ...any)) (map[string]*reference, error) {
	srv, err := devserver.New(ctx, devserver.Options{DataDir: dataDir, RequestsPerHour: 1 << 30})
	if err != nil {
		return nil, fmt.Errorf("references: open data dir: %w", err)
	}
	defer srv.Close()
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("references: %w", err)
	}
	const workers = 16
	a := newAPIClient(srv.APIURL(), srv.AdminKey(), workers)
	defer a.close()
	out := map[string]*reference{}
	for _, name := range names {
		start := time.Now()
		ref, err := buildReference(ctx, a, name, withImages[name], workers)
		if err != nil {
			return nil, fmt.Errorf("references: %s: %w", name, err)
		}
		logf("reference of %s: %d images (%d annotated) read from the API in %v", name, len(ref.files), ref.annotated, time.Since(start).Round(time.Millisecond))
		out[name] = ref
	}
	return out, nil
}

func buildReference(ctx context.Context, a *apiClient, name string, withImages bool, workers int) (*reference, error) {
	_, images, err := a.datasetImages(ctx, name)
	if err != nil {
		return nil, err
	}
	ref := &reference{dataset: name, files: make(map[string]refFile, len(images))}
	var (
		mu       sync.Mutex // guards ref.files and firstErr
		firstErr error
		wg       sync.WaitGroup
	)
	jobs := make(chan client.Image)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Go(func() {
			for im := range jobs {
				rel, f, err := referenceFile(ctx, a, im, withImages)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil {
					if _, dup := ref.files[rel]; dup && firstErr == nil {
						firstErr = fmt.Errorf("two images at %s", rel)
					}
					ref.files[rel] = f
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, im := range images {
		if im.AnnotationCount > 0 {
			ref.annotated++
		}
		select {
		case jobs <- im:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(firstErr, ctx.Err()); err != nil {
		return nil, err
	}
	return ref, nil
}

func referenceFile(ctx context.Context, a *apiClient, im client.Image, withImages bool) (string, refFile, error) {
	rel, err := localPath(im)
	if err != nil {
		return "", refFile{}, err
	}
	f := refFile{imageSize: im.FileSize}
	if withImages {
		u, err := url.Parse(im.ImageURL)
		if err != nil {
			return "", refFile{}, fmt.Errorf("image_url of %s: %w", rel, err)
		}
		b, err := a.get(ctx, u.EscapedPath(), nil)
		if err != nil {
			return "", refFile{}, err
		}
		if int64(len(b)) != im.FileSize {
			return "", refFile{}, fmt.Errorf("%s: the byte route gave %d bytes, the listing says %d", rel, len(b), im.FileSize)
		}
		f.imageSHA = sha256Hex(b)
	}
	doc := emptyAnnotationDoc(im.Filename)
	if im.AnnotationCount > 0 {
		u, err := url.Parse(im.AnnotationURL)
		if err != nil {
			return "", refFile{}, fmt.Errorf("annotation_url of %s: %w", rel, err)
		}
		raw, err := a.get(ctx, u.EscapedPath(), nil)
		if err != nil {
			return "", refFile{}, err
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
			return "", refFile{}, fmt.Errorf("annotation of %s: %w", rel, err)
		}
		doc = buf.Bytes()
	}
	f.docSHA, f.docSize = sha256Hex(doc), int64(len(doc))
	return rel, f, nil
}
