package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen is what a test server saw of one request.
type seen struct {
	method, uri, idem, key string
	body                   []byte
}

// recordingServer answers every request with answer and records it.
func recordingServer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int), mod ...func(*Options)) (*Client, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var all []seen
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		mu.Lock()
		all = append(all, seen{r.Method, r.RequestURI, r.Header.Get("Idempotency-Key"), r.Header.Get("X-Api-Key"), b})
		n := len(all)
		mu.Unlock()
		answer(w, r, n)
	}, mod...)
	return c, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), all...)
	}
}

const pendingExport = `{"data": {"id": "e1", "dataset_name": "ds", "name": "n", "format": "pictograph", "status": "pending",
	"include_images": false, "created_at": "2024-05-03T09:00:00Z"}}`

func TestCreateExportRequest(t *testing.T) {
	c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		w.WriteHeader(201)
		_, _ = io.WriteString(w, pendingExport)
	})
	e, err := c.CreateExport(context.Background(), CreateExportRequest{DatasetName: "road signs", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "e1" || e.Status != ExportPending || e.DownloadURL != "" || e.Done() {
		t.Errorf("got %+v, want pending e1 without a download URL", e)
	}
	s := got()[0]
	if s.method != "POST" || s.uri != "/api/v1/developer/exports/" || !idemKeyRE.MatchString(s.idem) {
		t.Errorf("got %s %s key %q, want POST /api/v1/developer/exports/ (trailing slash) with an Idempotency-Key", s.method, s.uri, s.idem)
	}
	if want := `{"dataset_name":"road signs","name":"n","format":"pictograph","include_images":false}`; string(s.body) != want {
		t.Errorf("got body %s, want %s (include_images sent even when false; format defaults to pictograph)", s.body, want)
	}
}

func TestCreateExportRefusedLocally(t *testing.T) {
	tests := []struct {
		name string
		req  CreateExportRequest
		want string
	}{
		{"all", CreateExportRequest{DatasetName: "ds", Name: "n", StatusFilter: "all"}, "EMPTY export"},
		{"in_progress", CreateExportRequest{DatasetName: "ds", Name: "n", StatusFilter: "in_progress"}, "EMPTY export"},
		{"unknown stage", CreateExportRequest{DatasetName: "ds", Name: "n", StatusFilter: "done"}, "want one of new, annotate, review, complete"},
		{"no dataset", CreateExportRequest{Name: "n"}, "empty dataset name"},
		{"no name", CreateExportRequest{DatasetName: "ds", Name: " "}, "empty export name"},
		{"long name", CreateExportRequest{DatasetName: "ds", Name: strings.Repeat("é", 101)}, "101 characters, the limit is 100"},
	}
	c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { w.WriteHeader(201) })
	for _, tt := range tests {
		_, err := c.CreateExport(context.Background(), tt.req)
		if !errors.Is(err, ErrValidation) || !strings.Contains(fmt.Sprint(err), tt.want) {
			t.Errorf("%s: got %v, want ErrValidation saying %q", tt.name, err, tt.want)
		}
	}
	if n := len(got()); n != 0 {
		t.Errorf("got %d requests, want none", n)
	}
	if _, err := c.CreateExport(context.Background(), CreateExportRequest{DatasetName: "ds", Name: strings.Repeat("é", 100)}); errors.Is(err, ErrValidation) {
		t.Errorf("a name of 100 characters: got %v, want it sent", err)
	}
}

func TestCreateExportDuplicate(t *testing.T) {
	tests := []struct {
		status       int
		body         string
		wantConflict bool
	}{
		{409, `{"detail": "conflict"}`, true},
		{400, `{"detail": "Export 'n' exists for this dataset"}`, true},
		{400, `{"error": {"code": "bad_request", "message": "An export named n already exists"}}`, true},
		{400, `{"detail": "Dataset 'ds' does not exist"}`, false},
	}
	for _, tt := range tests {
		c, _ := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
			w.WriteHeader(tt.status)
			_, _ = io.WriteString(w, tt.body)
		})
		_, err := c.CreateExport(context.Background(), CreateExportRequest{DatasetName: "ds", Name: "n"})
		if got := errors.Is(err, ErrConflict); got != tt.wantConflict {
			t.Errorf("%d %s: got ErrConflict %v (%v), want %v", tt.status, tt.body, got, err, tt.wantConflict)
		}
	}
}

