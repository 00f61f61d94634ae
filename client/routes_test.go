package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAPIHeaders(t *testing.T) {
	var hdr http.Header
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Clone()
		writeJSON(w, 200, okDataset)
	}, func(o *Options) { o.UserAgent = "pictofs/1.2.3" })
	if _, err := c.GetDataset(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]string{"X-Api-Key": testKey, "User-Agent": "pictofs/1.2.3", "Accept": "application/json", "Idempotency-Key": "", "Authorization": ""} {
		if got := hdr.Get(h); got != want {
			t.Errorf("got %s %q, want %q", h, got, want)
		}
	}
}

func TestMe(t *testing.T) {
	tests := []struct{ name, body string }{
		{"organization", `{"organization": {"id": "o1", "name": "Acme", "plan": "free"}}`},
		{"data", `{"data": {"id": "o1", "name": "Acme", "plan": "free"}}`},
		{"data.organization", `{"data": {"organization": {"id": "o1", "name": "Acme", "plan": "free"}, "role": "owner"}}`},
		{"bare", `{"id": "o1", "name": "Acme", "plan": "free"}`},
	}
	for _, tt := range tests {
		c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/developer/organizations/me" {
				t.Errorf("got %s, want /organizations/me", r.URL.Path)
			}
			_, _ = io.WriteString(w, tt.body)
		})
		org, err := c.Me(context.Background())
		if err != nil || org.ID != "o1" || org.Name != "Acme" || org.Plan != "free" {
			t.Errorf("%s: got %+v, %v; want o1 Acme free", tt.name, org, err)
		}
	}
}

func TestDatasetWrites(t *testing.T) {
	type call struct {
		method, uri, idem string
		body              map[string]any
	}
	var mu sync.Mutex
	var calls []call
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		calls = append(calls, call{r.Method, r.RequestURI, r.Header.Get("Idempotency-Key"), body})
		mu.Unlock()
		switch {
		case r.Method == http.MethodDelete && strings.HasSuffix(r.URL.Path, "/empty"):
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodDelete:
			writeJSON(w, 200, map[string]any{"data": map[string]any{"id": "d1", "name": "old", "deleted": true, "images_deleted": 0}})
		default:
			writeJSON(w, 200, okDataset)
		}
	})
	ctx := context.Background()
	if _, err := c.CreateDataset(ctx, CreateDatasetRequest{Name: "new set", Classes: []Class{{Name: "car"}}}); err != nil {
		t.Fatal(err)
	}
	newName := "renamed"
	if _, err := c.UpdateDataset(ctx, "old/x", UpdateDatasetRequest{NewName: &newName}); err != nil {
		t.Fatal(err)
	}
	res, err := c.DeleteDataset(ctx, "old")
	if err != nil || !res.Deleted || res.ID != "d1" {
		t.Errorf("delete: got %+v, %v; want d1 deleted", res, err)
	}
	res, err = c.DeleteDataset(ctx, "empty")
	if err != nil || !res.Deleted || res.Name != "empty" {
		t.Errorf("delete with 204: got %+v, %v; want deleted", res, err)
	}
	want := []struct{ method, uri string }{
		{"POST", "/api/v1/developer/datasets/"},
		{"PATCH", "/api/v1/developer/datasets/old%2Fx"},
		{"DELETE", "/api/v1/developer/datasets/old"},
		{"DELETE", "/api/v1/developer/datasets/empty"},
	}
	for i, w := range want {
		if calls[i].method != w.method || calls[i].uri != w.uri {
			t.Errorf("call %d: got %s %s, want %s %s", i, calls[i].method, calls[i].uri, w.method, w.uri)
		}
		if wantIdem := w.method != "DELETE"; idemKeyRE.MatchString(calls[i].idem) != wantIdem {
			t.Errorf("call %d: got Idempotency-Key %q, want one: %v", i, calls[i].idem, wantIdem)
		}
	}
	if calls[0].body["name"] != "new set" || calls[1].body["new_name"] != "renamed" || len(calls[1].body) != 1 {
		t.Errorf("got bodies %v and %v, want name and only new_name", calls[0].body, calls[1].body)
	}
}

