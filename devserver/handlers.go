package devserver

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

func (s *Server) routes(mux *http.ServeMux) {
	const p = "/api/v1/developer"
	for _, c := range []string{"/datasets", "/datasets/{$}"} {
		mux.Handle("GET "+p+c, s.adapt(s.listDatasets))
		mux.Handle("POST "+p+c, s.adapt(s.idempotent(s.createDatasetHandler)))
	}
	mux.Handle("GET "+p+"/datasets/{dataset}", s.adapt(s.getDataset))
	mux.Handle("PATCH "+p+"/datasets/{dataset}", s.adapt(s.idempotent(s.updateDataset)))
	mux.Handle("DELETE "+p+"/datasets/{dataset}", s.adapt(s.deleteDataset))
	mux.Handle("GET "+p+"/datasets/{dataset}/download", s.adapt(s.downloadListing))
	for _, c := range []string{"/images", "/images/{$}"} {
		mux.Handle("GET "+p+c, s.adapt(s.listImagesHandler))
	}
	mux.Handle("POST "+p+"/images/upload-url", s.adapt(s.idempotent(s.uploadURL)))
	mux.Handle("POST "+p+"/images/register", s.adapt(s.idempotent(s.registerImage)))
	mux.Handle("POST "+p+"/images/bulk-upload-url", s.adapt(s.idempotent(s.bulkUploadURLs)))
	mux.Handle("POST "+p+"/images/bulk-register", s.adapt(s.idempotent(s.bulkRegister)))
	mux.Handle("POST "+p+"/annotations/bulk", s.adapt(s.idempotent(s.bulkSaveAnnotations)))
	mux.Handle("GET "+p+"/organizations/me", s.adapt(s.organizationMe))
	s.exportRoutes(mux, p)
}

// rawRoute dispatches the routes whose trailing path holds names of images
// (which may be "..", hold escaped slashes, or anything else), before the
// mux would clean or redirect them:
//
//	GET    /images/{dataset}/{image_path}        raw bytes
//	DELETE /images/{dataset}/{image_path}        archive (or ?permanent=true: delete)
//	GET    /annotations/{image_id}/file          annotation document
//	GET    /annotations/{dataset}/{image_path}   annotations by path
//	POST   /annotations/{dataset}/{image_path}   save annotations
//	DELETE /annotations/{dataset}/{image_path}   delete annotations
func (s *Server) rawRoute(r *http.Request) handlerFunc {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), apiPrefix)
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if tail, ok := strings.CutPrefix(rest, "images/"); ok {
		seg, imgPath, ok := strings.Cut(tail, "/")
		if !ok || seg == "" || imgPath == "" {
			return nil
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return func(w http.ResponseWriter, r *http.Request, p *principal) error {
				return s.imageBytes(w, r, p, seg, imgPath)
			}
		case http.MethodDelete:
			return func(w http.ResponseWriter, r *http.Request, p *principal) error {
				return s.deleteImageAt(w, r, p, seg, imgPath)
			}
		}
		return nil
	}
	if tail, ok := strings.CutPrefix(rest, "annotations/"); ok {
		seg, imgPath, ok := strings.Cut(tail, "/")
		if !ok || seg == "" || imgPath == "" {
			return nil
		}
		switch {
		case imgPath == "file" && get:
			return func(w http.ResponseWriter, r *http.Request, p *principal) error {
				return s.annotationFile(w, r, p, seg)
			}
		case get:
			return func(w http.ResponseWriter, r *http.Request, p *principal) error {
				return s.annotationsByPath(w, r, p, seg, imgPath)
			}
		case r.Method == http.MethodPost:
			return s.idempotent(func(w http.ResponseWriter, r *http.Request, p *principal) error {
				return s.saveAnnotationsAt(w, r, p, seg, imgPath)
			})
		case r.Method == http.MethodDelete:
			return func(w http.ResponseWriter, r *http.Request, p *principal) error {
				return s.deleteAnnotationsAt(w, r, p, seg, imgPath)
			}
		}
	}
	return nil
}