func TestExportPaths(t *testing.T) {
	c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if strings.Contains(r.URL.Path, "/download") {
			_, _ = io.WriteString(w, `{"data": {"download_url": "https://storage.example/x.zip?sig=1"}}`)
			return
		}
		_, _ = io.WriteString(w, pendingExport)
	})
	ctx := context.Background()
	calls := []struct {
		call func() error
		want string
	}{
		{func() error { _, err := c.GetExport(ctx, "road signs", "a/b c"); return err },
			"GET /api/v1/developer/exports/a%2Fb%20c?dataset=road+signs"},
		{func() error { _, err := c.GetExport(ctx, "", "e1"); return err }, "GET /api/v1/developer/exports/e1"},
		{func() error { _, err := c.ExportDownloadURL(ctx, "ds", "n"); return err }, "GET /api/v1/developer/exports/n/download?dataset=ds"},
		{func() error { _, err := c.ExportDownloadURL(ctx, "", "e1"); return err }, "GET /api/v1/developer/exports/e1/download"},
		{func() error { return c.DeleteExport(ctx, "ds", "n") }, "DELETE /api/v1/developer/exports/n?dataset=ds"},
		{func() error { return c.DeleteExport(ctx, "", "e1") }, "DELETE /api/v1/developer/exports/e1"},
	}
	for i, tt := range calls {
		if err := tt.call(); err != nil {
			t.Errorf("%s: %v", tt.want, err)
			continue
		}
		s := got()[i]
		if g := s.method + " " + s.uri; g != tt.want {
			t.Errorf("got %s, want %s", g, tt.want)
		}
		if s.idem != "" || len(s.body) != 0 {
			t.Errorf("%s: got Idempotency-Key %q and body %q, want neither", tt.want, s.idem, s.body)
		}
	}
	if _, err := c.GetExport(ctx, "ds", ""); !errors.Is(err, ErrValidation) {
		t.Errorf("empty name: got %v, want ErrValidation", err)
	}
}

func TestExportDecoding(t *testing.T) {
	tests := []struct {
		name, body string
		want       Export
	}{
		{"nulls", `{"id": "e1", "name": "n", "status": "processing", "error_message": null, "file_size": null,
			"image_count": null, "class_filter": null, "status_filter": null, "expires_at": null, "download_url": null}`,
			Export{ID: "e1", Name: "n", Status: ExportProcessing}},
		{"python", `{"id": "e1", "status": "COMPLETED", "file_size": 1234.0, "image_count": "7", "annotation_count": 3,
			"include_images": "true", "class_filter": "car, sign", "created_at": "2024-05-03 09:00:00.5",
			"expires_at": 1715000000, "download_url": "/dl/e1.zip?sig=x"}`,
			Export{ID: "e1", Status: ExportCompleted, FileSize: 1234, ImageCount: 7, AnnotationCount: 3, IncludeImages: true,
				ClassFilter: []string{"car", "sign"}, CreatedAt: time.Date(2024, 5, 3, 9, 0, 0, 5e8, time.UTC),
				ExpiresAt: time.Unix(1715000000, 0).UTC(), DownloadURL: "/dl/e1.zip?sig=x"}},
		{"failed", `{"id": "e1", "status": "failed", "error_message": "boom", "image_count": 0}`,
			Export{ID: "e1", Status: ExportFailed, ErrorMessage: "boom"}},
	}
	for _, tt := range tests {
		var e Export
		if err := json.Unmarshal([]byte(tt.body), &e); err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if fmt.Sprintf("%+v", e) != fmt.Sprintf("%+v", tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, e, tt.want)
		}
	}
	var e Export
	if err := json.Unmarshal([]byte(`{"file_size": 1.5}`), &e); err == nil {
		t.Errorf("file_size 1.5: got %+v, want an error", e)
	}
}

