package devserver

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"image"
	"mime"
	"path"
	"runtime"
	"strings"
	"sync"
	"time"
)

// CreateDataset creates a dataset in orgID, as POST /datasets/ does
// (errors match ErrInvalid, ErrConflict, ErrPlanLimit).
func (s *Server) CreateDataset(ctx context.Context, orgID string, req CreateDatasetRequest) (*Dataset, error) {
	d, err := s.createDataset(ctx, orgID, req)
	if err != nil {
		return nil, fmt.Errorf("devserver: create dataset: %w", err)
	}
	out := s.datasetJSON(d)
	return &out, nil
}

// Dataset returns a dataset of orgID by name or id (ErrNotFound if none).
func (s *Server) Dataset(ctx context.Context, orgID, ref string) (*Dataset, error) {
	d, err := s.st.dataset(ctx, s.st.r, orgID, ref)
	if err != nil {
		return nil, fmt.Errorf("devserver: dataset: %w", err)
	}
	out := s.datasetJSON(d)
	return &out, nil
}

// AddImage stores data as an image of the dataset (name or id) with the
// given annotations, WITHOUT validating the names: tests use it for hostile
// names ("..", "a/b", control characters, very long names, duplicates in
// one directory). An empty directoryPath is "/". The image is "complete"
// when it has annotations, else "new". Width and height are decoded from
// data when it is a PNG, JPEG or GIF. An empty contentType is guessed from
// the filename's extension. The annotations follow the rules of the save
// route: classes of the dataset, known types and geometry.
func (s *Server) AddImage(ctx context.Context, orgID, dataset, directoryPath, filename, contentType string,
	data []byte, anns []Annotation) (*Image, error) {
	d, err := s.st.dataset(ctx, s.st.r, orgID, dataset)
	if err != nil {
		return nil, fmt.Errorf("devserver: add image: %w", err)
	}
	if contentType == "" {
		contentType = mime.TypeByExtension(strings.ToLower(path.Ext(filename)))
		if contentType == "" {
			contentType = "application/octet-stream"
		}
	}
	if directoryPath == "" {
		directoryPath = "/"
	} else if !strings.HasPrefix(directoryPath, "/") {
		directoryPath = "/" + directoryPath
	}
	doc, err := checkedAnnotations(anns, datasetClasses(d))
	if err != nil {
		return nil, fmt.Errorf("devserver: add image: %w", err)
	}
	sum, err := s.blobs.put(data)
	if err != nil {
		return nil, fmt.Errorf("devserver: add image: %w", err)
	}
	im := &newImage{imageRow: imageRow{
		id: newID(), datasetID: d.id, dir: directoryPath, filename: filename, status: "new",
		annotationCount: len(anns), fileSize: int64(len(data)), contentType: contentType, tags: "[]",
		blob: sum, createdAt: micros(time.Now()),
	}, annotations: doc}
	if len(anns) > 0 {
		im.status = "complete"
	}
	if sp := splitOf(directoryPath); sp != nil {
		im.split = sql.NullString{String: *sp, Valid: true}
	}
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
		im.width, im.height = cfg.Width, cfg.Height
	}
	if err := s.st.insertImages(ctx, d.seq, []*newImage{im}, false, time.Now()); err != nil {
		return nil, fmt.Errorf("devserver: add image: %w", err)
	}
	out := s.imageJSON(s.APIURL(), &im.imageRow)
	return &out, nil
}

// SetImageStatus sets an image's status (new, annotate, review, complete).
func (s *Server) SetImageStatus(ctx context.Context, orgID, imageID, status string) error {
	if !statuses[status] {
		return fmt.Errorf("devserver: unknown status %q: %w", status, ErrInvalid)
	}
	if err := s.st.setStatus(ctx, orgID, imageID, status, time.Now()); err != nil {
		return fmt.Errorf("devserver: set status: %w", err)
	}
	return nil
}

// SetAnnotations replaces an image's annotations with the rules of POST
// /annotations/{dataset}/{image_path} (classes of the dataset, known
// types and geometry); the image's status does not change.
func (s *Server) SetAnnotations(ctx context.Context, orgID, imageID string, anns []Annotation) error {
	im, err := s.st.imageByID(ctx, orgID, imageID)
	if err != nil {
		return fmt.Errorf("devserver: set annotations: %w", err)
	}
	d, err := s.st.datasetBySeq(ctx, s.st.r, im.dsSeq)
	if err != nil {
		return fmt.Errorf("devserver: set annotations: %w", err)
	}
	doc, err := checkedAnnotations(anns, datasetClasses(d))
	if err != nil {
		return fmt.Errorf("devserver: set annotations: %w", err)
	}
	if _, err := s.st.setAnnotations(ctx, im, doc, len(anns)); err != nil {
		return fmt.Errorf("devserver: set annotations: %w", err)
	}
	return nil
}

// bulkBatch is the number of images inserted per transaction by bulkLoad.
const bulkBatch = 2000

// bulkLoad makes n images with gen (called in parallel by a worker pool,
// one call per index; it stores the blob and returns the row, or nil to
// skip) and inserts them into dataset dsSeq in batched transactions by one
// writer. progress, if not nil, is called after each batch.
func (s *Server) bulkLoad(ctx context.Context, dsSeq int64, n int,
	gen func(i int) (*newImage, error), progress func(done int)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	results := make(chan *newImage, 4*bulkBatch)
	var wg sync.WaitGroup
	for range 4 * max(1, runtime.GOMAXPROCS(0)) { // more than the CPUs: blob writes block on I/O
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				im, err := gen(i)
				if err != nil {
					cancel(err)
					return
				}
				if im == nil {
					continue
				}
				select {
				case results <- im:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range n {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(results)
	}()
	batch := make([]*newImage, 0, bulkBatch)
	done := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.st.insertImages(ctx, dsSeq, batch, false, time.Now()); err != nil {
			return err
		}
		done += len(batch)
		batch = batch[:0]
		if progress != nil {
			progress(done)
		}
		return nil
	}
	for im := range results {
		batch = append(batch, im)
		if len(batch) == bulkBatch {
			if err := flush(); err != nil {
				cancel(err)
				break
			}
		}
	}
	for range results {
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return flush()
}