func TestDownloadListing(t *testing.T) {
	var q url.Values
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		q = r.URL.Query()
		if r.URL.Path != "/api/v1/developer/datasets/ds/download" {
			t.Errorf("got %s, want /datasets/ds/download", r.URL.Path)
		}
		_, _ = io.WriteString(w, `{"data": {"id": "d1", "total_items": 2, "items": [
			{"id": "i1", "filename": "a.jpg", "file_size": 10, "annotation_count": 1, "image_url": "https://s/a?sig=1",
			 "annotation_url": "/api/v1/developer/annotations/i1/file"},
			{"id": "i2", "filename": "b.jpg", "file_size": 20, "annotation_count": 0, "image_url": "https://s/b?sig=2"}]}}`)
	})
	l, err := c.DownloadListing(context.Background(), "ds", DownloadOptions{StatusFilter: "complete"})
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("mode") != "full" || q.Get("limit") != "10000" || q.Get("status_filter") != "complete" {
		t.Errorf("got query %v, want mode=full limit=10000 status_filter=complete", q)
	}
	if l.TotalItems != 2 || len(l.Items) != 2 || l.Items[1].AnnotationURL != "" || l.Items[0].FileSize != 10 {
		t.Errorf("got %+v, want two items, the second without annotation_url", l)
	}
	if _, err := c.DownloadListing(context.Background(), "ds", DownloadOptions{Mode: "images_only", Limit: 50}); err != nil {
		t.Fatal(err)
	}
	if q.Get("mode") != "images_only" || q.Get("limit") != "50" || q.Has("status_filter") {
		t.Errorf("got query %v, want mode=images_only limit=50 and no status_filter", q)
	}
}

func TestListImagesQuery(t *testing.T) {
	var raw string
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		raw = r.URL.RawQuery
		writeJSON(w, 200, map[string]any{"data": items(0, 2), "pagination": map[string]any{"limit": 2, "offset": 4, "total": 9, "has_more": true}})
	})
	imgs, pg, err := c.ListImages(context.Background(), ImageQuery{Dataset: "a&b", DirectoryPath: "/train", Limit: 2, Offset: 4})
	if err != nil {
		t.Fatal(err)
	}
	if want := "dataset=a%26b&directory_path=%2Ftrain&limit=2&offset=4"; raw != want {
		t.Errorf("got query %q, want %q", raw, want)
	}
	if len(imgs) != 2 || pg == nil || !pg.HasMore || pg.Total != 9 {
		t.Errorf("got %d images, pagination %+v; want 2 and has_more", len(imgs), pg)
	}
}

func TestUploadImage(t *testing.T) {
	var mu sync.Mutex
	var storageHdr http.Header
	var stored []byte
	st := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		storageHdr = r.Header.Clone()
		stored, _ = io.ReadAll(r.Body)
		if r.Method != http.MethodPut {
			t.Errorf("got %s at storage, want PUT", r.Method)
		}
	}))
	defer st.Close()
	var reg map[string]any
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		if !idemKeyRE.MatchString(r.Header.Get("Idempotency-Key")) {
			t.Errorf("%s: got Idempotency-Key %q, want 32 hex", r.URL.Path, r.Header.Get("Idempotency-Key"))
		}
		switch r.URL.Path {
		case "/api/v1/developer/images/upload-url":
			writeJSON(w, 200, map[string]any{"data": map[string]any{"filename": body["filename"], "directory_path": body["directory_path"],
				"upload_url": st.URL + "/up/x?sig=s", "expires_in_minutes": 15}})
		case "/api/v1/developer/images/register":
			reg = body
			writeJSON(w, 201, map[string]any{"data": map[string]any{"id": "i1", "filename": "a.png", "directory_path": "/val", "created_at": "2024-05-01 12:00:00.123456"}})
		default:
			t.Errorf("got %s", r.URL.Path)
		}
	})
	img, err := c.UploadImage(context.Background(), "ds", "/val", "a.png", "image/png", []byte("PNGDATA"), 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != "i1" || !img.CreatedAt.Equal(time.Date(2024, 5, 1, 12, 0, 0, 123456000, time.UTC)) {
		t.Errorf("got %+v, want i1 created 2024-05-01 12:00:00.123456 UTC", img)
	}
	if string(stored) != "PNGDATA" || storageHdr.Get("Content-Type") != "image/png" || storageHdr.Get("X-Api-Key") != "" {
		t.Errorf("got stored %q, type %q, key %q; want PNGDATA, image/png, no key", stored, storageHdr.Get("Content-Type"), storageHdr.Get("X-Api-Key"))
	}
	if reg["file_size"] != 7.0 || reg["width"] != 4.0 || reg["height"] != 3.0 || reg["directory_path"] != "/val" || reg["dataset"] != "ds" {
		t.Errorf("got register body %v, want file_size 7, 4x3, /val in ds", reg)
	}
	if c.StorageRequests() != 1 || c.APIRequests() != 2 {
		t.Errorf("got %d storage and %d API requests, want 1 and 2", c.StorageRequests(), c.APIRequests())
	}
}

