package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestBulkUploadURLs(t *testing.T) {
	c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		var req struct {
			Images []BulkUploadItem `json:"images"`
		}
		_ = json.Unmarshal(seenBody(r), &req)
		var urls []string
		for _, im := range req.Images {
			urls = append(urls, fmt.Sprintf(`{"filename": %q, "directory_path": %q, "upload_url": "https://st/u/%s?sig=1"}`, im.Filename, im.DirectoryPath, im.Filename))
		}
		if strings.Contains(r.URL.RawQuery, "short") {
			urls = urls[:1]
		}
		fmt.Fprintf(w, `{"data": {"upload_urls": [%s], "expires_in_minutes": 60}}`, strings.Join(urls, ","))
	})
	ctx := context.Background()
	res, err := c.BulkUploadURLs(ctx, "ds", []BulkUploadItem{{Filename: "a.png", ContentType: "image/png"}, {Filename: "b.jpg", DirectoryPath: "/x", ContentType: "image/jpeg"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.UploadURLs) != 2 || res.UploadURLs[1].UploadURL != "https://st/u/b.jpg?sig=1" || res.ExpiresInMinutes != 60 {
		t.Errorf("got %+v, want 2 URLs in request order", res)
	}
	s := got()[0]
	want := `{"dataset":"ds","images":[{"filename":"a.png","directory_path":"/","content_type":"image/png"},{"filename":"b.jpg","directory_path":"/x","content_type":"image/jpeg"}]}`
	if s.method != "POST" || s.uri != "/api/v1/developer/images/bulk-upload-url" || string(s.body) != want || s.idem == "" {
		t.Errorf("got %s %s %s key %q; want POST /images/bulk-upload-url %s with a key", s.method, s.uri, s.body, s.idem, want)
	}
	n := len(got())
	tooMany := make([]BulkUploadItem, MaxBulkUpload+1)
	for i := range tooMany {
		tooMany[i] = BulkUploadItem{Filename: fmt.Sprintf("%d.png", i)}
	}
	for name, items := range map[string][]BulkUploadItem{"501 images": tooMany, "none": nil, "no filename": {{ContentType: "image/png"}}} {
		if _, err := c.BulkUploadURLs(ctx, "ds", items); !errors.Is(err, ErrValidation) {
			t.Errorf("%s: got %v, want ErrValidation", name, err)
		}
	}
	if _, err := c.BulkUploadURLs(ctx, "ds", tooMany[:MaxBulkUpload]); err != nil {
		t.Errorf("500 images: got %v, want them sent", err)
	}
	if m := len(got()) - n; m != 1 {
		t.Errorf("got %d requests, want only the one of 500 images", m)
	}
}

// seenBody reads a request body in a handler (the recorder read it first).
func seenBody(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	return b
}

func TestBulkRegisterImages(t *testing.T) {
	tests := []struct {
		name, body string
		wantCount  int
		wantFailed []BulkRegisterFailure
	}{
		{"string error", `{"data": {"succeeded": [{"id": "i1"}], "failed": [{"filename": "b.png", "directory_path": "/", "error": "already exists"}], "count": 1}}`,
			1, []BulkRegisterFailure{{"b.png", "/", "already exists"}}},
		{"object error, no count", `{"data": {"succeeded": [{"id": "i1"}, {"id": "i2"}], "failed": [{"filename": "c.png", "error": {"code": "conflict", "message": "duplicate"}}]}}`,
			2, []BulkRegisterFailure{{"c.png", "", "duplicate"}}},
	}
	for _, tt := range tests {
		c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { _, _ = io.WriteString(w, tt.body) })
		res, err := c.BulkRegisterImages(context.Background(), "ds", []BulkRegisterItem{{Filename: "a.png", FileSize: 3, ContentType: "image/png", Width: 1, Height: 2}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Count != tt.wantCount || fmt.Sprint(res.Failed) != fmt.Sprint(tt.wantFailed) || res.Succeeded[0].ID != "i1" {
			t.Errorf("%s: got %+v, want count %d and failed %v", tt.name, res, tt.wantCount, tt.wantFailed)
		}
		s := got()[0]
		want := `{"dataset":"ds","images":[{"filename":"a.png","directory_path":"/","file_size":3,"content_type":"image/png","width":1,"height":2}]}`
		if s.uri != "/api/v1/developer/images/bulk-register" || string(s.body) != want || s.idem == "" {
			t.Errorf("%s: got %s %s key %q; want /images/bulk-register %s", tt.name, s.uri, s.body, s.idem, want)
		}
	}
}

func TestBulkSaveAnnotations(t *testing.T) {
	c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		_, _ = io.WriteString(w, `{"saved": ["i1", {"image_id": "i2", "previous_count": 1, "new_count": 0, "status": "new"}],
			"failed": [{"image_id": "i3", "error": "class 'car' is not on the dataset"}]}`)
	})
	ctx := context.Background()
	res, err := c.BulkSaveAnnotations(ctx, []AnnotationSave{
		{ImageID: "i1", Annotations: json.RawMessage(`[{"name":"x","type":"keypoint","keypoint":{"x":1,"y":2}}]`)},
		{ImageID: "i2"}, {ImageID: "i3", Annotations: json.RawMessage(`[]`)}})
	if err != nil {
		t.Fatal(err)
	}
	want := BulkSaveResult{Saved: []SaveResult{{Success: true, ImageID: "i1"}, {ImageID: "i2", PreviousCount: 1, Status: "new"}},
		Failed: []BulkSaveFailure{{"i3", "class 'car' is not on the dataset"}}}
	if fmt.Sprint(*res) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", *res, want)
	}
	s := got()[0]
	wantBody := `{"saves":[{"image_id":"i1","annotations":[{"name":"x","type":"keypoint","keypoint":{"x":1,"y":2}}]},{"image_id":"i2","annotations":[]},{"image_id":"i3","annotations":[]}]}`
	if s.method != "POST" || s.uri != "/api/v1/developer/annotations/bulk" || string(s.body) != wantBody || s.idem == "" {
		t.Errorf("got %s %s %s key %q; want POST /annotations/bulk %s", s.method, s.uri, s.body, s.idem, wantBody)
	}
	n := len(got())
	tooMany := make([]AnnotationSave, MaxBulkSave+1)
	for i := range tooMany {
		tooMany[i].ImageID = fmt.Sprint(i)
	}
	for name, saves := range map[string][]AnnotationSave{"201 saves": tooMany, "no image id": {{}}, "not a list": {{ImageID: "i", Annotations: json.RawMessage(`{}`)}}} {
		if _, err := c.BulkSaveAnnotations(ctx, saves); !errors.Is(err, ErrValidation) {
			t.Errorf("%s: got %v, want ErrValidation", name, err)
		}
	}
	if m := len(got()) - n; m != 0 {
		t.Errorf("got %d requests, want none", m)
	}
}

