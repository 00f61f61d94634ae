package devserver

import (
	"archive/zip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// Exports (§10). An export is built in the background: it is pending for
// the first third of the export delay, then processing, and completed (or
// failed) once the delay has passed and the build has ended. The build
// reads one SQLite snapshot and streams the ZIP into the blob store, so an
// edit after the build started is not in it and a dataset of any size is
// built in bounded memory. The ZIP is served by the storage listener behind
// a signed URL like the images: {storage}/x/{export_id}?expires&signature.

// Export limits and defaults.
const (
	maxExportName       = 100 // characters
	defaultExportsLimit = 20
	maxBulkDelete       = 1000
	exportTTL           = 7 * 24 * time.Hour // the soft expires_at after completion
	maxConcurrentBuilds = 2
)

// exportFormats are the formats of §10; buildable are the ones the
// devserver builds (the others are a 422 unsupported_format).
var exportFormats = []string{"pictograph", "darwin", "coco", "yolo", "yolo_obb", "yolo_pose", "dota",
	"pascal_voc", "cvat", "datumaro", "labelme", "csv"}

var buildable = map[string]bool{"pictograph": true, "coco": true}

// exportObject is the Export object of §10.
type exportObject struct {
	ID              string     `json:"id"`
	OrganizationID  string     `json:"organization_id"`
	DatasetID       string     `json:"dataset_id"`
	DatasetName     string     `json:"dataset_name"`
	Name            string     `json:"name"`
	Format          string     `json:"format"`
	IncludeImages   bool       `json:"include_images"`
	ClassFilter     []string   `json:"class_filter"`
	StatusFilter    *string    `json:"status_filter"`
	Status          string     `json:"status"`
	ErrorMessage    *string    `json:"error_message"`
	FileSize        *int64     `json:"file_size"`
	ImageCount      *int64     `json:"image_count"`
	AnnotationCount *int64     `json:"annotation_count"`
	CreatedAt       time.Time  `json:"created_at"`
	ExpiresAt       *time.Time `json:"expires_at"`
	DownloadURL     string     `json:"download_url,omitempty"`
}

// createExportRequest is the body of POST /exports/.
type createExportRequest struct {
	DatasetName     string   `json:"dataset_name"`
	Name            string   `json:"name"`
	Format          string   `json:"format"`
	IncludeImages   *bool    `json:"include_images"`
	ClassFilter     []string `json:"class_filter"`
	StatusFilter    *string  `json:"status_filter"`
	OrganizeBySplit *bool    `json:"organize_by_split"`
}

type exportLink struct {
	DownloadURL string `json:"download_url"`
}

type exportDeleted struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Deleted bool   `json:"deleted"`
}

type bulkDeleteRequest struct {
	ExportIDs []string `json:"export_ids"`
}

type bulkDeleteResult struct {
	Succeeded []string `json:"succeeded"`
	NotFound  []string `json:"not_found"`
	Count     int      `json:"count"`
}

func exportPath(id string) string { return "/x/" + id }

// exportDownloadURL is the signed storage link to export id's ZIP, valid
// from now for the link lifetime in force.
func (s *Server) exportDownloadURL(r *http.Request, id string, now time.Time) string {
	return s.signedURL(s.storageBase(r), http.MethodGet, exportPath(id), s.expiry(now))
}

func (s *Server) exportRoutes(mux *http.ServeMux, p string) {
	counted := func(h handlerFunc) http.HandlerFunc {
		return s.adapt(func(w http.ResponseWriter, r *http.Request, pr *principal) error {
			s.stats.exportRequests.Add(1)
			return h(w, r, pr)
		})
	}
	mux.Handle("POST "+p+"/exports/{$}", counted(s.idempotent(s.createExport)))
	mux.Handle("GET "+p+"/exports/{$}", counted(s.listExports))
	mux.Handle("GET "+p+"/exports", counted(s.listExports))
	mux.Handle("POST "+p+"/exports/bulk-delete", counted(s.idempotent(s.bulkDeleteExports)))
	mux.Handle("GET "+p+"/exports/{export}", counted(s.getExport))
	mux.Handle("GET "+p+"/exports/{export}/download", counted(s.exportDownload))
	mux.Handle("DELETE "+p+"/exports/{export}", counted(s.deleteExportHandler))
}

