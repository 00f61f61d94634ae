package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// Bulk limits of §11.
const (
	MaxBulkUpload = 500 // images per bulk-upload-url and bulk-register
	MaxBulkSave   = 200 // saves per POST /annotations/bulk
)

// BulkUploadItem is one image of BulkUploadURLs.
type BulkUploadItem struct {
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"` // "" is sent as "/"
	ContentType   string `json:"content_type"`
}

// BulkUploadURL is one signed upload link, in request order.
type BulkUploadURL struct {
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"`
	UploadURL     string `json:"upload_url"`
}

// BulkUploadURLs is the answer of POST /images/bulk-upload-url.
type BulkUploadURLs struct {
	UploadURLs       []BulkUploadURL `json:"upload_urls"`
	ExpiresInMinutes int             `json:"expires_in_minutes"`
}

// BulkUploadURLs asks for the upload links of up to MaxBulkUpload images of
// one dataset (POST /images/bulk-upload-url, with an Idempotency-Key). The
// links come in request order; PUT each with PutUpload, then register them
// with BulkRegisterImages.
func (c *Client) BulkUploadURLs(ctx context.Context, dataset string, images []BulkUploadItem) (*BulkUploadURLs, error) {
	if err := checkBulk("bulk upload URLs", dataset, len(images), MaxBulkUpload); err != nil {
		return nil, err
	}
	items := make([]BulkUploadItem, len(images))
	for i, im := range images {
		if im.Filename == "" {
			return nil, fmt.Errorf("pictograph: bulk upload URLs: image %d has no filename: %w", i, ErrValidation)
		}
		items[i] = im
		items[i].DirectoryPath = cmp.Or(im.DirectoryPath, "/")
	}
	body := struct {
		Dataset string           `json:"dataset"`
		Images  []BulkUploadItem `json:"images"`
	}{dataset, items}
	resp, err := c.call(ctx, RouteBulkUploadURLs, "/images/bulk-upload-url", nil, body)
	if err != nil {
		return nil, err
	}
	var out BulkUploadURLs
	if err := decodeData(resp, &out); err != nil {
		return nil, err
	}
	if len(out.UploadURLs) != len(items) {
		return nil, invalid(resp, "%d upload URLs for %d images", len(out.UploadURLs), len(items))
	}
	for i, u := range out.UploadURLs {
		if u.UploadURL == "" {
			return nil, invalid(resp, "upload URL %d is empty", i)
		}
	}
	return &out, nil
}