func TestExportDownloadURL(t *testing.T) {
	tests := []struct {
		name, body, want string
		wantErr          error
	}{
		{"absolute", `{"data": {"download_url": "https://storage.example/x.zip?sig=1"}}`, "https://storage.example/x.zip?sig=1", nil},
		{"relative", `{"data": {"download_url": "/storage/x.zip?sig=1"}}`, "{base}/storage/x.zip?sig=1", nil},
		{"bare", `{"download_url": "https://storage.example/x.zip?sig=1"}`, "https://storage.example/x.zip?sig=1", nil},
		{"url key", `{"data": {"url": "https://storage.example/y.zip"}}`, "https://storage.example/y.zip", nil},
		{"missing", `{"data": {}}`, "", ErrServer},
		{"not http", `{"data": {"download_url": "file:///etc/passwd"}}`, "", ErrServer},
	}
	for _, tt := range tests {
		c, srv, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, tt.body) })
		got, err := c.ExportDownloadURL(context.Background(), "ds", "n")
		want := strings.ReplaceAll(tt.want, "{base}", srv.URL)
		if got != want || (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
			t.Errorf("%s: got %q, %v; want %q, %v", tt.name, got, err, want, tt.wantErr)
		}
	}
}

func TestOpenExportSendsTheKeyOnlyToAPIRoutes(t *testing.T) {
	var mu sync.Mutex
	keys := map[string]string{}
	h := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys[r.Host+r.URL.Path] = r.Header.Get("X-Api-Key")
		mu.Unlock()
		_, _ = io.WriteString(w, "PK-zip")
	}
	other := httptest.NewServer(http.HandlerFunc(h))
	defer other.Close()
	c, api, _ := newTestClient(t, h)
	apiHost := strings.TrimPrefix(api.URL, "http://")
	otherHost := strings.TrimPrefix(other.URL, "http://")
	tests := []struct {
		link, seenAs string
		wantKey      bool
	}{
		{other.URL + "/x/e1.zip?expires=1&signature=s", otherHost + "/x/e1.zip", false},
		{other.URL + APIPrefix + "/exports/e1/file", otherHost + APIPrefix + "/exports/e1/file", false},
		{"/x/e2.zip?expires=1&signature=s", apiHost + "/x/e2.zip", false},
		{api.URL + "/x/e3.zip", apiHost + "/x/e3.zip", false},
		{APIPrefix + "/exports/e4/file", apiHost + APIPrefix + "/exports/e4/file", true},
	}
	for _, tt := range tests {
		body, n, err := c.OpenExport(context.Background(), tt.link, 0, -1)
		if b := readAllBody(t, body, err); string(b) != "PK-zip" || n != 6 {
			t.Errorf("%s: got %q (%d bytes), want PK-zip", tt.link, b, n)
		}
		mu.Lock()
		key, ok := keys[tt.seenAs]
		mu.Unlock()
		if !ok || (key != "") != tt.wantKey {
			t.Errorf("%s: got key %q (seen %v), want key sent %v", tt.link, key, ok, tt.wantKey)
		}
	}
}

