package client

import (
	"strings"
	"time"
)

// Route patterns of RequestEvent.Route: the method and the contract's path
// pattern, with every name, id and query left out, so that a metric
// labelled by route has a fixed, small set of values and never holds a
// dataset name, a key or a signature.
const (
	RouteMe                  = "GET /organizations/me"
	RouteListDatasets        = "GET /datasets/"
	RouteCreateDataset       = "POST /datasets/"
	RouteGetDataset          = "GET /datasets/{dataset}"
	RouteUpdateDataset       = "PATCH /datasets/{dataset}"
	RouteDeleteDataset       = "DELETE /datasets/{dataset}"
	RouteDownloadListing     = "GET /datasets/{dataset}/download"
	RouteListImages          = "GET /images/"
	RouteUploadURL           = "POST /images/upload-url"
	RouteRegisterImage       = "POST /images/register"
	RouteBulkUploadURLs      = "POST /images/bulk-upload-url"
	RouteBulkRegisterImages  = "POST /images/bulk-register"
	RouteImageBytes          = "GET /images/{dataset}/{image_path}"
	RouteDeleteImage         = "DELETE /images/{dataset}/{image_path}"
	RouteAnnotationFile      = "GET /annotations/{image_id}/file"
	RouteSaveAnnotations     = "POST /annotations/{dataset}/{image_path}"
	RouteDeleteAnnotations   = "DELETE /annotations/{dataset}/{image_path}"
	RouteBulkSaveAnnotations = "POST /annotations/bulk"
	RouteCreateExport        = "POST /exports/"
	RouteListExports         = "GET /exports/"
	RouteGetExport           = "GET /exports/{export}"
	RouteExportDownload      = "GET /exports/{export}/download"
	RouteDeleteExport        = "DELETE /exports/{export}"
	RouteBulkDeleteExports   = "POST /exports/bulk-delete"
	RouteExportFile          = "GET {export_download_url}"
	RouteStorageGet          = "GET {signed_url}"
	RouteStoragePut          = "PUT {upload_url}"
)

// RequestEvent describes one attempt of a request, API or storage, as
// Options.OnRequest receives it. An attempt that the client-side budget
// refused, or that a 429's Retry-After held back past its limit, was not
// sent and has no event.
type RequestEvent struct {
	// Route is one of the Route* constants: method and path pattern, never
	// a raw path, a name, an id, the key or a signed URL's query.
	Route string
	// Storage is true for a signed-URL request (no key, not budgeted).
	Storage bool
	// Status is the HTTP status of the answer; 0 on a transport error.
	Status int
	// Attempt counts from 1; retries and resumes of a cut body are
	// attempts of their own.
	Attempt int
	// Retry is true when another attempt of the same request follows.
	Retry bool
	// Duration is the time to the response headers (for a streamed body)
	// or to the whole body.
	Duration time.Duration
	// Err is nil for a 2xx answer, else the *APIError or the transport
	// error of the attempt.
	Err error
}

// Method is the HTTP method of the event's route.
func (e RequestEvent) Method() string {
	m, _, _ := strings.Cut(e.Route, " ")
	return m
}

// BudgetLeft reports the API requests the client-side budget
// (Options.RequestsPerHour) still allows in the sliding hour, and whether
// there is a budget at all: (0, false) means unlimited.
func (c *Client) BudgetLeft() (left int, limited bool) {
	if c.budget == nil {
		return 0, false
	}
	return c.budget.left(c.now()), true
}

// emit calls Options.OnRequest, if set. The caller holds no lock.
func (c *Client) emit(r *request, attempt int, start time.Time, status int, err error, retry bool) {
	if c.onRequest == nil {
		return
	}
	route := r.route
	if route == "" {
		route = r.method + " {unknown}"
	}
	c.onRequest(RequestEvent{Route: route, Storage: r.storage, Status: status, Attempt: attempt, Retry: retry,
		Duration: time.Since(start), Err: err})
}