// BulkRegisterItem is one image of BulkRegisterImages.
type BulkRegisterItem struct {
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"` // "" is sent as "/"
	FileSize      int64  `json:"file_size"`
	ContentType   string `json:"content_type"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
}

// BulkRegisterFailure is one image a bulk register refused.
type BulkRegisterFailure struct {
	Filename      string
	DirectoryPath string
	Error         string
}

// BulkRegisterResult is the answer of POST /images/bulk-register.
type BulkRegisterResult struct {
	Succeeded []Image
	Failed    []BulkRegisterFailure
	Count     int // images registered
}

// BulkRegisterImages registers up to MaxBulkUpload uploaded images of one
// dataset (POST /images/bulk-register, with an Idempotency-Key). Images the
// server refuses (a duplicate filename in its directory, no uploaded bytes)
// are in Failed; the call itself succeeds.
func (c *Client) BulkRegisterImages(ctx context.Context, dataset string, images []BulkRegisterItem) (*BulkRegisterResult, error) {
	if err := checkBulk("bulk register", dataset, len(images), MaxBulkUpload); err != nil {
		return nil, err
	}
	items := make([]BulkRegisterItem, len(images))
	for i, im := range images {
		if im.Filename == "" {
			return nil, fmt.Errorf("pictograph: bulk register: image %d has no filename: %w", i, ErrValidation)
		}
		items[i] = im
		items[i].DirectoryPath = cmp.Or(im.DirectoryPath, "/")
	}
	body := struct {
		Dataset string             `json:"dataset"`
		Images  []BulkRegisterItem `json:"images"`
	}{dataset, items}
	resp, err := c.call(ctx, RouteBulkRegisterImages, "/images/bulk-register", nil, body)
	if err != nil {
		return nil, err
	}
	var aux struct {
		Succeeded []Image `json:"succeeded"`
		Failed    []struct {
			Filename      flexString   `json:"filename"`
			DirectoryPath flexString   `json:"directory_path"`
			Error         errorMessage `json:"error"`
		} `json:"failed"`
		Count flexInt `json:"count"`
	}
	if err := decodeData(resp, &aux); err != nil {
		return nil, err
	}
	res := &BulkRegisterResult{Succeeded: aux.Succeeded, Count: int(aux.Count.n)}
	if !aux.Count.present {
		res.Count = len(res.Succeeded)
	}
	for _, f := range aux.Failed {
		res.Failed = append(res.Failed, BulkRegisterFailure{Filename: string(f.Filename),
			DirectoryPath: string(f.DirectoryPath), Error: string(f.Error)})
	}
	return res, nil
}

func checkBulk(what, dataset string, n, limit int) error {
	switch {
	case dataset == "":
		return fmt.Errorf("pictograph: %s: empty dataset name: %w", what, ErrValidation)
	case n == 0:
		return fmt.Errorf("pictograph: %s: no items: %w", what, ErrValidation)
	case n > limit:
		return fmt.Errorf("pictograph: %s: %d items, the limit is %d per request: %w", what, n, limit, ErrValidation)
	}
	return nil
}

// SaveResult is the answer of a save of one image's annotations.
type SaveResult struct {
	Success       bool   `json:"success"`
	ImageID       string `json:"image_id"`
	PreviousCount int    `json:"previous_count"`
	NewCount      int    `json:"new_count"`
	Status        string `json:"status"` // the image's status, which a save never changes
}

// annotationList checks that raw is a JSON array (nil is the empty one).
func annotationList(what string, raw json.RawMessage) (json.RawMessage, error) {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return json.RawMessage("[]"), nil
	}
	if b[0] != '[' || !json.Valid(b) {
		return nil, fmt.Errorf("pictograph: %s: annotations must be a JSON array: %w", what, ErrValidation)
	}
	return json.RawMessage(b), nil
}

// SaveAnnotationsAt replaces all of an image's annotations: POST
// /annotations/{dataset}/{image_path} with exactly {"annotations": […]}
// and an Idempotency-Key. annotations is a JSON array of annotation
// objects (§4), sent as it is; nil clears them. The server refuses unknown
// keys, classes the dataset does not have, and malformed geometry (400 or
// 422: ErrValidation).
func (c *Client) SaveAnnotationsAt(ctx context.Context, dataset, directoryPath, filename string, annotations json.RawMessage) (*SaveResult, error) {
	if dataset == "" || filename == "" {
		return nil, fmt.Errorf("pictograph: save annotations: empty dataset or filename: %w", ErrValidation)
	}
	list, err := annotationList("save annotations", annotations)
	if err != nil {
		return nil, err
	}
	body := struct {
		Annotations json.RawMessage `json:"annotations"`
	}{list}
	resp, err := c.call(ctx, RouteSaveAnnotations, "/annotations/"+EscapeSegment(dataset)+"/"+ImagePath(directoryPath, filename), nil, body)
	if err != nil {
		return nil, err
	}
	var res SaveResult
	if err := decodeData(resp, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// AnnotationSave is one image of BulkSaveAnnotations.
type AnnotationSave struct {
	ImageID     string          `json:"image_id"`
	Annotations json.RawMessage `json:"annotations"` // a JSON array; nil clears
}

// BulkSaveFailure is one image a bulk save refused.
type BulkSaveFailure struct {
	ImageID string
	Error   string
}

// BulkSaveResult is the answer of POST /annotations/bulk. Saved holds what
// the server says of each saved image (at least its ImageID).
type BulkSaveResult struct {
	Saved  []SaveResult
	Failed []BulkSaveFailure
}

// BulkSaveAnnotations replaces the annotations of up to MaxBulkSave images
// (POST /annotations/bulk with {saves:[{image_id, annotations}]}, with an
// Idempotency-Key). Images the server refuses are in Failed.
func (c *Client) BulkSaveAnnotations(ctx context.Context, saves []AnnotationSave) (*BulkSaveResult, error) {
	if err := checkBulk("bulk save annotations", "-", len(saves), MaxBulkSave); err != nil {
		return nil, err
	}
	items := make([]AnnotationSave, len(saves))
	for i, s := range saves {
		if s.ImageID == "" {
			return nil, fmt.Errorf("pictograph: bulk save annotations: save %d has no image_id: %w", i, ErrValidation)
		}
		list, err := annotationList(fmt.Sprintf("bulk save annotations: image %s", s.ImageID), s.Annotations)
		if err != nil {
			return nil, err
		}
		items[i] = AnnotationSave{ImageID: s.ImageID, Annotations: list}
	}
	body := struct {
		Saves []AnnotationSave `json:"saves"`
	}{items}
	resp, err := c.call(ctx, RouteBulkSaveAnnotations, "/annotations/bulk", nil, body)
	if err != nil {
		return nil, err
	}
	var aux struct {
		Saved  []json.RawMessage `json:"saved"`
		Failed []struct {
			ImageID flexString   `json:"image_id"`
			Error   errorMessage `json:"error"`
		} `json:"failed"`
	}
	if err := decodeData(resp, &aux); err != nil {
		return nil, err
	}
	res := &BulkSaveResult{}
	for _, raw := range aux.Saved {
		var id string
		if json.Unmarshal(raw, &id) == nil {
			res.Saved = append(res.Saved, SaveResult{Success: true, ImageID: id})
			continue
		}
		var sr SaveResult
		if err := json.Unmarshal(raw, &sr); err != nil {
			return nil, invalid(resp, "saved item: %v", err)
		}
		res.Saved = append(res.Saved, sr)
	}
	for _, f := range aux.Failed {
		res.Failed = append(res.Failed, BulkSaveFailure{ImageID: string(f.ImageID), Error: string(f.Error)})
	}
	return res, nil
}

// DeleteImage archives an image (DELETE /images/{dataset}/{image_path}),
// or deletes it for good with permanent. The contract says admin or owner;
// a server may let other roles archive. A 2xx answer whose body says
// success false is an error. DELETE is retried: when an answer is lost
// after the server acted, the retry finds nothing, so ErrNotFound after
// more than one attempt (APIError.Attempts) may mean done.
func (c *Client) DeleteImage(ctx context.Context, dataset, directoryPath, filename string, permanent bool) error {
	if dataset == "" || filename == "" {
		return fmt.Errorf("pictograph: delete image: empty dataset or filename: %w", ErrValidation)
	}
	var q url.Values
	if permanent {
		q = url.Values{"permanent": {"true"}}
	}
	resp, err := c.call(ctx, RouteDeleteImage, "/images/"+EscapeSegment(dataset)+"/"+ImagePath(directoryPath, filename), q, nil)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(resp.body)) == 0 {
		return nil
	}
	var res struct {
		Success *bool      `json:"success"`
		Message flexString `json:"message"`
	}
	if err := decodeData(resp, &res); err != nil {
		return err
	}
	if res.Success != nil && !*res.Success {
		return invalid(resp, "the server answered success false: %s", string(res.Message))
	}
	return nil
}

// DeleteAnnotationsResult is the answer of DELETE /annotations/{dataset}/{image_path}.
type DeleteAnnotationsResult struct {
	ImageID      string `json:"image_id"`
	DeletedCount int    `json:"deleted_count"`
}

// DeleteAnnotations removes all of an image's annotations
// (DELETE /annotations/{dataset}/{image_path}, admin or owner).
func (c *Client) DeleteAnnotations(ctx context.Context, dataset, directoryPath, filename string) (*DeleteAnnotationsResult, error) {
	if dataset == "" || filename == "" {
		return nil, fmt.Errorf("pictograph: delete annotations: empty dataset or filename: %w", ErrValidation)
	}
	resp, err := c.call(ctx, RouteDeleteAnnotations, "/annotations/"+EscapeSegment(dataset)+"/"+ImagePath(directoryPath, filename), nil, nil)
	if err != nil {
		return nil, err
	}
	var res DeleteAnnotationsResult
	if len(bytes.TrimSpace(resp.body)) == 0 {
		return &res, nil
	}
	if err := decodeData(resp, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// errorMessage is an error given as a string or as an object with a
// message (or detail); null is "".
type errorMessage string

func (e *errorMessage) UnmarshalJSON(b []byte) error {
	*e = ""
	var s flexString
	if s.UnmarshalJSON(b) == nil {
		*e = errorMessage(s)
		return nil
	}
	var obj struct {
		Message flexString `json:"message"`
		Detail  flexString `json:"detail"`
		Code    flexString `json:"code"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("want an error message, got %.40s", b)
	}
	*e = errorMessage(cmp.Or(string(obj.Message), string(obj.Detail), string(obj.Code)))
	return nil
}
