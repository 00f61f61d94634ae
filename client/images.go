package client

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ImageQuery is the query of GET /images/. Empty fields are not sent (the
// server rejects unknown keys, not empty ones, but sends nothing it need not).
type ImageQuery struct {
	Dataset, DirectoryPath, Status, Filename string
	Limit, Offset                            int
}

func (q ImageQuery) values(limit, offset int) url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"dataset": q.Dataset, "directory_path": q.DirectoryPath, "status": q.Status, "filename": q.Filename} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return pageQuery(v, limit, offset)
}

// ListImages returns one page of GET /images/ and its pagination (nil when
// the answer has none). Limit 0 leaves the server's default.
func (c *Client) ListImages(ctx context.Context, q ImageQuery) ([]Image, *Pagination, error) {
	images, p, err := c.imagesPage(ctx, q, q.Limit, q.Offset)
	return images, p.public(q.Offset, len(images)), err
}

func (c *Client) imagesPage(ctx context.Context, q ImageQuery, limit, offset int) ([]Image, *rawPagination, error) {
	resp, err := c.call(ctx, RouteListImages, "/images/", q.values(limit, offset), nil)
	if err != nil {
		return nil, nil, err
	}
	return decodeList[Image](resp)
}

// EachImage pages GET /images/ from q.Offset at q.Limit (0 → 1000, capped at
// 1000) with the rules of §2, with or without a pagination object.
func (c *Client) EachImage(ctx context.Context, q ImageQuery, fn func(page []Image) error) error {
	fetch := func(ctx context.Context, limit, offset int) ([]Image, *rawPagination, error) {
		return c.imagesPage(ctx, q, limit, offset)
	}
	return eachPage(ctx, clampPage(q.Limit, MaxImagesPage), max(q.Offset, 0), fetch, fn)
}

// RequestUploadURL is step one of an upload (POST /images/upload-url).
func (c *Client) RequestUploadURL(ctx context.Context, req UploadURLRequest) (*UploadURL, error) {
	resp, err := c.call(ctx, RouteUploadURL, "/images/upload-url", nil, req)
	if err != nil {
		return nil, err
	}
	var u UploadURL
	if err := decodeData(resp, &u); err != nil {
		return nil, err
	}
	if u.UploadURL == "" {
		return nil, invalid(resp, "no upload_url")
	}
	return &u, nil
}

// RegisterImage is step three of an upload (POST /images/register). A
// duplicate filename in the directory is ErrConflict (400 or 409).
func (c *Client) RegisterImage(ctx context.Context, req RegisterImageRequest) (*Image, error) {
	resp, err := c.call(ctx, RouteRegisterImage, "/images/register", nil, req)
	if err != nil {
		return nil, err
	}
	var img Image
	if err := decodeData(resp, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

// UploadImage runs the three steps of an upload: upload URL, PUT of the
// bytes to it (no key), register. directoryPath "" means the root "/".
func (c *Client) UploadImage(ctx context.Context, dataset, directoryPath, filename, contentType string, data []byte, width, height int) (*Image, error) {
	directoryPath = cmp.Or(directoryPath, "/")
	up, err := c.RequestUploadURL(ctx, UploadURLRequest{Dataset: dataset, Filename: filename, DirectoryPath: directoryPath, ContentType: contentType})
	if err != nil {
		return nil, err
	}
	if err := c.PutUpload(ctx, up.UploadURL, contentType, data); err != nil {
		return nil, err
	}
	return c.RegisterImage(ctx, RegisterImageRequest{
		Dataset:       dataset,
		Filename:      cmp.Or(up.Filename, filename),
		DirectoryPath: cmp.Or(up.DirectoryPath, directoryPath),
		FileSize:      int64(len(data)),
		ContentType:   contentType,
		Width:         width,
		Height:        height,
	})
}

// AnnotationFile returns the raw annotation document of an image
// (GET /annotations/{image_id}/file, no data wrapper), validated as JSON and
// not re-serialized, so that no field is lost.
func (c *Client) AnnotationFile(ctx context.Context, imageID string) ([]byte, error) {
	if imageID == "" {
		return nil, fmt.Errorf("pictograph: empty image id: %w", ErrValidation)
	}
	return c.rawJSON(ctx, c.apiURL("/annotations/"+EscapeSegment(imageID)+"/file", nil))
}

// AnnotationFileAt is AnnotationFile for an annotation_url of a listing. An
// absolute URL is resolved by its path against the base URL, so the key
// never goes to another host; a path without APIPrefix is taken as relative
// to it.
func (c *Client) AnnotationFileAt(ctx context.Context, annotationURL string) ([]byte, error) {
	u, err := url.Parse(annotationURL)
	if err != nil || u.Opaque != "" || u.EscapedPath() == "" {
		return nil, fmt.Errorf("pictograph: invalid annotation URL %q: %w", SanitizeURL(annotationURL), ErrValidation)
	}
	p := u.EscapedPath()
	switch {
	case !strings.HasPrefix(p, "/"):
		p = APIPrefix + "/" + p
	case !strings.Contains(p, APIPrefix+"/"):
		p = APIPrefix + p
	}
	if bp := c.base.EscapedPath(); bp != "" && !strings.HasPrefix(p, bp+"/") {
		p = bp + p
	}
	return c.rawJSON(ctx, c.rootURL(p, u.RawQuery))
}

// rawJSON GETs u with the key and returns its body, which must be JSON.
func (c *Client) rawJSON(ctx context.Context, u *url.URL) ([]byte, error) {
	resp, err := c.do(ctx, &request{route: RouteAnnotationFile, method: http.MethodGet, u: u})
	if err != nil {
		return nil, err
	}
	if !json.Valid(resp.body) {
		return nil, invalid(resp, "body is not JSON")
	}
	return resp.body, nil
}