func readAllBody(t *testing.T, body io.ReadCloser, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAllExportsPaging(t *testing.T) {
	var mu sync.Mutex
	ids := []string{"e0", "e1", "e2", "e3", "e4", "e5", "e6"}
	c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		mu.Lock()
		defer mu.Unlock()
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		var items []string
		for i := off; i < min(off+3, len(ids)); i++ { // the server clamps every page to 3
			items = append(items, fmt.Sprintf(`{"id": %q, "status": "completed"}`, ids[i]))
		}
		fmt.Fprintf(w, `{"data": [%s], "pagination": {"limit": 3, "offset": %d, "total": %d, "has_more": %v}}`,
			strings.Join(items, ","), off, len(ids), off+len(items) < len(ids))
		if n == 1 { // newest first: an export made while paging shifts the list by one
			ids = append([]string{"new"}, ids...)
		}
	})
	all, err := c.AllExports(context.Background(), ExportQuery{DatasetName: "a&b", Status: ExportCompleted})
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []string
	for _, e := range all {
		gotIDs = append(gotIDs, e.ID)
	}
	if want := "e0 e1 e2 e3 e4 e5 e6"; strings.Join(gotIDs, " ") != want {
		t.Errorf("got %v, want %s once each", gotIDs, want)
	}
	first := got()[0]
	if want := "/api/v1/developer/exports/?dataset_name=a%26b&limit=100&status=completed"; first.uri != want {
		t.Errorf("got %s, want %s", first.uri, want)
	}
	page, p, err := c.ListExports(context.Background(), ExportQuery{}, 2, 4)
	if err != nil || len(page) != 3 || p == nil || p.Offset != 4 || !p.HasMore {
		t.Errorf("ListExports: got %d exports, %+v, %v; want a clamped page of 3 with has_more", len(page), p, err)
	}
}

func TestBulkDeleteExports(t *testing.T) {
	tests := []struct {
		name, body string
		want       BulkDeleteResult
	}{
		{"bare", `{"succeeded": ["e1"], "not_found": ["e9"], "count": 1}`, BulkDeleteResult{[]string{"e1"}, []string{"e9"}, 1}},
		{"wrapped", `{"data": {"succeeded": ["e1"], "not_found": [], "count": 1}}`, BulkDeleteResult{[]string{"e1"}, nil, 1}},
		{"objects, no count", `{"succeeded": [{"id": "e1"}, {"export_id": "e2"}], "not_found": null}`, BulkDeleteResult{[]string{"e1", "e2"}, nil, 2}},
	}
	for _, tt := range tests {
		c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { _, _ = io.WriteString(w, tt.body) })
		res, err := c.BulkDeleteExports(context.Background(), []string{"e1", "e9"})
		if err != nil || fmt.Sprint(*res) != fmt.Sprint(tt.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, res, err, tt.want)
		}
		s := got()[0]
		if s.method != "POST" || s.uri != "/api/v1/developer/exports/bulk-delete" || string(s.body) != `{"export_ids":["e1","e9"]}` || s.idem == "" {
			t.Errorf("%s: got %s %s %s key %q", tt.name, s.method, s.uri, s.body, s.idem)
		}
	}
	c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {})
	if res, err := c.BulkDeleteExports(context.Background(), nil); err != nil || res.Count != 0 || len(got()) != 0 {
		t.Errorf("no ids: got %+v, %v after %d requests; want nothing sent", res, err, len(got()))
	}
}

func TestWaitExport(t *testing.T) {
	for _, final := range []string{ExportCompleted, ExportFailed} {
		c, got := recordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			status := []string{ExportPending, ExportProcessing, final}[min(n, 3)-1]
			fmt.Fprintf(w, `{"data": {"id": "e1", "name": "n", "dataset_name": "ds", "status": %q, "error_message": %q}}`,
				status, map[bool]string{true: "disk full"}[status == ExportFailed])
		})
		start := time.Now()
		e, err := c.WaitExport(context.Background(), "ds", "n", time.Millisecond)
		if n := len(got()); n != 3 || e == nil || e.Status != final {
			t.Fatalf("%s: got %+v, %v after %d polls; want %s after 3", final, e, err, n, final)
		}
		if final == ExportFailed && (!errors.Is(err, ErrExportFailed) || !strings.Contains(err.Error(), "disk full")) {
			t.Errorf("got %v, want ErrExportFailed with the error message", err)
		}
		if final == ExportCompleted && err != nil {
			t.Errorf("got %v, want no error", err)
		}
		if d := time.Since(start); d < 2*exportPollFloor {
			t.Errorf("3 polls took %v, want at least 2 waits of %v", d, exportPollFloor)
		}
	}
	c, _ := recordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		_, _ = io.WriteString(w, `{"data": {"id": "e1", "status": "pending"}}`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.WaitExport(ctx, "", "e1", time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled: got %v, want the context's error", err)
	}
}