// ---- parameters and validation ----

// intParam parses an optional integer query parameter in [lo, ∞).
func intParam(q url.Values, name string, def, lo int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo {
		return 0, unprocessable("query parameter %s must be an integer >= %d, got %q", name, lo, v)
	}
	return n, nil
}

func boolParam(q url.Values, name string) (bool, error) {
	switch strings.ToLower(q.Get(name)) {
	case "", "false", "0", "no":
		return false, nil
	case "true", "1", "yes":
		return true, nil
	}
	return false, unprocessable("query parameter %s must be true or false, got %q", name, q.Get(name))
}

var statuses = map[string]bool{"new": true, "annotate": true, "review": true, "complete": true}

func statusParam(q url.Values, name string) (string, error) {
	v := q.Get(name)
	if v != "" && !statuses[v] {
		return "", badRequest("unknown %s %q: want new, annotate, review or complete", name, v)
	}
	return v, nil
}

// validName checks a dataset name or filename: any character but "/" and
// NUL, not empty, and not "." or ".." (which no URL path can address).
func validName(kind, name string) error {
	switch {
	case name == "":
		return unprocessable("%s is required", kind)
	case strings.ContainsAny(name, "/\x00"):
		return badRequest("%s %q must not contain '/' or NUL", kind, name)
	case name == "." || name == "..":
		return badRequest("%s must not be %q", kind, name)
	}
	return nil
}

// normalizeDir turns "", "/", "train", "/train/" into "/" or "/train".
func normalizeDir(dir string) (string, error) {
	if strings.ContainsRune(dir, 0) {
		return "", badRequest("directory_path must not contain NUL")
	}
	var segs []string
	for _, seg := range strings.Split(dir, "/") {
		switch seg {
		case "":
			continue
		case ".", "..":
			return "", badRequest("directory_path %q must not contain '.' or '..' segments", dir)
		}
		segs = append(segs, seg)
	}
	return "/" + strings.Join(segs, "/"), nil
}

// decodeJSON decodes a JSON request body of at most maxJSONBody bytes into
// v, leniently: unknown keys are ignored.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeBody(w, r, v, false)
}

// decodeStrictJSON decodes a JSON request body of at most maxJSONBody bytes
// into v, refusing unknown keys (422).
func decodeStrictJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeBody(w, r, v, true)
}

// decodeBody decodes a JSON request body of at most maxJSONBody bytes into
// v: a body over the limit is a 413, a wrong type a 422, malformed JSON or
// data after the value a 400. Strict decoding reads the whole body first,
// refuses unknown keys (422) and lets nothing but white space follow the
// value; lenient decoding streams and only looks for a further value.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, strict bool) error {
	var src io.Reader = http.MaxBytesReader(w, r.Body, maxJSONBody)
	var tooBig *http.MaxBytesError
	if strict {
		b, err := io.ReadAll(src)
		switch {
		case errors.As(err, &tooBig):
			return payloadTooLarge()
		case err != nil:
			return badRequest("read request body: %v", err)
		}
		src = bytes.NewReader(b)
	}
	dec := json.NewDecoder(src)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return payloadTooLarge()
		case errors.As(err, &typ):
			return unprocessable("field %q: want %s, got %s", typ.Field, typ.Type, typ.Value)
		case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return badRequest("malformed JSON body: %v", err)
		case strict && strings.HasPrefix(err.Error(), "json: unknown field "):
			return unprocessable("unknown key %s in the request body", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return unprocessable("invalid JSON body: %v", err)
	}
	var trailing bool
	if strict {
		_, err := dec.Token()
		trailing = !errors.Is(err, io.EOF)
	} else {
		trailing = dec.More()
	}
	if trailing {
		return badRequest("malformed JSON body: data after the JSON value")
	}
	return nil
}

func payloadTooLarge() error {
	return apiErr(http.StatusRequestEntityTooLarge, "payload_too_large", "request body over %d bytes", maxJSONBody)
}