// exportJSON renders e; a completed export carries a fresh signed link.
func (s *Server) exportJSON(r *http.Request, e *exportRow, now time.Time) exportObject {
	out := exportObject{
		ID: e.id, OrganizationID: e.orgID, DatasetID: e.datasetID, DatasetName: e.datasetName, Name: e.name,
		Format: e.format, IncludeImages: e.includeImages, ClassFilter: e.classes(), Status: e.status,
		CreatedAt: fromMicros(e.createdAt),
	}
	if e.statusFilter.Valid {
		out.StatusFilter = &e.statusFilter.String
	}
	if e.errorMessage.Valid {
		out.ErrorMessage = &e.errorMessage.String
	}
	if e.fileSize.Valid {
		out.FileSize = &e.fileSize.Int64
	}
	if e.imageCount.Valid {
		out.ImageCount = &e.imageCount.Int64
	}
	if e.annotationCount.Valid {
		out.AnnotationCount = &e.annotationCount.Int64
	}
	if e.expiresAt.Valid {
		t := fromMicros(e.expiresAt.Int64)
		out.ExpiresAt = &t
	}
	if e.status == "completed" {
		out.DownloadURL = s.exportDownloadURL(r, e.id, now)
	}
	return out
}

func (s *Server) createExport(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("member"); err != nil {
		return err
	}
	var req createExportRequest
	if err := decodeStrictJSON(w, r, &req); err != nil {
		return err
	}
	e, err := s.newExport(r.Context(), p.orgID, req)
	if err != nil {
		return err
	}
	if err := s.st.insertExport(r.Context(), e); err != nil {
		return err
	}
	s.startBuild(e.id, e.fail)
	writeJSON(w, http.StatusCreated, dataEnvelope{Data: s.exportJSON(r, e, time.Now())})
	return nil
}

// newExport validates a create request into a pending export.
func (s *Server) newExport(ctx context.Context, orgID string, req createExportRequest) (*exportRow, error) {
	switch {
	case req.DatasetName == "":
		return nil, unprocessable("dataset_name is required")
	case strings.TrimSpace(req.Name) == "":
		return nil, unprocessable("name is required")
	case utf8.RuneCountInString(req.Name) > maxExportName:
		return nil, unprocessable("name has %d characters; at most %d", utf8.RuneCountInString(req.Name), maxExportName)
	case strings.ContainsRune(req.Name, 0):
		return nil, badRequest("name must not contain NUL")
	case req.IncludeImages == nil:
		return nil, unprocessable("include_images is required (true or false)")
	}
	format := req.Format
	if format == "" {
		format = "pictograph"
	}
	if !buildable[format] {
		for _, f := range exportFormats {
			if f == format {
				return nil, apiErr(http.StatusUnprocessableEntity, "unsupported_format",
					"format %q is not supported by the devserver: it builds pictograph and coco", format)
			}
		}
		return nil, unprocessable("unknown format %q: want one of %s", format, strings.Join(exportFormats, ", "))
	}
	d, err := s.st.dataset(ctx, s.st.r, orgID, req.DatasetName)
	if err != nil {
		return nil, err
	}
	e := &exportRow{
		id: newID(), orgID: orgID, dsSeq: d.seq, datasetID: d.id, datasetName: d.name, name: req.Name,
		format: format, includeImages: *req.IncludeImages, status: "pending", createdAt: micros(time.Now()),
	}
	if len(req.ClassFilter) > 0 {
		known := map[string]bool{}
		for _, c := range datasetClasses(d) {
			known[c.Name] = true
		}
		for _, c := range req.ClassFilter {
			if !known[c] {
				return nil, unprocessable("class_filter: %q is not a class of dataset %q", c, d.name)
			}
		}
		b, _ := json.Marshal(req.ClassFilter)
		e.classFilter = sql.NullString{String: string(b), Valid: true}
	}
	if sf := req.StatusFilter; sf != nil && *sf != "" {
		if !statuses[*sf] && *sf != "all" && *sf != "in_progress" {
			return nil, unprocessable("status_filter %q: want new, annotate, review or complete", *sf)
		}
		e.statusFilter = sql.NullString{String: *sf, Valid: true}
	}
	if req.OrganizeBySplit != nil {
		e.organizeBySplit = *req.OrganizeBySplit
	}
	if rate := s.faults.Load().ExportFailRate; rate > 0 && rand.Float64() < rate {
		e.fail = true
	}
	return e, nil
}

