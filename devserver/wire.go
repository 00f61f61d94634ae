package devserver

import (
	"encoding/json"
	"time"
)

// The devserver's wire types: the JSON it reads and writes, written from
// the contract (docs/pictograph-api.md) and pinned by the golden documents
// in internal/testenv/golden/docs. They are the devserver's own, not package client's,
// so that a wrong JSON tag on either side fails a test instead of agreeing
// with itself.

// Pagination is the paging object of list envelopes (§2).
type Pagination struct {
	Limit   int  `json:"limit"`
	Offset  int  `json:"offset"`
	Total   int  `json:"total"`
	HasMore bool `json:"has_more"`
}

// Class is one entry of a dataset's class list.
type Class struct {
	Name       string          `json:"name"`
	Type       string          `json:"type,omitempty"`
	Color      string          `json:"color,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
}

// Dataset is the Dataset object of §3. ImageCount does not count archived
// images; ArchivedImageCount does.
type Dataset struct {
	ID                  string    `json:"id"`
	OrganizationID      string    `json:"organization_id"`
	Name                string    `json:"name"`
	Description         string    `json:"description"`
	Readme              string    `json:"readme,omitempty"`
	AnnotationTypes     []string  `json:"annotation_types"`
	Classes             []Class   `json:"classes"`
	ImageCount          int       `json:"image_count"`
	CompletedImageCount int       `json:"completed_image_count"`
	ArchivedImageCount  int       `json:"archived_image_count"`
	TotalSize           int64     `json:"total_size"`
	IsPublic            bool      `json:"is_public"`
	IsArchived          bool      `json:"is_archived"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// datasetWithImages is a Dataset with one page of include_images.
type datasetWithImages struct {
	Dataset
	Images []Image `json:"images"`
}

// Image is the Image object of §3, the same in include_images, /images/
// and the register routes.
type Image struct {
	ID              string    `json:"id"`
	DatasetID       string    `json:"dataset_id"`
	Filename        string    `json:"filename"`
	DirectoryPath   string    `json:"directory_path"`
	Status          string    `json:"status"`
	Split           *string   `json:"split"`
	AnnotationCount int       `json:"annotation_count"`
	FileSize        int64     `json:"file_size"`
	Width           int       `json:"width"`
	Height          int       `json:"height"`
	ContentType     string    `json:"content_type"`
	Tags            []string  `json:"tags"`
	IsArchived      bool      `json:"is_archived"`
	ImageURL        string    `json:"image_url"`
	ThumbnailURL    string    `json:"thumbnail_url"`
	AnnotationURL   string    `json:"annotation_url"`
	CreatedAt       time.Time `json:"created_at"`
}

// downloadItem is one entry of the download listing; the devserver omits
// directory_path and, for images without annotations, annotation_url (§9).
type downloadItem struct {
	ID              string `json:"id"`
	Filename        string `json:"filename"`
	FileSize        int64  `json:"file_size"`
	AnnotationCount int    `json:"annotation_count"`
	ImageURL        string `json:"image_url"`
	AnnotationURL   string `json:"annotation_url,omitempty"`
}

// downloadListing is the body of GET /datasets/{d}/download.
type downloadListing struct {
	ID         string         `json:"id"`
	Items      []downloadItem `json:"items"`
	TotalItems int            `json:"total_items"`
}

// deleteResult is the body of DELETE /datasets/{d}.
type deleteResult struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Deleted       bool   `json:"deleted"`
	ImagesDeleted int    `json:"images_deleted"`
}

// organization is the body of GET /organizations/me, under "organization".
type organization struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Plan string `json:"plan"`
	Role string `json:"role"`
}

// BoundingBox is in absolute pixels, top-left origin.
type BoundingBox struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// Point is one vertex of a polygon or polyline, or a keypoint.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// Polygon holds one or more closed paths.
type Polygon struct {
	Paths [][]Point `json:"paths"`
}

// Polyline holds one open path.
type Polyline struct {
	Path []Point `json:"path"`
}

// Annotation is one annotation object (§4): these keys and no others.
type Annotation struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Type        string       `json:"type"`
	Confidence  *float64     `json:"confidence,omitempty"`
	BoundingBox *BoundingBox `json:"bounding_box,omitempty"`
	Polygon     *Polygon     `json:"polygon,omitempty"`
	Polyline    *Polyline    `json:"polyline,omitempty"`
	Keypoint    *Point       `json:"keypoint,omitempty"`
}

// annotationFile is the body of GET /annotations/{image_id}/file.
type annotationFile struct {
	Image       string          `json:"image"`
	Annotations json.RawMessage `json:"annotations"`
}