// page is a clamped limit/offset pair and its pagination object.
func pagination(limit, offset, got, total int) Pagination {
	return Pagination{Limit: limit, Offset: offset, Total: total, HasMore: offset+got < total}
}

// ---- datasets ----

type dataEnvelope struct {
	Data any `json:"data"`
}

type listEnvelope struct {
	Data       any        `json:"data"`
	Pagination Pagination `json:"pagination"`
}

func (s *Server) listDatasets(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", 100, 1)
	if err != nil {
		return err
	}
	offset, err := intParam(q, "offset", 0, 0)
	if err != nil {
		return err
	}
	limit = min(limit, s.opts.DatasetListCap)
	total, err := s.st.countDatasets(r.Context(), p.orgID)
	if err != nil {
		return err
	}
	rows, err := s.st.listDatasets(r.Context(), p.orgID, limit, offset)
	if err != nil {
		return err
	}
	out := make([]Dataset, 0, len(rows))
	for _, d := range rows {
		out = append(out, s.datasetJSON(d))
	}
	writeJSON(w, http.StatusOK, listEnvelope{Data: out, Pagination: pagination(limit, offset, len(out), total)})
	return nil
}

func (s *Server) createDatasetHandler(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("member"); err != nil {
		return err
	}
	var req CreateDatasetRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	d, err := s.createDataset(r.Context(), p.orgID, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, dataEnvelope{Data: s.datasetJSON(d)})
	return nil
}

func (s *Server) createDataset(ctx context.Context, orgID string, req CreateDatasetRequest) (*datasetRow, error) {
	if err := validName("name", req.Name); err != nil {
		return nil, err
	}
	for i, c := range req.Classes {
		if c.Name == "" {
			return nil, unprocessable("classes[%d].name is required", i)
		}
	}
	types := req.AnnotationTypes
	if types == nil {
		types = []string{}
	}
	classes := req.Classes
	if classes == nil {
		classes = []Class{}
	}
	tj, err := json.Marshal(types)
	if err != nil {
		return nil, unprocessable("annotation_types: %v", err)
	}
	cj, err := json.Marshal(classes)
	if err != nil {
		return nil, unprocessable("classes: %v", err)
	}
	now := micros(time.Now())
	d := &datasetRow{
		id: newID(), orgID: orgID, name: req.Name, description: req.Description, readme: req.Readme,
		annotationTypes: string(tj), classes: string(cj), createdAt: now, updatedAt: now,
	}
	if err := s.st.insertDataset(ctx, d, s.opts.MaxDatasetsPerOrg); err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Server) getDataset(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	include, err := boolParam(q, "include_images")
	if err != nil {
		return err
	}
	limit, err := intParam(q, "images_limit", 1000, 1)
	if err != nil {
		return err
	}
	offset, err := intParam(q, "images_offset", 0, 0)
	if err != nil {
		return err
	}
	d, err := s.st.dataset(r.Context(), s.st.r, p.orgID, r.PathValue("dataset"))
	if err != nil {
		return err
	}
	if !include {
		writeJSON(w, http.StatusOK, dataEnvelope{Data: s.datasetJSON(d)})
		return nil
	}
	rows, err := s.st.listImages(r.Context(), d, imageFilter{}, min(limit, s.opts.ImagesLimitCap), offset)
	if err != nil {
		return err
	}
	base := requestBase(r)
	imgs := make([]Image, 0, len(rows))
	for _, im := range rows {
		imgs = append(imgs, s.imageJSON(base, im))
	}
	writeJSON(w, http.StatusOK, dataEnvelope{Data: datasetWithImages{Dataset: s.datasetJSON(d), Images: imgs}})
	return nil
}

func (s *Server) updateDataset(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("member"); err != nil {
		return err
	}
	var req updateDatasetRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.NewName != nil {
		if err := validName("new_name", *req.NewName); err != nil {
			return err
		}
	}
	d, err := s.st.updateDataset(r.Context(), p.orgID, r.PathValue("dataset"), req.NewName, req.Description, req.Readme, time.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, dataEnvelope{Data: s.datasetJSON(d)})
	return nil
}

