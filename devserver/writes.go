package devserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// The write routes of §11. Roles: uploads and registers need member;
// saving annotations (one image or in bulk) needs annotator, the role whose
// job it is (the contract leaves it open); archiving or deleting an image
// and deleting annotations need admin, as the SDK's docstrings say.

// Bulk limits of §11.
const (
	maxBulkUpload = 500
	maxBulkSave   = 200
)

// datasetClasses decodes the class list of a dataset row.
func datasetClasses(d *datasetRow) []Class {
	var classes []Class
	json.Unmarshal([]byte(d.classes), &classes)
	return classes
}

// saveAnnotationsAt answers POST /annotations/{dataset}/{image_path}: the
// body is exactly {"annotations": [...]}, which replaces all of the
// image's annotations. The image's status does not change.
func (s *Server) saveAnnotationsAt(w http.ResponseWriter, r *http.Request, p *principal, rawDataset, escapedPath string) error {
	if err := p.need("annotator"); err != nil {
		return err
	}
	var req map[string]json.RawMessage
	if err := decodeStrictJSON(w, r, &req); err != nil {
		return err
	}
	if req == nil {
		return unprocessable(`the body must be {"annotations": [...]}`)
	}
	for k := range req {
		if k != "annotations" {
			return unprocessable(`unknown key %q: the body must be exactly {"annotations": [...]}`, k)
		}
	}
	raw, ok := req["annotations"]
	if !ok {
		return unprocessable(`annotations is required: the body must be exactly {"annotations": [...]}`)
	}
	d, im, err := s.imageAt(r.Context(), p.orgID, rawDataset, escapedPath, false)
	if err != nil {
		return err
	}
	anns, err := parseAnnotations(raw, datasetClasses(d), "annotations")
	if err != nil {
		return err
	}
	res, err := s.saveAnnotations(r.Context(), im, anns)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, saveResult{Success: true, ImageID: im.id, PreviousCount: res.PreviousCount,
		NewCount: res.NewCount, Status: im.status})
	return nil
}

// saveAnnotations stores validated annotations of im.
func (s *Server) saveAnnotations(ctx context.Context, im *imageRow, anns []Annotation) (bulkSaved, error) {
	doc, err := encodeAnnotations(anns)
	if err != nil {
		return bulkSaved{}, err
	}
	prev, err := s.st.setAnnotations(ctx, im, doc, len(anns))
	if err != nil {
		return bulkSaved{}, err
	}
	return bulkSaved{ImageID: im.id, PreviousCount: prev, NewCount: len(anns), Status: im.status}, nil
}