func TestDeleteImage(t *testing.T) {
	tests := []struct {
		permanent bool
		status    int
		body      string
		wantURI   string
		wantErr   error
	}{
		{false, 200, `{"success": true, "message": "archived"}`, "/api/v1/developer/images/my%20ds/train/a%3Fb.png", nil},
		{true, 200, `{"data": {"success": true}}`, "/api/v1/developer/images/my%20ds/train/a%3Fb.png?permanent=true", nil},
		{false, 204, ``, "/api/v1/developer/images/my%20ds/train/a%3Fb.png", nil},
		{false, 200, `{"success": false, "message": "locked"}`, "/api/v1/developer/images/my%20ds/train/a%3Fb.png", ErrServer},
		{false, 403, `{"detail": "admin or owner only"}`, "/api/v1/developer/images/my%20ds/train/a%3Fb.png", ErrForbidden},
	}
	for _, tt := range tests {
		c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
			w.WriteHeader(tt.status)
			_, _ = io.WriteString(w, tt.body)
		})
		err := c.DeleteImage(context.Background(), "my ds", "/train/", "a?b.png", tt.permanent)
		if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
			t.Errorf("%s: got %v, want %v", tt.body, err, tt.wantErr)
		}
		if s := got()[0]; s.method != "DELETE" || s.uri != tt.wantURI || s.idem != "" {
			t.Errorf("got %s %s key %q, want DELETE %s without a key", s.method, s.uri, s.idem, tt.wantURI)
		}
	}
}

func TestDeleteAnnotations(t *testing.T) {
	c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		_, _ = io.WriteString(w, `{"image_id": "i1", "deleted_count": 3}`)
	})
	res, err := c.DeleteAnnotations(context.Background(), "ds", "/", "a.png")
	if err != nil || *res != (DeleteAnnotationsResult{ImageID: "i1", DeletedCount: 3}) {
		t.Errorf("got %+v, %v; want i1 and 3", res, err)
	}
	if s := got()[0]; s.method != "DELETE" || s.uri != "/api/v1/developer/annotations/ds/a.png" {
		t.Errorf("got %s %s, want DELETE /annotations/ds/a.png", s.method, s.uri)
	}
}
