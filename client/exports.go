package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Export statuses (§10): pending → processing → completed | failed.
const (
	ExportPending    = "pending"
	ExportProcessing = "processing"
	ExportCompleted  = "completed"
	ExportFailed     = "failed"
)

// Export formats of §10 that pictofs names (the service has more: darwin,
// yolo, yolo_obb, yolo_pose, dota, pascal_voc, cvat, datumaro, labelme,
// csv). FormatPictograph, the default, is the canonical per-image JSON.
const (
	FormatPictograph = "pictograph"
	FormatCOCO       = "coco"
)

// Export limits of §10 and of the listing.
const (
	MaxExportName     = 100 // characters
	MaxExportsPage    = 100 // the page size AllExports asks for
	exportPollFloor   = 100 * time.Millisecond
	defaultExportPoll = 5 * time.Second
)

// ErrExportFailed is returned by WaitExport for an export whose build
// failed; the *Export returned with it has the ErrorMessage.
var ErrExportFailed = errors.New("export failed")

// Export is the Export object of §10. Fields the server sends as null or
// leaves out are zero: FileSize, ImageCount and AnnotationCount before the
// build ends, ErrorMessage unless it failed, ExpiresAt when it has no TTL,
// DownloadURL until it is completed (and on servers that only hand out
// links through ExportDownloadURL).
type Export struct {
	ID              string
	OrganizationID  string
	DatasetID       string
	DatasetName     string
	Name            string
	Format          string
	IncludeImages   bool
	ClassFilter     []string // nil: every class
	StatusFilter    string   // "": every status
	Status          string   // one of the Export* statuses
	ErrorMessage    string
	FileSize        int64
	ImageCount      int
	AnnotationCount int
	CreatedAt       time.Time
	ExpiresAt       time.Time // zero: none given
	// DownloadURL is the signed link of a completed export, as the server
	// gave it (possibly relative: resolve it with ResolveDownloadURL, or
	// take a fresh one from ExportDownloadURL).
	DownloadURL string
}

// Done reports whether the build has ended, completed or failed.
func (e *Export) Done() bool { return e.Status == ExportCompleted || e.Status == ExportFailed }

