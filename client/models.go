package client

import (
	"encoding/json"
	"time"
)

// Pagination is the paging object of list envelopes (docs/pictograph-api.md §2).
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

// Dataset is the Dataset object (docs/pictograph-api.md §3). Images is set only
// when the dataset was fetched with include_images=true.
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
	Images              []Image   `json:"images,omitempty"`
}

// Image is the Image object, the same shape in include_images, /images/ and
// metadata routes. Filenames are unique only within a directory.
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

// DownloadItem is one entry of the download listing. ImageURL is a signed
// object-storage URL on another host, fetched without the API key.
// AnnotationURL may be empty when AnnotationCount is 0.
type DownloadItem struct {
	ID              string `json:"id"`
	Filename        string `json:"filename"`
	DirectoryPath   string `json:"directory_path,omitempty"`
	FileSize        int64  `json:"file_size"`
	AnnotationCount int    `json:"annotation_count"`
	ImageURL        string `json:"image_url"`
	AnnotationURL   string `json:"annotation_url,omitempty"`
}

// DownloadListing is the body of GET /datasets/{d}/download. It has no
// offset: a dataset with more images than the limit is truncated.
type DownloadListing struct {
	ID         string         `json:"id"`
	Items      []DownloadItem `json:"items"`
	TotalItems int            `json:"total_items"`
}

// DeleteResult is the body of DELETE /datasets/{d}.
type DeleteResult struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Deleted       bool   `json:"deleted"`
	ImagesDeleted int    `json:"images_deleted"`
}

// Organization is the body of GET /organizations/me.
type Organization struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Plan string `json:"plan,omitempty"`
	Role string `json:"role,omitempty"`
}

// BoundingBox is in absolute pixels, top-left origin.
type BoundingBox struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// Point is one vertex of a polygon, polyline or keypoint.
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

// Annotation is one annotation object. Exactly one geometry is set.
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

// AnnotationDocument is the per-image document served by
// GET /annotations/{image_id}/file. Clients keep the raw bytes so that no
// field is lost; this type is for servers and for callers that parse it.
type AnnotationDocument struct {
	Image       string       `json:"image"`
	Annotations []Annotation `json:"annotations"`
}

// CreateDatasetRequest is the body of POST /datasets/.
type CreateDatasetRequest struct {
	Name            string   `json:"name"`
	Description     string   `json:"description,omitempty"`
	Readme          string   `json:"readme,omitempty"`
	AnnotationTypes []string `json:"annotation_types,omitempty"`
	Classes         []Class  `json:"classes,omitempty"`
}

// UpdateDatasetRequest is the body of PATCH /datasets/{d}. Nil fields are
// left unchanged.
type UpdateDatasetRequest struct {
	NewName     *string `json:"new_name,omitempty"`
	Description *string `json:"description,omitempty"`
	Readme      *string `json:"readme,omitempty"`
}

// UploadURLRequest is the body of POST /images/upload-url.
type UploadURLRequest struct {
	Dataset       string `json:"dataset"`
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"`
	ContentType   string `json:"content_type"`
}

// UploadURL is the answer to POST /images/upload-url.
type UploadURL struct {
	Filename         string `json:"filename"`
	DirectoryPath    string `json:"directory_path"`
	UploadURL        string `json:"upload_url"`
	ExpiresInMinutes int    `json:"expires_in_minutes"`
}

// RegisterImageRequest is the body of POST /images/register.
type RegisterImageRequest struct {
	Dataset       string `json:"dataset"`
	Filename      string `json:"filename"`
	DirectoryPath string `json:"directory_path"`
	FileSize      int64  `json:"file_size"`
	ContentType   string `json:"content_type"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
}