// bulkSaveAnnotations answers POST /annotations/bulk: at most 200 saves;
// an image that is unknown, or whose annotations break a rule, is listed
// in failed and the others are saved.
func (s *Server) bulkSaveAnnotations(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("annotator"); err != nil {
		return err
	}
	var req bulkSaveRequest
	if err := decodeStrictJSON(w, r, &req); err != nil {
		return err
	}
	switch {
	case req.Saves == nil:
		return unprocessable("saves is required")
	case len(req.Saves) > maxBulkSave:
		return unprocessable("%d saves: at most %d per request", len(req.Saves), maxBulkSave)
	}
	out := bulkSaveResult{Saved: []bulkSaved{}, Failed: []bulkSaveFailure{}}
	classes := map[int64][]Class{}
	for i, sv := range req.Saves {
		fail := func(err error) error {
			var e *Error
			if !errors.As(err, &e) || e.Status >= 500 {
				return err
			}
			out.Failed = append(out.Failed, bulkSaveFailure{ImageID: sv.ImageID, Error: e.Message})
			return nil
		}
		if sv.ImageID == "" {
			if err := fail(unprocessable("saves[%d].image_id is required", i)); err != nil {
				return err
			}
			continue
		}
		im, err := s.st.imageByID(r.Context(), p.orgID, sv.ImageID)
		if err == nil && im.isArchived {
			err = notFound("image %q is archived", sv.ImageID)
		}
		if err != nil {
			if err := fail(err); err != nil {
				return err
			}
			continue
		}
		cl, ok := classes[im.dsSeq]
		if !ok {
			d, err := s.st.datasetBySeq(r.Context(), s.st.r, im.dsSeq)
			if err != nil {
				return err
			}
			cl = datasetClasses(d)
			classes[im.dsSeq] = cl
		}
		anns, err := parseAnnotations(sv.Annotations, cl, fmt.Sprintf("saves[%d].annotations", i))
		if err != nil {
			if err := fail(err); err != nil {
				return err
			}
			continue
		}
		saved, err := s.saveAnnotations(r.Context(), im, anns)
		if err != nil {
			if err := fail(err); err != nil {
				return err
			}
			continue
		}
		out.Saved = append(out.Saved, saved)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteAnnotationsAt answers DELETE /annotations/{dataset}/{image_path}.
func (s *Server) deleteAnnotationsAt(w http.ResponseWriter, r *http.Request, p *principal, rawDataset, escapedPath string) error {
	if err := p.need("admin"); err != nil {
		return err
	}
	_, im, err := s.imageAt(r.Context(), p.orgID, rawDataset, escapedPath, false)
	if err != nil {
		return err
	}
	prev, err := s.st.setAnnotations(r.Context(), im, "[]", 0)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deleteAnnotationsResult{ImageID: im.id, DeletedCount: prev})
	return nil
}

// deleteImageAt answers DELETE /images/{dataset}/{image_path}: it archives
// the image, or with ?permanent=true deletes it and its annotations (an
// archived image too).
func (s *Server) deleteImageAt(w http.ResponseWriter, r *http.Request, p *principal, rawDataset, escapedPath string) error {
	if err := p.need("admin"); err != nil {
		return err
	}
	q := r.URL.Query()
	for k := range q {
		if k != "permanent" {
			return badRequest("unknown query parameter %q", k)
		}
	}
	permanent, err := boolParam(q, "permanent")
	if err != nil {
		return err
	}
	_, im, err := s.imageAt(r.Context(), p.orgID, rawDataset, escapedPath, permanent)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("Image %q archived", im.filename)
	if permanent {
		err = s.st.removeImage(r.Context(), im, time.Now())
		msg = fmt.Sprintf("Image %q permanently deleted", im.filename)
	} else {
		err = s.st.archiveImage(r.Context(), im, time.Now())
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deleteImageResult{Success: true, Message: msg})
	return nil
}

// checkBulk refuses a bulk request without a dataset, or with no images or
// more than maxBulkUpload of them.
func checkBulk(dataset string, images int) error {
	switch {
	case dataset == "":
		return unprocessable("dataset is required")
	case images == 0:
		return unprocessable("images is required and must not be empty")
	case images > maxBulkUpload:
		return unprocessable("%d images: at most %d per request", images, maxBulkUpload)
	}
	return nil
}

// bulkUploadURLs answers POST /images/bulk-upload-url: at most 500 images
// of one dataset, their links in request order. A bad item fails the whole
// request, naming its index; duplicates of existing images are found at
// register time.
func (s *Server) bulkUploadURLs(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("member"); err != nil {
		return err
	}
	var req bulkUploadRequest
	if err := decodeStrictJSON(w, r, &req); err != nil {
		return err
	}
	if err := checkBulk(req.Dataset, len(req.Images)); err != nil {
		return err
	}
	now := time.Now()
	ttl := s.opts.URLTTL
	targets := make([]*uploadRow, len(req.Images))
	for i, it := range req.Images {
		t, err := s.uploadTarget(r.Context(), p.orgID, req.Dataset, it.DirectoryPath, it.Filename, it.ContentType)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Status != http.StatusNotFound {
				e = &Error{Status: e.Status, Code: e.Code, Message: fmt.Sprintf("images[%d]: %s", i, e.Message)}
				return e
			}
			return err
		}
		t.id, t.expiresAt = uuid.NewString(), micros(now.Add(ttl))
		targets[i] = t
	}
	if err := s.st.insertUploads(r.Context(), targets, now); err != nil {
		return err
	}
	base := s.storageBase(r)
	out := bulkUploadURLs{UploadURLs: make([]bulkUploadURL, len(targets)), ExpiresInMinutes: max(1, int(ttl/time.Minute))}
	for i, t := range targets {
		out.UploadURLs[i] = bulkUploadURL{Filename: t.filename, DirectoryPath: t.dir,
			UploadURL: s.signedURL(base, http.MethodPut, uploadPath(t.id), now.Add(ttl).Unix())}
	}
	writeJSON(w, http.StatusOK, dataEnvelope{Data: out})
	return nil
}

// bulkRegister answers POST /images/bulk-register: at most 500 images; one
// that cannot be registered (a duplicate filename in its directory, no
// uploaded bytes, a size that does not match) is listed in failed.
func (s *Server) bulkRegister(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := p.need("member"); err != nil {
		return err
	}
	var req bulkRegisterRequest
	if err := decodeStrictJSON(w, r, &req); err != nil {
		return err
	}
	if err := checkBulk(req.Dataset, len(req.Images)); err != nil {
		return err
	}
	if _, err := s.st.dataset(r.Context(), s.st.r, p.orgID, req.Dataset); err != nil {
		return err
	}
	out := bulkRegisterResult{Succeeded: []Image{}, Failed: []bulkRegisterFailure{}}
	base := requestBase(r)
	for _, it := range req.Images {
		img, err := s.register(r.Context(), base, p.orgID, registerImageRequest{Dataset: req.Dataset, Filename: it.Filename,
			DirectoryPath: it.DirectoryPath, FileSize: it.FileSize, ContentType: it.ContentType, Width: it.Width, Height: it.Height})
		var e *Error
		switch {
		case err == nil:
			out.Succeeded = append(out.Succeeded, img)
		case errors.As(err, &e) && e.Status < 500:
			out.Failed = append(out.Failed, bulkRegisterFailure{Filename: it.Filename, DirectoryPath: it.DirectoryPath, Error: e.Message})
		default:
			return err
		}
	}
	out.Count = len(out.Succeeded)
	writeJSON(w, http.StatusOK, dataEnvelope{Data: out})
	return nil
}