// UnmarshalJSON decodes an Export, tolerating what a Python service may
// send: null for any field, numbers as floats or strings, Python
// timestamps, a class filter as a list or a comma-separated string.
func (e *Export) UnmarshalJSON(b []byte) error {
	var aux struct {
		ID              flexString  `json:"id"`
		OrganizationID  flexString  `json:"organization_id"`
		DatasetID       flexString  `json:"dataset_id"`
		DatasetName     flexString  `json:"dataset_name"`
		Name            flexString  `json:"name"`
		Format          flexString  `json:"format"`
		IncludeImages   flexBool    `json:"include_images"`
		ClassFilter     flexStrings `json:"class_filter"`
		StatusFilter    flexString  `json:"status_filter"`
		Status          flexString  `json:"status"`
		ErrorMessage    flexString  `json:"error_message"`
		FileSize        flexInt     `json:"file_size"`
		ImageCount      flexInt     `json:"image_count"`
		AnnotationCount flexInt     `json:"annotation_count"`
		CreatedAt       flexTime    `json:"created_at"`
		ExpiresAt       flexTime    `json:"expires_at"`
		DownloadURL     flexString  `json:"download_url"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*e = Export{
		ID: string(aux.ID), OrganizationID: string(aux.OrganizationID), DatasetID: string(aux.DatasetID),
		DatasetName: string(aux.DatasetName), Name: string(aux.Name), Format: string(aux.Format),
		IncludeImages: bool(aux.IncludeImages), ClassFilter: []string(aux.ClassFilter),
		StatusFilter: string(aux.StatusFilter), Status: strings.ToLower(string(aux.Status)),
		ErrorMessage: string(aux.ErrorMessage), FileSize: aux.FileSize.n, ImageCount: int(aux.ImageCount.n),
		AnnotationCount: int(aux.AnnotationCount.n), CreatedAt: time.Time(aux.CreatedAt),
		ExpiresAt: time.Time(aux.ExpiresAt), DownloadURL: string(aux.DownloadURL),
	}
	return nil
}

// CreateExportRequest is the input of CreateExport.
type CreateExportRequest struct {
	DatasetName string // required: the dataset's name (or id)
	Name        string // required, at most 100 characters, unique within the dataset
	Format      string // "" means FormatPictograph
	// IncludeImages adds the image bytes (roughly doubles the size). It is
	// always sent, false included.
	IncludeImages bool
	ClassFilter   []string // nil or empty: every class
	// StatusFilter is one stage: new, annotate, review or complete; ""
	// means every image. "all" and "in_progress" are refused here: the
	// service takes them and builds an empty export.
	StatusFilter    string
	OrganizeBySplit *bool // nil: not sent
}

// createExportBody is the wire form of POST /exports/.
type createExportBody struct {
	DatasetName     string   `json:"dataset_name"`
	Name            string   `json:"name"`
	Format          string   `json:"format"`
	IncludeImages   bool     `json:"include_images"`
	ClassFilter     []string `json:"class_filter,omitempty"`
	StatusFilter    string   `json:"status_filter,omitempty"`
	OrganizeBySplit *bool    `json:"organize_by_split,omitempty"`
}

var imageStatuses = map[string]bool{"new": true, "annotate": true, "review": true, "complete": true}

func (req CreateExportRequest) body() (createExportBody, error) {
	switch {
	case req.DatasetName == "":
		return createExportBody{}, fmt.Errorf("pictograph: create export: empty dataset name: %w", ErrValidation)
	case strings.TrimSpace(req.Name) == "":
		return createExportBody{}, fmt.Errorf("pictograph: create export: empty export name: %w", ErrValidation)
	case utf8.RuneCountInString(req.Name) > MaxExportName:
		return createExportBody{}, fmt.Errorf("pictograph: create export: name of %d characters, the limit is %d: %w",
			utf8.RuneCountInString(req.Name), MaxExportName, ErrValidation)
	case req.StatusFilter == "all" || req.StatusFilter == "in_progress":
		return createExportBody{}, fmt.Errorf("pictograph: create export: status_filter %q would build an EMPTY export (the service matches no image with it): leave it empty for every status: %w",
			req.StatusFilter, ErrValidation)
	case req.StatusFilter != "" && !imageStatuses[req.StatusFilter]:
		return createExportBody{}, fmt.Errorf("pictograph: create export: status_filter %q: want one of new, annotate, review, complete: %w",
			req.StatusFilter, ErrValidation)
	}
	format := req.Format
	if format == "" {
		format = FormatPictograph
	}
	var classes []string
	if len(req.ClassFilter) > 0 {
		classes = req.ClassFilter
	}
	return createExportBody{
		DatasetName: req.DatasetName, Name: req.Name, Format: format, IncludeImages: req.IncludeImages,
		ClassFilter: classes, StatusFilter: req.StatusFilter, OrganizeBySplit: req.OrganizeBySplit,
	}, nil
}

// CreateExport starts an export build (POST /exports/, with an
// Idempotency-Key). The answer is normally pending, without a download
// link. A name the dataset already has is ErrConflict, whether the server
// says 409 or 400 "exists".
func (c *Client) CreateExport(ctx context.Context, req CreateExportRequest) (*Export, error) {
	body, err := req.body()
	if err != nil {
		return nil, err
	}
	resp, err := c.call(ctx, RouteCreateExport, "/exports/", nil, body)
	if err != nil {
		return nil, err
	}
	var e Export
	if err := decodeData(resp, &e); err != nil {
		return nil, err
	}
	if e.ID == "" && e.Name == "" {
		return nil, invalid(resp, "no export in the answer")
	}
	return &e, nil
}

// exportPath is "/exports/{nameOrID}[/suffix]" and its query: with a
// dataset, the name (or id) is looked up in it (?dataset=); without one,
// nameOrID must be the export's id.
func exportPath(dataset, nameOrID, suffix string) (string, url.Values, error) {
	if nameOrID == "" {
		return "", nil, fmt.Errorf("pictograph: empty export name or id: %w", ErrValidation)
	}
	var q url.Values
	if dataset != "" {
		q = url.Values{"dataset": {dataset}}
	}
	return "/exports/" + EscapeSegment(nameOrID) + suffix, q, nil
}

// GetExport returns an export (GET /exports/{name}?dataset=… or, when
// dataset is "", GET /exports/{id}). Every call is an API request.
func (c *Client) GetExport(ctx context.Context, dataset, nameOrID string) (*Export, error) {
	p, q, err := exportPath(dataset, nameOrID, "")
	if err != nil {
		return nil, err
	}
	var e Export
	if err := c.getData(ctx, RouteGetExport, p, q, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// WaitExport polls GetExport every interval (0 means 5 s, the contract's
// advice; at least 100 ms) until the build ends, and returns the export.
// A failed build returns the export and an error matching
// ErrExportFailed. Every poll is an API request; the wait between polls is
// a plain timer that honours ctx.
func (c *Client) WaitExport(ctx context.Context, dataset, nameOrID string, interval time.Duration) (*Export, error) {
	if interval == 0 {
		interval = defaultExportPoll
	}
	interval = max(interval, exportPollFloor)
	for {
		e, err := c.GetExport(ctx, dataset, nameOrID)
		if err != nil {
			return nil, err
		}
		switch e.Status {
		case ExportCompleted:
			return e, nil
		case ExportFailed:
			msg := e.ErrorMessage
			if msg == "" {
				msg = "no error_message given"
			}
			return e, fmt.Errorf("pictograph: export %q of %q: %w: %s", e.Name, e.DatasetName, ErrExportFailed, msg)
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return nil, fmt.Errorf("pictograph: waiting for export %q: %w", nameOrID, err)
		}
	}
}

// ExportDownloadURL asks for a fresh signed link to a completed export's
// ZIP (GET /exports/{name}/download?dataset=… or /exports/{id}/download).
// The link is returned absolute: a relative one is resolved against the
// base URL. Fetch it with OpenSigned, which never sends the key, to
// whatever host it names. Take a fresh one for every download.
func (c *Client) ExportDownloadURL(ctx context.Context, dataset, nameOrID string) (string, error) {
	p, q, err := exportPath(dataset, nameOrID, "/download")
	if err != nil {
		return "", err
	}
	resp, err := c.call(ctx, RouteExportDownload, p, q, nil)
	if err != nil {
		return "", err
	}
	var link struct {
		DownloadURL flexString `json:"download_url"`
		URL         flexString `json:"url"`
	}
	if err := decodeData(resp, &link); err != nil {
		return "", err
	}
	raw := string(link.DownloadURL)
	if raw == "" {
		raw = string(link.URL)
	}
	if raw == "" {
		return "", invalid(resp, "no download_url in the answer")
	}
	u, err := c.ResolveDownloadURL(raw)
	if err != nil {
		return "", invalid(resp, "%v", err)
	}
	return u, nil
}

// ResolveDownloadURL makes an export's download link absolute: an absolute
// http(s) URL is kept as it is, a relative one is resolved against the base
// URL. Either way it is a signed link: OpenSigned fetches it without the key.
func (c *Client) ResolveDownloadURL(link string) (string, error) {
	u, err := c.storageURL(link)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// OpenExport opens an export's ZIP at link (from ExportDownloadURL or
// Export.DownloadURL) as OpenSigned does, for [offset, offset+length).
// A signed link, on any host, is fetched without the key. Only a link that
// is an API route of the base URL itself (same scheme and host, under the
// API prefix, with no query: a route that needs the key, not a signed link)
// is fetched with the key, and costs an API request.
func (c *Client) OpenExport(ctx context.Context, link string, offset, length int64) (io.ReadCloser, int64, error) {
	u, err := c.storageURL(link)
	if err != nil {
		return nil, 0, err
	}
	if c.sameHost(u) && u.RawQuery == "" && strings.HasPrefix(u.EscapedPath(), c.base.EscapedPath()+APIPrefix+"/") {
		return c.open(ctx, &request{route: RouteExportFile, method: http.MethodGet, u: u, stream: true}, offset, length)
	}
	return c.OpenSigned(ctx, u.String(), offset, length)
}

// ExportQuery filters ListExports and AllExports; empty fields are not sent.
type ExportQuery struct {
	DatasetName string
	Status      string
}

func (q ExportQuery) values(limit, offset int) url.Values {
	v := url.Values{}
	if q.DatasetName != "" {
		v.Set("dataset_name", q.DatasetName)
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	return pageQuery(v, limit, offset)
}

// ListExports returns one page of GET /exports/ and its pagination (nil
// when the answer has none). limit 0 leaves the server's default.
func (c *Client) ListExports(ctx context.Context, q ExportQuery, limit, offset int) ([]Export, *Pagination, error) {
	es, p, err := c.exportsPage(ctx, q, limit, offset)
	return es, p.public(offset, len(es)), err
}

func (c *Client) exportsPage(ctx context.Context, q ExportQuery, limit, offset int) ([]Export, *rawPagination, error) {
	resp, err := c.call(ctx, RouteListExports, "/exports/", q.values(limit, offset), nil)
	if err != nil {
		return nil, nil, err
	}
	return decodeList[Export](resp)
}

// AllExports pages GET /exports/ at MaxExportsPage with the rules of §2. An
// export seen twice (the list shifted while paging) is kept once.
func (c *Client) AllExports(ctx context.Context, q ExportQuery) ([]Export, error) {
	fetch := func(ctx context.Context, limit, offset int) ([]Export, *rawPagination, error) {
		return c.exportsPage(ctx, q, limit, offset)
	}
	return collectUnique(ctx, MaxExportsPage, fetch, func(e Export) string { return e.ID })
}

// DeleteExport deletes an export (DELETE /exports/{name}?dataset=…, or
// /exports/{id} when dataset is ""); it needs an admin or owner key. Any
// 2xx answer is success, whatever its body. As for DeleteImage, ErrNotFound
// after a retry may mean the first attempt deleted it.
func (c *Client) DeleteExport(ctx context.Context, dataset, nameOrID string) error {
	p, q, err := exportPath(dataset, nameOrID, "")
	if err != nil {
		return err
	}
	_, err = c.call(ctx, RouteDeleteExport, p, q, nil)
	return err
}

// BulkDeleteResult is the answer of POST /exports/bulk-delete.
type BulkDeleteResult struct {
	Succeeded []string // ids deleted
	NotFound  []string // ids the server did not know (or not in this organization)
	Count     int      // exports deleted
}

// BulkDeleteExports deletes exports by id (POST /exports/bulk-delete with
// {export_ids}, admin or owner). No ids is no request.
func (c *Client) BulkDeleteExports(ctx context.Context, ids []string) (*BulkDeleteResult, error) {
	if len(ids) == 0 {
		return &BulkDeleteResult{}, nil
	}
	body := struct {
		ExportIDs []string `json:"export_ids"`
	}{ids}
	resp, err := c.call(ctx, RouteBulkDeleteExports, "/exports/bulk-delete", nil, body)
	if err != nil {
		return nil, err
	}
	var aux struct {
		Succeeded idList  `json:"succeeded"`
		NotFound  idList  `json:"not_found"`
		Count     flexInt `json:"count"`
	}
	if err := decodeData(resp, &aux); err != nil {
		return nil, err
	}
	res := &BulkDeleteResult{Succeeded: aux.Succeeded, NotFound: aux.NotFound, Count: int(aux.Count.n)}
	if !aux.Count.present {
		res.Count = len(res.Succeeded)
	}
	return res, nil
}

// flexString is a JSON string, or a number or boolean rendered as one;
// null is "".
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	*s = ""
	b = bytes.TrimSpace(b)
	if isNull(b) {
		return nil
	}
	var v string
	if json.Unmarshal(b, &v) == nil {
		*s = flexString(v)
		return nil
	}
	var n json.Number
	if json.Unmarshal(b, &n) == nil {
		*s = flexString(n.String())
		return nil
	}
	var t bool
	if json.Unmarshal(b, &t) == nil {
		*s = flexString(strconv.FormatBool(t))
		return nil
	}
	return fmt.Errorf("want a string, got %.40s", b)
}

// flexBool is a JSON boolean, or "true"/"false", or 0/1; null is false.
type flexBool bool

func (v *flexBool) UnmarshalJSON(b []byte) error {
	*v = false
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	switch strings.ToLower(string(s)) {
	case "true", "1", "yes":
		*v = true
	}
	return nil
}

// flexInt is a JSON integer, or a float with no fraction, or such a
// number in a string; null (or absence) is 0, not present.
type flexInt struct {
	n       int64
	present bool
}

func (v *flexInt) UnmarshalJSON(b []byte) error {
	*v = flexInt{}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	if s == "" {
		return nil
	}
	if n, err := strconv.ParseInt(string(s), 10, 64); err == nil {
		*v = flexInt{n: n, present: true}
		return nil
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil || f != float64(int64(f)) {
		return fmt.Errorf("want an integer, got %.40s", b)
	}
	*v = flexInt{n: int64(f), present: true}
	return nil
}

// flexStrings is a list of strings, a comma-separated string, or null.
type flexStrings []string

func (v *flexStrings) UnmarshalJSON(b []byte) error {
	*v = nil
	if isNull(b) {
		return nil
	}
	var list []string
	if json.Unmarshal(b, &list) == nil {
		if len(list) > 0 {
			*v = list
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a list of strings, got %.40s", b)
	}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*v = append(*v, part)
		}
	}
	return nil
}

// idList is a list of ids: strings, or objects with an "id" (or
// "export_id"/"image_id"); null is empty.
type idList []string

func (v *idList) UnmarshalJSON(b []byte) error {
	*v = nil
	var items []json.RawMessage
	if isNull(b) {
		return nil
	}
	if err := json.Unmarshal(b, &items); err != nil {
		return fmt.Errorf("want a list of ids, got %.40s", b)
	}
	for _, it := range items {
		var s flexString
		if s.UnmarshalJSON(it) == nil {
			if s != "" {
				*v = append(*v, string(s))
			}
			continue
		}
		var obj struct {
			ID       flexString `json:"id"`
			ExportID flexString `json:"export_id"`
			ImageID  flexString `json:"image_id"`
		}
		if err := json.Unmarshal(it, &obj); err != nil {
			return fmt.Errorf("want an id, got %.40s", it)
		}
		switch {
		case obj.ID != "":
			*v = append(*v, string(obj.ID))
		case obj.ExportID != "":
			*v = append(*v, string(obj.ExportID))
		case obj.ImageID != "":
			*v = append(*v, string(obj.ImageID))
		}
	}
	return nil
}