func (s *Server) deleteDataset(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("admin"); err != nil {
		return err
	}
	d, n, err := s.st.deleteDataset(r.Context(), p.orgID, r.PathValue("dataset"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, dataEnvelope{Data: deleteResult{ID: d.id, Name: d.name, Deleted: true, ImagesDeleted: n}})
	return nil
}

var downloadModes = map[string]bool{"full": true, "images_only": true, "annotations_only": true}

func (s *Server) downloadListing(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	mode := q.Get("mode")
	if mode == "" {
		mode = "full"
	}
	if !downloadModes[mode] {
		return badRequest("unknown mode %q: want full, images_only or annotations_only", mode)
	}
	limit, err := intParam(q, "limit", s.opts.DownloadCap, 1)
	if err != nil {
		return err
	}
	status, err := statusParam(q, "status_filter")
	if err != nil {
		return err
	}
	d, err := s.st.dataset(r.Context(), s.st.r, p.orgID, r.PathValue("dataset"))
	if err != nil {
		return err
	}
	f := imageFilter{status: status}
	total, err := s.st.countImages(r.Context(), d, f)
	if err != nil {
		return err
	}
	rows, err := s.st.listImages(r.Context(), d, f, min(limit, s.opts.DownloadCap), 0)
	if err != nil {
		return err
	}
	storage := s.storageBase(r)
	exp := s.expiry(time.Now())
	items := make([]downloadItem, 0, len(rows))
	for _, im := range rows {
		it := downloadItem{
			ID: im.id, Filename: im.filename, FileSize: im.fileSize, AnnotationCount: im.annotationCount,
			ImageURL: s.signedURL(storage, http.MethodGet, objectPath(im.id), exp),
		}
		if im.annotationCount > 0 && mode != "images_only" {
			it.AnnotationURL = apiPrefix + "annotations/" + im.id + "/file"
		}
		items = append(items, it)
	}
	s.stats.downloadListings.Add(1)
	writeJSON(w, http.StatusOK, dataEnvelope{Data: downloadListing{ID: d.id, Items: items, TotalItems: total}})
	return nil
}

// ---- images ----

var imageListKeys = map[string]bool{
	"dataset": true, "limit": true, "offset": true, "directory_path": true, "status": true, "filename": true,
}

func (s *Server) listImagesHandler(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	for k := range q {
		if !imageListKeys[k] {
			return badRequest("unknown query parameter %q", k)
		}
	}
	ref := q.Get("dataset")
	if ref == "" {
		return unprocessable("query parameter dataset is required")
	}
	limit, err := intParam(q, "limit", 100, 1)
	if err != nil {
		return err
	}
	offset, err := intParam(q, "offset", 0, 0)
	if err != nil {
		return err
	}
	var f imageFilter
	if f.status, err = statusParam(q, "status"); err != nil {
		return err
	}
	if q.Has("directory_path") {
		dir, err := normalizeDir(q.Get("directory_path"))
		if err != nil {
			dir = q.Get("directory_path")
		}
		f.dir = &dir
	}
	if q.Has("filename") {
		fn := q.Get("filename")
		f.filename = &fn
	}
	d, err := s.st.dataset(r.Context(), s.st.r, p.orgID, ref)
	if err != nil {
		return err
	}
	limit = min(limit, s.opts.ImageListCap)
	total, err := s.st.countImages(r.Context(), d, f)
	if err != nil {
		return err
	}
	rows, err := s.st.listImages(r.Context(), d, f, limit, offset)
	if err != nil {
		return err
	}
	base := requestBase(r)
	out := make([]Image, 0, len(rows))
	for _, im := range rows {
		out = append(out, s.imageJSON(base, im))
	}
	writeJSON(w, http.StatusOK, listEnvelope{Data: out, Pagination: pagination(limit, offset, len(out), total)})
	return nil
}

// imageByRef resolves a dataset segment and an escaped image path to an
// image that is not archived.
func (s *Server) imageByRef(ctx context.Context, orgID, rawDataset, escapedPath string) (*imageRow, error) {
	_, im, err := s.imageAt(ctx, orgID, rawDataset, escapedPath, false)
	return im, err
}

// imageAt resolves a dataset segment and an escaped image path to the
// dataset and an image that is not archived (with archived, an archived
// one when no other is there).
func (s *Server) imageAt(ctx context.Context, orgID, rawDataset, escapedPath string, archived bool) (*datasetRow, *imageRow, error) {
	ref, err := url.PathUnescape(rawDataset)
	if err != nil {
		return nil, nil, badRequest("bad dataset segment %q", rawDataset)
	}
	dir, filename, err := splitImagePath(escapedPath)
	if err != nil {
		return nil, nil, err
	}
	d, err := s.st.dataset(ctx, s.st.r, orgID, ref)
	if err != nil {
		return nil, nil, err
	}
	if dir != "/" {
		dir = strings.TrimSuffix(dir, "/")
	}
	im, err := s.st.imageByPath(ctx, d, dir, filename, archived)
	return d, im, err
}

func (s *Server) imageBytes(w http.ResponseWriter, r *http.Request, p *principal, rawDataset, escapedPath string) error {
	s.stats.imageByteRequests.Add(1)
	im, err := s.imageByRef(r.Context(), p.orgID, rawDataset, escapedPath)
	if err != nil {
		return err
	}
	f, err := s.blobs.open(im.blob)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", im.contentType)
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

func (s *Server) uploadURL(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("member"); err != nil {
		return err
	}
	var req uploadURLRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	target, err := s.uploadTarget(r.Context(), p.orgID, req.Dataset, req.DirectoryPath, req.Filename, req.ContentType)
	if err != nil {
		return err
	}
	var n int
	if err := s.st.r.QueryRowContext(r.Context(), `SELECT count(*) FROM images WHERE dataset_seq = ?
		AND directory_path = ? AND filename = ? AND is_archived = 0`, target.dsSeq, target.dir, target.filename).Scan(&n); err != nil {
		return fmt.Errorf("check duplicate image: %w", err)
	}
	if n > 0 {
		return apiErr(http.StatusBadRequest, "already_exists", "image %q already exists in directory %q", target.filename, target.dir)
	}
	ttl := s.opts.URLTTL
	now := time.Now()
	target.id = uuid.NewString()
	target.expiresAt = micros(now.Add(ttl))
	if err := s.st.insertUploads(r.Context(), []*uploadRow{target}, now); err != nil {
		return err
	}
	u := s.signedURL(s.storageBase(r), http.MethodPut, uploadPath(target.id), now.Add(ttl).Unix())
	writeJSON(w, http.StatusOK, dataEnvelope{Data: uploadURL{
		Filename: target.filename, DirectoryPath: target.dir, UploadURL: u,
		ExpiresInMinutes: max(1, int(ttl/time.Minute)),
	}})
	return nil
}

// uploadTarget validates the fields shared by upload-url and register.
func (s *Server) uploadTarget(ctx context.Context, orgID, dataset, dir, filename, contentType string) (*uploadRow, error) {
	if dataset == "" {
		return nil, unprocessable("dataset is required")
	}
	if err := validName("filename", filename); err != nil {
		return nil, err
	}
	dir, err := normalizeDir(dir)
	if err != nil {
		return nil, err
	}
	if contentType == "" {
		contentType = mime.TypeByExtension(strings.ToLower(path.Ext(filename)))
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "image/") {
		return nil, badRequest("content_type %q is not an image type", contentType)
	}
	d, err := s.st.dataset(ctx, s.st.r, orgID, dataset)
	if err != nil {
		return nil, err
	}
	return &uploadRow{dsSeq: d.seq, dir: dir, filename: filename, contentType: mt}, nil
}

func (s *Server) registerImage(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("member"); err != nil {
		return err
	}
	var req registerImageRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	img, err := s.register(r.Context(), requestBase(r), p.orgID, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, dataEnvelope{Data: img})
	return nil
}

// register turns the uploaded bytes of one image into an Image: a
// duplicate filename in its directory is a 400 "already exists", missing
// bytes a 400 too.
func (s *Server) register(ctx context.Context, base, orgID string, req registerImageRequest) (Image, error) {
	if req.FileSize < 0 || req.Width < 0 || req.Height < 0 {
		return Image{}, unprocessable("file_size, width and height must not be negative")
	}
	target, err := s.uploadTarget(ctx, orgID, req.Dataset, req.DirectoryPath, req.Filename, req.ContentType)
	if err != nil {
		return Image{}, err
	}
	now := time.Now()
	im := &newImage{imageRow: imageRow{
		id: newID(), dir: target.dir, filename: target.filename, status: "new",
		width: req.Width, height: req.Height, contentType: target.contentType, tags: "[]", createdAt: micros(now),
	}}
	if sp := splitOf(target.dir); sp != nil {
		im.split = sql.NullString{String: *sp, Valid: true}
	}
	if err := s.st.registerUpload(ctx, target.dsSeq, im, req.FileSize, now); err != nil {
		return Image{}, err
	}
	if im.width == 0 || im.height == 0 {
		if wd, ht, ok := s.blobDimensions(im.blob); ok {
			im.width, im.height = wd, ht
			err := s.st.tx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `UPDATE images SET width = ?, height = ? WHERE seq = ?`, wd, ht, im.seq)
				return err
			})
			if err != nil {
				return Image{}, fmt.Errorf("store image size: %w", err)
			}
		}
	}
	full, err := s.st.imageByIDAnyOrg(ctx, im.id)
	if err != nil {
		return Image{}, err
	}
	return s.imageJSON(base, full), nil
}