func TestRegisterDuplicate(t *testing.T) {
	for _, status := range []int{400, 409} {
		c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, status, map[string]any{"detail": "Image a.png already exists in /val"})
		})
		_, err := c.RegisterImage(context.Background(), RegisterImageRequest{Dataset: "ds", Filename: "a.png"})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("status %d: got %v, want ErrConflict", status, err)
		}
	}
}

func TestSaveAnnotationsAt(t *testing.T) {
	var method, uri, idem string
	var body []byte
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		method, uri, idem = r.Method, r.RequestURI, r.Header.Get("Idempotency-Key")
		body, _ = io.ReadAll(r.Body)
		_, _ = io.WriteString(w, `{"success": true, "image_id": "i1", "previous_count": 2, "new_count": 1, "status": "review"}`)
	})
	anns := json.RawMessage(`[{"id":"a1","name":"car","type":"bbox","bounding_box":{"x":1,"y":2,"w":3,"h":4}}]`)
	res, err := c.SaveAnnotationsAt(context.Background(), "road signs", "/val/a b", "0001.jpg", anns)
	if err != nil {
		t.Fatal(err)
	}
	if want := (SaveResult{Success: true, ImageID: "i1", PreviousCount: 2, NewCount: 1, Status: "review"}); *res != want {
		t.Errorf("got %+v, want %+v", *res, want)
	}
	if method != "POST" || uri != "/api/v1/developer/annotations/road%20signs/val/a%20b/0001.jpg" || !idemKeyRE.MatchString(idem) {
		t.Errorf("got %s %s key %q, want POST /annotations/road%%20signs/val/a%%20b/0001.jpg with a key", method, uri, idem)
	}
	if want := `{"annotations":` + string(anns) + `}`; string(body) != want {
		t.Errorf("got body %s, want exactly %s", body, want)
	}
	if _, err := c.SaveAnnotationsAt(context.Background(), "ds", "/", "a.png", nil); err != nil || string(body) != `{"annotations":[]}` {
		t.Errorf("nil annotations: got body %s, %v; want {\"annotations\":[]}", body, err)
	}
	for _, bad := range []string{`{"annotations": []}`, `"x"`, `[1,`} {
		n := c.APIRequests()
		if _, err := c.SaveAnnotationsAt(context.Background(), "ds", "/", "a.png", json.RawMessage(bad)); !errors.Is(err, ErrValidation) || c.APIRequests() != n {
			t.Errorf("annotations %s: got %v after %d requests, want ErrValidation and no request", bad, err, c.APIRequests()-n)
		}
	}
}

func TestModelDecoding(t *testing.T) {
	var d Dataset
	err := json.Unmarshal([]byte(`{"id": "d1", "name": "ds", "description": null, "classes": ["car", {"name": "sign", "color": "#f00"}],
		"created_at": "2024-05-01T12:00:00+00:00", "updated_at": "2024-05-02T08:30:00.5",
		"images": [{"id": "i1", "split": null, "created_at": "2024-05-03T00:00:00Z"}]}`), &d)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Classes) != 2 || d.Classes[0].Name != "car" || d.Classes[1].Color != "#f00" {
		t.Errorf("got classes %+v, want car and sign", d.Classes)
	}
	if !d.CreatedAt.Equal(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)) || !d.UpdatedAt.Equal(time.Date(2024, 5, 2, 8, 30, 0, 5e8, time.UTC)) {
		t.Errorf("got created %v, updated %v", d.CreatedAt, d.UpdatedAt)
	}
	if len(d.Images) != 1 || d.Images[0].Split != nil || d.Images[0].CreatedAt.Year() != 2024 {
		t.Errorf("got images %+v", d.Images)
	}
	var img Image
	if err := json.Unmarshal([]byte(`{"id": "i1", "created_at": "yesterday"}`), &img); err != nil || img.ID != "i1" || !img.CreatedAt.IsZero() {
		t.Errorf("got %+v, %v; want i1 with a zero time", img, err)
	}
}