// exportRef resolves the {export} segment: a name (or id) in ?dataset=, or
// without it an id.
func (s *Server) exportRef(r *http.Request, p *principal) (*exportRow, error) {
	ref := r.PathValue("export")
	q := r.URL.Query()
	for k := range q {
		if k != "dataset" {
			return nil, badRequest("unknown query parameter %q", k)
		}
	}
	if ds := q.Get("dataset"); ds != "" {
		d, err := s.st.dataset(r.Context(), s.st.r, p.orgID, ds)
		if err != nil {
			return nil, err
		}
		return s.st.exportInDataset(r.Context(), d, ref)
	}
	e, err := s.st.exportByID(r.Context(), p.orgID, ref)
	if errors.Is(err, ErrNotFound) {
		return nil, notFound("export %q not found (a look-up by name needs ?dataset=)", ref)
	}
	return e, err
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := s.exportRef(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, dataEnvelope{Data: s.exportJSON(r, e, time.Now())})
	return nil
}

// exportDownload answers a fresh signed link to a completed export's ZIP;
// an export that is not completed is a 409 export_not_ready.
func (s *Server) exportDownload(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := s.exportRef(r, p)
	if err != nil {
		return err
	}
	if e.status != "completed" {
		msg := fmt.Sprintf("export %q is %s; a download link exists once it is completed", e.name, e.status)
		if e.errorMessage.Valid {
			msg += ": " + e.errorMessage.String
		}
		return apiErr(http.StatusConflict, "export_not_ready", "%s", msg)
	}
	u := s.exportDownloadURL(r, e.id, time.Now())
	writeJSON(w, http.StatusOK, dataEnvelope{Data: exportLink{DownloadURL: u}})
	return nil
}

var exportListKeys = map[string]bool{"limit": true, "offset": true, "dataset_name": true, "status": true}

var exportStatuses = map[string]bool{"pending": true, "processing": true, "completed": true, "failed": true}

func (s *Server) listExports(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	for k := range q {
		if !exportListKeys[k] {
			return badRequest("unknown query parameter %q", k)
		}
	}
	limit, err := intParam(q, "limit", defaultExportsLimit, 1)
	if err != nil {
		return err
	}
	offset, err := intParam(q, "offset", 0, 0)
	if err != nil {
		return err
	}
	var f exportFilter
	if st := q.Get("status"); st != "" {
		if !exportStatuses[st] {
			return badRequest("unknown status %q: want pending, processing, completed or failed", st)
		}
		f.status = st
	}
	if ds := q.Get("dataset_name"); ds != "" {
		d, err := s.st.dataset(r.Context(), s.st.r, p.orgID, ds)
		if err != nil {
			return err
		}
		f.dsSeq = d.seq
	}
	limit = min(limit, s.opts.ExportListCap)
	rows, total, err := s.st.listExports(r.Context(), p.orgID, f, limit, offset)
	if err != nil {
		return err
	}
	now := time.Now()
	out := make([]exportObject, 0, len(rows))
	for _, e := range rows {
		out = append(out, s.exportJSON(r, e, now))
	}
	writeJSON(w, http.StatusOK, listEnvelope{Data: out, Pagination: pagination(limit, offset, len(out), total)})
	return nil
}