// ---- annotations ----

// annotationFile answers GET /annotations/{image_id}/file. An unknown id is
// retried as the root image "file" of a dataset of that name.
func (s *Server) annotationFile(w http.ResponseWriter, r *http.Request, p *principal, rawID string) error {
	id, _ := url.PathUnescape(rawID)
	im, err := s.st.imageByID(r.Context(), p.orgID, id)
	if errors.Is(err, ErrNotFound) {
		if alt, aerr := s.imageByRef(r.Context(), p.orgID, rawID, "file"); aerr == nil {
			return s.writeAnnotationsByPath(w, r, alt)
		}
	}
	if err != nil {
		return err
	}
	doc, err := s.st.annotationDoc(r.Context(), im.seq)
	if err != nil {
		return err
	}
	body, err := annotationFileBody(im.filename, doc)
	if err != nil {
		return err
	}
	s.stats.annotationFiles.Add(1)
	writeBody(w, http.StatusOK, body)
	return nil
}

func (s *Server) annotationsByPath(w http.ResponseWriter, r *http.Request, p *principal, rawDataset, escapedPath string) error {
	im, err := s.imageByRef(r.Context(), p.orgID, rawDataset, escapedPath)
	if err != nil {
		return err
	}
	return s.writeAnnotationsByPath(w, r, im)
}

func (s *Server) writeAnnotationsByPath(w http.ResponseWriter, r *http.Request, im *imageRow) error {
	doc, err := s.st.annotationDoc(r.Context(), im.seq)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, annotationsByPath{
		Success: true, ImageID: im.id, Filename: im.filename,
		Annotations: json.RawMessage(doc), AnnotationCount: im.annotationCount,
	})
	return nil
}

// ---- organizations ----

func (s *Server) organizationMe(w http.ResponseWriter, r *http.Request, p *principal) error {
	o, err := s.st.org(r.Context(), p.orgID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Organization organization `json:"organization"`
	}{organization{ID: o.id, Name: o.name, Plan: o.plan, Role: p.role}})
	return nil
}
