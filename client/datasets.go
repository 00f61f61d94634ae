package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
)

// Page caps of §2.
const (
	MaxDatasetsPage  = 1000
	MaxImagesPage    = 1000
	MaxIncludeImages = 10000
	MaxDownloadItems = 10000
)

// datasetPath is "/datasets/{dataset}" with the name or id strictly escaped.
func datasetPath(nameOrID string) (string, error) {
	if nameOrID == "" {
		return "", fmt.Errorf("pictograph: empty dataset name: %w", ErrValidation)
	}
	return "/datasets/" + EscapeSegment(nameOrID), nil
}

// Me returns the key's organization (GET /organizations/me), a cheap key
// check. It accepts {organization:{…}}, {data:{…}} and {data:{organization:{…}}}.
func (c *Client) Me(ctx context.Context) (*Organization, error) {
	resp, err := c.call(ctx, RouteMe, "/organizations/me", nil, nil)
	if err != nil {
		return nil, err
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &env); err != nil || env == nil {
		return nil, invalid(resp, "body is not a JSON object")
	}
	raw, ok := env["organization"]
	if !ok {
		if data, ok := env["data"]; ok {
			raw = data
			var inner map[string]json.RawMessage
			if json.Unmarshal(data, &inner) == nil && inner["organization"] != nil {
				raw = inner["organization"]
			}
		} else {
			raw = resp.body
		}
	}
	var org Organization
	if err := json.Unmarshal(raw, &org); err != nil || isNull(raw) {
		return nil, invalid(resp, "no organization object")
	}
	return &org, nil
}

// ListDatasets returns one page of GET /datasets/ and its pagination (nil
// when the answer has none). limit 0 leaves the server's default.
func (c *Client) ListDatasets(ctx context.Context, limit, offset int) ([]Dataset, *Pagination, error) {
	ds, p, err := c.datasetsPage(ctx, limit, offset)
	return ds, p.public(offset, len(ds)), err
}

func (c *Client) datasetsPage(ctx context.Context, limit, offset int) ([]Dataset, *rawPagination, error) {
	resp, err := c.call(ctx, RouteListDatasets, "/datasets/", pageQuery(nil, limit, offset), nil)
	if err != nil {
		return nil, nil, err
	}
	return decodeList[Dataset](resp)
}

// AllDatasets pages GET /datasets/ at 1000 with the rules of §2. A dataset
// seen twice (the list shifted while paging) is kept once.
func (c *Client) AllDatasets(ctx context.Context) ([]Dataset, error) {
	return collectUnique(ctx, MaxDatasetsPage, c.datasetsPage, func(d Dataset) string { return d.ID })
}

// GetDataset returns one dataset by name or id (GET /datasets/{dataset}).
func (c *Client) GetDataset(ctx context.Context, nameOrID string) (*Dataset, error) {
	p, err := datasetPath(nameOrID)
	if err != nil {
		return nil, err
	}
	var d Dataset
	if err := c.getData(ctx, RouteGetDataset, p, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DatasetImagesPage returns the dataset with one page of its images embedded
// (include_images=true&images_limit&images_offset).
func (c *Client) DatasetImagesPage(ctx context.Context, nameOrID string, limit, offset int) (*Dataset, error) {
	p, err := datasetPath(nameOrID)
	if err != nil {
		return nil, err
	}
	q := url.Values{"include_images": {"true"}, "images_offset": {strconv.Itoa(max(offset, 0))}}
	if limit > 0 {
		q.Set("images_limit", strconv.Itoa(limit))
	}
	var d Dataset
	if err := c.getData(ctx, RouteGetDataset, p, q, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// EachDatasetImage pages include_images at size (0 → 10000, capped at
// 10000), calling fn per page, until it holds image_count images or a page is
// empty (§2). It returns the dataset of the last page, without Images.
func (c *Client) EachDatasetImage(ctx context.Context, nameOrID string, size int, fn func(page []Image) error) (*Dataset, error) {
	limit := clampPage(size, MaxIncludeImages)
	var last *Dataset
	for offset := 0; ; {
		var d *Dataset
		err := retryPage(ctx, func() (err error) {
			d, err = c.DatasetImagesPage(ctx, nameOrID, limit, offset)
			return err
		})
		if err != nil {
			return nil, err
		}
		images := d.Images
		d.Images = nil
		last = d
		if len(images) == 0 {
			return last, nil
		}
		if err := fn(images); err != nil {
			return nil, err
		}
		offset += len(images)
		if offset >= d.ImageCount {
			return last, nil
		}
	}
}

// CreateDataset creates a dataset (POST /datasets/, with an Idempotency-Key).
// A taken name is ErrConflict, the plan's cap ErrPaymentRequired.
func (c *Client) CreateDataset(ctx context.Context, req CreateDatasetRequest) (*Dataset, error) {
	if req.Name == "" {
		return nil, fmt.Errorf("pictograph: empty dataset name: %w", ErrValidation)
	}
	resp, err := c.call(ctx, RouteCreateDataset, "/datasets/", nil, req)
	if err != nil {
		return nil, err
	}
	var d Dataset
	if err := decodeData(resp, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// UpdateDataset changes a dataset (PATCH /datasets/{dataset}, with an
// Idempotency-Key). A taken new_name is ErrConflict.
func (c *Client) UpdateDataset(ctx context.Context, nameOrID string, req UpdateDatasetRequest) (*Dataset, error) {
	p, err := datasetPath(nameOrID)
	if err != nil {
		return nil, err
	}
	resp, err := c.call(ctx, RouteUpdateDataset, p, nil, req)
	if err != nil {
		return nil, err
	}
	var d Dataset
	if err := decodeData(resp, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteDataset deletes a dataset (DELETE /datasets/{dataset}); it needs an
// admin or owner key. An empty 2xx body counts as deleted.
func (c *Client) DeleteDataset(ctx context.Context, nameOrID string) (*DeleteResult, error) {
	p, err := datasetPath(nameOrID)
	if err != nil {
		return nil, err
	}
	resp, err := c.call(ctx, RouteDeleteDataset, p, nil, nil)
	if err != nil {
		return nil, err
	}
	if len(resp.body) == 0 {
		return &DeleteResult{Name: nameOrID, Deleted: true}, nil
	}
	var res DeleteResult
	if err := decodeData(resp, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// DownloadOptions are the query of the download listing.
type DownloadOptions struct {
	Mode         string // full (default), images_only or annotations_only
	StatusFilter string // optional image status; an unknown one is a 400
	Limit        int    // 0 → 10000, the cap
}

// DownloadListing returns the signed-URL listing of a dataset
// (GET /datasets/{dataset}/download). It has no offset: past Limit items the
// listing is truncated, and TotalItems tells.
func (c *Client) DownloadListing(ctx context.Context, nameOrID string, opts DownloadOptions) (*DownloadListing, error) {
	p, err := datasetPath(nameOrID)
	if err != nil {
		return nil, err
	}
	mode := opts.Mode
	if mode == "" {
		mode = "full"
	}
	q := url.Values{"mode": {mode}, "limit": {strconv.Itoa(clampPage(opts.Limit, MaxDownloadItems))}}
	if opts.StatusFilter != "" {
		q.Set("status_filter", opts.StatusFilter)
	}
	var l DownloadListing
	if err := c.getData(ctx, RouteDownloadListing, p+"/download", q, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// pageQuery adds limit (when > 0) and offset (when > 0) to q.
func pageQuery(q url.Values, limit, offset int) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	return q
}