func (s *Server) deleteExportHandler(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("admin"); err != nil {
		return err
	}
	e, err := s.exportRef(r, p)
	if err != nil {
		return err
	}
	if err := s.removeExport(r.Context(), e.id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, dataEnvelope{Data: exportDeleted{ID: e.id, Name: e.name, Deleted: true}})
	return nil
}

// removeExport stops the build of an export, if any, and deletes it.
func (s *Server) removeExport(ctx context.Context, id string) error {
	s.buildMu.Lock()
	if cancel := s.buildCancel[id]; cancel != nil {
		cancel()
	}
	s.buildMu.Unlock()
	deleted, err := s.st.deleteExport(ctx, id)
	if err == nil && !deleted {
		err = exportNotFound(id)
	}
	return err
}

func (s *Server) bulkDeleteExports(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("admin"); err != nil {
		return err
	}
	var req bulkDeleteRequest
	if err := decodeStrictJSON(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.ExportIDs == nil:
		return unprocessable("export_ids is required")
	case len(req.ExportIDs) > maxBulkDelete:
		return unprocessable("%d export_ids: at most %d per request", len(req.ExportIDs), maxBulkDelete)
	}
	out := bulkDeleteResult{Succeeded: []string{}, NotFound: []string{}}
	for _, id := range req.ExportIDs {
		_, err := s.st.exportByID(r.Context(), p.orgID, id)
		if err == nil {
			err = s.removeExport(r.Context(), id)
		}
		switch {
		case err == nil:
			out.Succeeded = append(out.Succeeded, id)
		case errors.Is(err, ErrNotFound):
			out.NotFound = append(out.NotFound, id)
		default:
			return err
		}
	}
	out.Count = len(out.Succeeded)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// ---- builds ----

// exportDelay is the build time in force. The faults' ExportDelay is never
// 0: New stores Options.ExportDelay, which withDefaults made non-zero, and
// SetFaults replaces 0 with it; a negative value means none.
func (s *Server) exportDelay() time.Duration {
	return max(s.faults.Load().ExportDelay, 0)
}

// startBuild runs the build of export id in the background; Close stops
// it (and after Close it does not start: the next Start resumes it).
func (s *Server) startBuild(id string, fail bool) {
	ctx, cancel := context.WithCancel(s.buildCtx)
	s.buildMu.Lock()
	if s.buildsStopped {
		s.buildMu.Unlock()
		cancel()
		return
	}
	s.buildCancel[id] = cancel
	s.builds.Add(1)
	s.buildMu.Unlock()
	go func() {
		defer s.builds.Done()
		defer func() {
			s.buildMu.Lock()
			delete(s.buildCancel, id)
			s.buildMu.Unlock()
			cancel()
		}()
		if err := s.runBuild(ctx, id, fail); err != nil && ctx.Err() == nil {
			s.log.Error("devserver: export build", "export", id, "err", err)
		}
	}()
}

// runBuild moves export id through processing to completed or failed.
func (s *Server) runBuild(ctx context.Context, id string, fail bool) error {
	start := time.Now()
	delay := s.exportDelay()
	if !sleepCtx(ctx, delay/3) {
		return ctx.Err()
	}
	select {
	case s.buildSem <- struct{}{}:
		defer func() { <-s.buildSem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	ok, err := s.st.setExportStatus(ctx, id, "processing", "pending", "processing")
	if err != nil || !ok {
		return err
	}
	if fail {
		if !sleepCtx(ctx, time.Until(start.Add(delay))) {
			return ctx.Err()
		}
		return s.st.failExport(ctx, id, "export build failed: the devserver was told to fail it (--export-fail-rate)", time.Now())
	}
	e, err := s.st.exportByID(ctx, "", id)
	if err != nil {
		return err
	}
	built, err := s.buildExport(ctx, e)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Error("devserver: export build failed", "export", id, "err", err)
		return s.st.failExport(context.WithoutCancel(ctx), id, "export build failed: "+err.Error(), time.Now())
	}
	if !sleepCtx(ctx, time.Until(start.Add(delay))) {
		return ctx.Err()
	}
	now := time.Now()
	if err := s.st.completeExport(ctx, id, built, now, now.Add(exportTTL)); err != nil {
		return err
	}
	s.stats.exportBuilds.Add(1)
	return nil
}

// resumeBuilds starts again the builds a stop interrupted.
func (s *Server) resumeBuilds(ctx context.Context) error {
	rows, err := s.st.unfinishedExports(ctx)
	if err != nil {
		return err
	}
	for _, e := range rows {
		s.startBuild(e.id, e.fail)
	}
	return nil
}

// buildExport writes the ZIP of e from one snapshot of the database.
func (s *Server) buildExport(ctx context.Context, e *exportRow) (builtExport, error) {
	tx, err := s.st.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return builtExport{}, fmt.Errorf("begin snapshot: %w", err)
	}
	defer tx.Rollback()
	d, err := s.st.datasetBySeq(ctx, tx, e.dsSeq)
	if err != nil {
		return builtExport{}, err
	}
	bw, err := s.blobs.create()
	if err != nil {
		return builtExport{}, err
	}
	zw := zip.NewWriter(bw)
	var b builtExport
	switch e.format {
	case "coco":
		err = s.buildCOCO(ctx, tx, zw, e, d, &b)
	default:
		err = s.buildPictograph(ctx, tx, zw, e, &b)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		bw.Abort()
		return builtExport{}, err
	}
	b.blob, b.size, err = bw.Commit()
	return b, err
}

// splitPrefix is the top folder of an image's members: "<split>/" with
// organize_by_split, else "".
func splitPrefix(e *exportRow, split string) string {
	if e.organizeBySplit {
		return split + "/"
	}
	return ""
}

// memberPath is dir (without outer slashes) joined with name, or the bare
// name for the root. Names are the server's data: a member name can hold
// anything an image name holds.
func memberPath(dir, name string) string {
	if d := strings.Trim(dir, "/"); d != "" {
		return d + "/" + name
	}
	return name
}

// buildPictograph writes annotations/<dir>/<filename>.json per image, each
// exactly the body of GET /annotations/{image_id}/file (with a class
// filter: that document with the other classes left out), and with
// include_images images/<dir>/<filename>. Members are stored, not
// deflated: a per-image document is a few hundred bytes, and a deflate
// state per member costs more than it saves (readers take both methods).
func (s *Server) buildPictograph(ctx context.Context, tx *sql.Tx, zw *zip.Writer, e *exportRow, b *builtExport) error {
	keep := classSet(e.classes())
	return eachExportImage(ctx, tx, e, "", func(src *exportSource) error {
		doc, n, err := filterDoc(src.doc, keep)
		if err != nil {
			return err
		}
		body, err := annotationFileBody(src.filename, doc)
		if err != nil {
			return err
		}
		prefix := splitPrefix(e, src.split)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + "annotations/" + memberPath(src.dir, src.filename) + ".json",
			Method: zip.Store, Modified: fromMicros(e.createdAt)})
		if err != nil {
			return fmt.Errorf("zip member: %w", err)
		}
		if _, err := w.Write(body); err != nil {
			return fmt.Errorf("zip member: %w", err)
		}
		b.images++
		b.annotationCount += n
		if e.includeImages {
			return s.zipImage(zw, prefix+"images/"+memberPath(src.dir, src.filename), src.blob, e.createdAt)
		}
		return nil
	})
}