// annotationsByPath is the body of GET /annotations/{dataset}/{image_path}.
type annotationsByPath struct {
	Success         bool            `json:"success"`
	ImageID         string          `json:"image_id"`
	Filename        string          `json:"filename"`
	Annotations     json.RawMessage `json:"annotations"`
	AnnotationCount int             `json:"annotation_count"`
}

// CreateDatasetRequest is the body of POST /datasets/.
type CreateDatasetRequest struct {
	Name            string   `json:"name"`
	Description     string   `json:"description,omitempty"`
	Readme          string   `json:"readme,omitempty"`
	AnnotationTypes []string `json:"annotation_types,omitempty"`
	Classes         []Class  `json:"classes,omitempty"`
}

// updateDatasetRequest is the body of PATCH /datasets/{d}.
type updateDatasetRequest struct {
	NewName     *string `json:"new_name"`
	Description *string `json:"description"`
	Readme      *string `json:"readme"`
}

// uploadURLRequest is the body of POST /images/upload-url.
type uploadURLRequest struct {
	Dataset       string `json:"dataset"`
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"`
	ContentType   string `json:"content_type"`
}

// uploadURL is the answer of POST /images/upload-url.
type uploadURL struct {
	Filename         string `json:"filename"`
	DirectoryPath    string `json:"directory_path"`
	UploadURL        string `json:"upload_url"`
	ExpiresInMinutes int    `json:"expires_in_minutes"`
}

// registerImageRequest is the body of POST /images/register, and one item
// of POST /images/bulk-register.
type registerImageRequest struct {
	Dataset       string `json:"dataset,omitempty"`
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"`
	FileSize      int64  `json:"file_size"`
	ContentType   string `json:"content_type"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
}

// bulkUploadRequest is the body of POST /images/bulk-upload-url.
type bulkUploadRequest struct {
	Dataset string           `json:"dataset"`
	Images  []bulkUploadItem `json:"images"`
}

type bulkUploadItem struct {
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"`
	ContentType   string `json:"content_type"`
}

// bulkUploadURLs is the answer of POST /images/bulk-upload-url.
type bulkUploadURLs struct {
	UploadURLs       []bulkUploadURL `json:"upload_urls"`
	ExpiresInMinutes int             `json:"expires_in_minutes"`
}

type bulkUploadURL struct {
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"`
	UploadURL     string `json:"upload_url"`
}

// bulkRegisterRequest is the body of POST /images/bulk-register.
type bulkRegisterRequest struct {
	Dataset string             `json:"dataset"`
	Images  []bulkRegisterItem `json:"images"`
}

type bulkRegisterItem struct {
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"`
	FileSize      int64  `json:"file_size"`
	ContentType   string `json:"content_type"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
}

// bulkRegisterResult is the answer of POST /images/bulk-register.
type bulkRegisterResult struct {
	Succeeded []Image               `json:"succeeded"`
	Failed    []bulkRegisterFailure `json:"failed"`
	Count     int                   `json:"count"`
}

type bulkRegisterFailure struct {
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"`
	Error         string `json:"error"`
}

// saveResult is the answer of POST /annotations/{dataset}/{image_path}.
type saveResult struct {
	Success       bool   `json:"success"`
	ImageID       string `json:"image_id"`
	PreviousCount int    `json:"previous_count"`
	NewCount      int    `json:"new_count"`
	Status        string `json:"status"`
}

// bulkSaveRequest is the body of POST /annotations/bulk.
type bulkSaveRequest struct {
	Saves []bulkSaveItem `json:"saves"`
}

type bulkSaveItem struct {
	ImageID     string          `json:"image_id"`
	Annotations json.RawMessage `json:"annotations"`
}

// bulkSaveResult is the answer of POST /annotations/bulk.
type bulkSaveResult struct {
	Saved  []bulkSaved       `json:"saved"`
	Failed []bulkSaveFailure `json:"failed"`
}

type bulkSaved struct {
	ImageID       string `json:"image_id"`
	PreviousCount int    `json:"previous_count"`
	NewCount      int    `json:"new_count"`
	Status        string `json:"status"`
}

type bulkSaveFailure struct {
	ImageID string `json:"image_id"`
	Error   string `json:"error"`
}

// deleteImageResult is the answer of DELETE /images/{dataset}/{image_path}.
type deleteImageResult struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
}

// deleteAnnotationsResult is the answer of DELETE /annotations/{dataset}/{image_path}.
type deleteAnnotationsResult struct {
	ImageID      string `json:"image_id"`
	DeletedCount int    `json:"deleted_count"`
}
