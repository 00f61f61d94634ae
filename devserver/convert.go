package devserver

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// requestBase is the API base URL as the caller reached it.
func requestBase(r *http.Request) string {
	return "http://" + r.Host
}

// storageBase is the storage host's base URL as a caller of r should reach
// it: a wildcard listen address is replaced by the host the caller used.
func (s *Server) storageBase(r *http.Request) string {
	base := s.StorageURL()
	u, err := url.Parse(base)
	if err != nil || r == nil {
		return base
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return base
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		reqHost := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			reqHost = h
		}
		reqHost = strings.Trim(reqHost, "[]")
		u.Host = net.JoinHostPort(reqHost, port)
		return u.String()
	}
	return base
}

func (s *Server) datasetJSON(d *datasetRow) Dataset {
	out := Dataset{
		ID: d.id, OrganizationID: d.orgID, Name: d.name, Description: d.description, Readme: d.readme,
		AnnotationTypes: []string{}, Classes: []Class{},
		ImageCount: d.imageCount, CompletedImageCount: d.completedCount, ArchivedImageCount: d.archivedCount,
		TotalSize: d.totalSize, IsPublic: d.isPublic, IsArchived: d.isArchived,
		CreatedAt: fromMicros(d.createdAt), UpdatedAt: fromMicros(d.updatedAt),
	}
	json.Unmarshal([]byte(d.annotationTypes), &out.AnnotationTypes)
	json.Unmarshal([]byte(d.classes), &out.Classes)
	if out.AnnotationTypes == nil {
		out.AnnotationTypes = []string{}
	}
	if out.Classes == nil {
		out.Classes = []Class{}
	}
	return out
}

// imagePath is the image_path of the byte and annotation routes: the
// directory without its outer slashes, "/", the filename; each segment
// escaped, "/" kept, and "." and ".." escaped too so that no URL resolver
// removes them as dot segments.
func imagePath(dir, filename string) string {
	var parts []string
	for _, seg := range strings.Split(strings.Trim(dir, "/"), "/") {
		if seg != "" {
			parts = append(parts, escapeSegment(seg))
		}
	}
	return strings.Join(append(parts, escapeSegment(filename)), "/")
}

func escapeSegment(seg string) string {
	switch seg {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(seg)
}

// splitImagePath undoes imagePath on an escaped path: every segment but the
// last is the directory, the last the filename.
func splitImagePath(escaped string) (dir, filename string, err error) {
	i := strings.LastIndexByte(escaped, '/')
	rawDir, rawName := "", escaped
	if i >= 0 {
		rawDir, rawName = escaped[:i], escaped[i+1:]
	}
	filename, err = url.PathUnescape(rawName)
	if err != nil {
		return "", "", badRequest("bad image path %q", escaped)
	}
	d, err := url.PathUnescape(rawDir)
	if err != nil {
		return "", "", badRequest("bad image path %q", escaped)
	}
	return "/" + d, filename, nil
}

func (s *Server) imageJSON(base string, im *imageRow) Image {
	out := Image{
		ID: im.id, DatasetID: im.datasetID, Filename: im.filename, DirectoryPath: im.dir,
		Status: im.status, AnnotationCount: im.annotationCount, FileSize: im.fileSize,
		Width: im.width, Height: im.height, ContentType: im.contentType, Tags: []string{},
		IsArchived: im.isArchived, CreatedAt: fromMicros(im.createdAt),
	}
	if im.split.Valid {
		sp := im.split.String
		out.Split = &sp
	}
	json.Unmarshal([]byte(im.tags), &out.Tags)
	if out.Tags == nil {
		out.Tags = []string{}
	}
	out.ImageURL = base + apiPrefix + "images/" + url.PathEscape(im.datasetID) + "/" + imagePath(im.dir, im.filename)
	out.ThumbnailURL = out.ImageURL
	out.AnnotationURL = base + apiPrefix + "annotations/" + im.id + "/file"
	return out
}

// splitOf derives an image's split from the first segment of its directory.
func splitOf(dir string) *string {
	first, _, _ := strings.Cut(strings.TrimPrefix(dir, "/"), "/")
	switch first {
	case "train", "val", "test":
		return &first
	}
	return nil
}