// zipImage stores an image's bytes as a member, uncompressed.
func (s *Server) zipImage(zw *zip.Writer, name string, blob []byte, created int64) error {
	f, err := s.blobs.open(blob)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: fromMicros(created)})
	if err != nil {
		return fmt.Errorf("zip member: %w", err)
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("zip member %s: %w", name, err)
	}
	return nil
}

func classSet(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// filterDoc keeps the annotations of doc whose class is in keep (all when
// keep is nil) and returns the list and its length.
func filterDoc(doc string, keep map[string]bool) (string, int, error) {
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(doc), &items); err != nil {
		return "", 0, fmt.Errorf("stored annotations: %w", err)
	}
	if keep == nil {
		return doc, len(items), nil
	}
	kept := make([]json.RawMessage, 0, len(items))
	for _, it := range items {
		var a struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(it, &a) == nil && keep[a.Name] {
			kept = append(kept, it)
		}
	}
	out, err := json.Marshal(kept)
	return string(out), len(kept), err
}

// COCO documents.
type cocoInfo struct {
	Description string `json:"description"`
	Version     string `json:"version"`
	Year        int    `json:"year"`
	DateCreated string `json:"date_created"`
}

type cocoImage struct {
	ID       int    `json:"id"`
	FileName string `json:"file_name"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

type cocoAnnotation struct {
	ID           int         `json:"id"`
	ImageID      int         `json:"image_id"`
	CategoryID   int         `json:"category_id"`
	BBox         [4]float64  `json:"bbox"`
	Area         float64     `json:"area"`
	Segmentation [][]float64 `json:"segmentation"`
	IsCrowd      int         `json:"iscrowd"`
	Keypoints    []float64   `json:"keypoints,omitempty"`
	NumKeypoints int         `json:"num_keypoints,omitempty"`
}

type cocoCategory struct {
	ID            int    `json:"id"`
	Name          string `json:"name"`
	Supercategory string `json:"supercategory"`
}

// buildCOCO writes annotations.json (one per split with organize_by_split)
// in the COCO object-detection format, streamed in two passes over the
// snapshot (images, then annotations), and the images with include_images.
func (s *Server) buildCOCO(ctx context.Context, tx *sql.Tx, zw *zip.Writer, e *exportRow, d *datasetRow, b *builtExport) error {
	keep := classSet(e.classes())
	var cats []cocoCategory
	catID := map[string]int{}
	for _, c := range datasetClasses(d) {
		if keep != nil && !keep[c.Name] {
			continue
		}
		if _, dup := catID[c.Name]; dup {
			continue
		}
		catID[c.Name] = len(cats) + 1
		cats = append(cats, cocoCategory{ID: len(cats) + 1, Name: c.Name, Supercategory: ""})
	}
	splits := []string{""}
	if e.organizeBySplit {
		var err error
		if splits, err = exportSplits(ctx, tx, e); err != nil {
			return err
		}
	}
	created := fromMicros(e.createdAt)
	for _, sp := range splits {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: splitPrefix(e, sp) + "annotations.json", Method: zip.Deflate, Modified: created})
		if err != nil {
			return fmt.Errorf("zip member: %w", err)
		}
		info, _ := json.Marshal(cocoInfo{Description: d.name, Version: "1.0", Year: created.Year(), DateCreated: created.Format(time.RFC3339)})
		fmt.Fprintf(w, `{"info":%s,"licenses":[],"images":[`, info)
		n := 0
		err = eachExportImage(ctx, tx, e, sp, func(src *exportSource) error {
			n++
			if n > 1 {
				io.WriteString(w, ",")
			}
			b.images++
			return writeCompact(w, cocoImage{ID: n, FileName: memberPath(src.dir, src.filename), Width: src.width, Height: src.height})
		})
		if err != nil {
			return err
		}
		io.WriteString(w, `],"annotations":[`)
		imageID, annID := 0, 0
		err = eachExportImage(ctx, tx, e, sp, func(src *exportSource) error {
			imageID++
			var anns []Annotation
			if err := json.Unmarshal([]byte(src.doc), &anns); err != nil {
				return fmt.Errorf("stored annotations: %w", err)
			}
			for _, a := range anns {
				ca, ok := cocoOf(a, catID)
				if !ok {
					continue
				}
				annID++
				ca.ID, ca.ImageID = annID, imageID
				if annID > 1 {
					io.WriteString(w, ",")
				}
				if err := writeCompact(w, ca); err != nil {
					return err
				}
				b.annotationCount++
			}
			return nil
		})
		if err != nil {
			return err
		}
		cj, _ := json.Marshal(cats)
		if cats == nil {
			cj = []byte("[]")
		}
		if _, err := fmt.Fprintf(w, `],"categories":%s}`, cj); err != nil {
			return fmt.Errorf("zip member: %w", err)
		}
	}
	if !e.includeImages {
		return nil
	}
	return eachExportImage(ctx, tx, e, "", func(src *exportSource) error {
		return s.zipImage(zw, splitPrefix(e, src.split)+"images/"+memberPath(src.dir, src.filename), src.blob, e.createdAt)
	})
}

// writeCompact writes v as compact JSON, with no newline.
func writeCompact(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// cocoOf converts one annotation; polylines and classes outside the
// categories are left out.
func cocoOf(a Annotation, catID map[string]int) (cocoAnnotation, bool) {
	id, ok := catID[a.Name]
	if !ok {
		return cocoAnnotation{}, false
	}
	ca := cocoAnnotation{CategoryID: id, Segmentation: [][]float64{}}
	switch {
	case a.Type == "keypoint" && a.Keypoint != nil:
		ca.BBox = [4]float64{a.Keypoint.X, a.Keypoint.Y, 0, 0}
		ca.Keypoints = []float64{a.Keypoint.X, a.Keypoint.Y, 2}
		ca.NumKeypoints = 1
	case a.Type == "polygon" && a.Polygon != nil:
		bb := a.BoundingBox
		if bb == nil {
			bb = polygonBox(a.Polygon)
		}
		ca.BBox = [4]float64{bb.X, bb.Y, bb.W, bb.H}
		for _, p := range a.Polygon.Paths {
			flat := make([]float64, 0, 2*len(p))
			for _, pt := range p {
				flat = append(flat, pt.X, pt.Y)
			}
			ca.Segmentation = append(ca.Segmentation, flat)
			ca.Area += shoelace(p)
		}
	case a.Type == "bbox" && a.BoundingBox != nil:
		bb := a.BoundingBox
		ca.BBox = [4]float64{bb.X, bb.Y, bb.W, bb.H}
		ca.Area = bb.W * bb.H
	default:
		return cocoAnnotation{}, false
	}
	return ca, true
}

// shoelace is the area of a closed path.
func shoelace(p []Point) float64 {
	var sum float64
	for i := range p {
		j := (i + 1) % len(p)
		sum += p[i].X*p[j].Y - p[j].X*p[i].Y
	}
	return math.Abs(sum) / 2
}

// serveExport answers a signed GET of an export's ZIP on the storage host.
func (s *Server) serveExport(w http.ResponseWriter, r *http.Request, id string) error {
	return s.serveStored(w, r, func(ctx context.Context) (storedBlob, error) {
		e, err := s.st.exportByID(ctx, "", id)
		if err != nil || e.status != "completed" {
			return storedBlob{}, notFound("object not found")
		}
		return storedBlob{blob: e.blob, contentType: "application/zip",
			disposition: fmt.Sprintf("attachment; filename=%q", path.Base(e.name)+".zip"),
			served:      &s.stats.exportDownloads}, nil
	})
}
