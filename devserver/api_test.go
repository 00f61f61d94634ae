package devserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDatasetListPagingWithClampedCap(t *testing.T) {
	s := startServer(t, Options{DatasetListCap: 3})
	ctx := context.Background()
	for i := range 7 {
		if _, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: fmt.Sprintf("ds-%d", i), Classes: testClasses}); err != nil {
			t.Fatal(err)
		}
	}
	a := newAPI(t, s, testMemberKey)
	tests := []struct {
		path            string
		wantN           int
		wantLimit       int
		wantHasMore     bool
		wantFirst, desc string
	}{
		{"/datasets/?limit=100", 3, 3, true, "ds-0", "clamped to the cap"},
		{"/datasets?limit=100&offset=3", 3, 3, true, "ds-3", "without trailing slash"},
		{"/datasets/?limit=100&offset=6", 1, 3, false, "ds-6", "last page"},
		{"/datasets/?limit=2&offset=1", 2, 2, true, "ds-1", "under the cap"},
		{"/datasets/?offset=50", 0, 3, false, "", "past the end"},
	}
	for _, tt := range tests {
		r := a.do(http.MethodGet, tt.path, nil)
		mustStatus(t, tt.path, r, http.StatusOK)
		var env datasetsEnvelope
		r.decode(t, &env)
		if env.Pagination == nil {
			t.Fatalf("%s: no pagination object", tt.desc)
		}
		if got := len(env.Data); got != tt.wantN {
			t.Errorf("%s: got %d datasets, want %d", tt.desc, got, tt.wantN)
		}
		p := *env.Pagination
		if p.Limit != tt.wantLimit || p.Total != 7 || p.HasMore != tt.wantHasMore {
			t.Errorf("%s: got pagination %+v, want limit %d total 7 has_more %v", tt.desc, p, tt.wantLimit, tt.wantHasMore)
		}
		if tt.wantN > 0 && env.Data[0].Name != tt.wantFirst {
			t.Errorf("%s: got first %q, want %q", tt.desc, env.Data[0].Name, tt.wantFirst)
		}
	}
}

func TestImagePagingCaps(t *testing.T) {
	s := startServer(t, Options{ImagesLimitCap: 4, ImageListCap: 3, DownloadCap: 5})
	ctx := context.Background()
	ds, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: "caps", Classes: testClasses})
	if err != nil {
		t.Fatal(err)
	}
	addImages(t, s, s.DefaultOrg(), "caps", "/b", 4, false)
	addImages(t, s, s.DefaultOrg(), "caps", "/a", 3, true)
	a := newAPI(t, s, testMemberKey)

	// include_images: no pagination object, clamped pages, stable order.
	var embedded []Image
	for off := 0; ; {
		r := a.do(http.MethodGet, fmt.Sprintf("/datasets/%s?include_images=true&images_limit=1000&images_offset=%d", ds.ID, off), nil)
		mustStatus(t, "include_images", r, http.StatusOK)
		var raw map[string]json.RawMessage
		r.decode(t, &raw)
		if _, ok := raw["pagination"]; ok {
			t.Errorf("include_images: got a pagination object, want none")
		}
		var env struct {
			Data struct {
				ImageCount int     `json:"image_count"`
				Images     []Image `json:"images"`
			} `json:"data"`
		}
		r.decode(t, &env)
		if env.Data.Images == nil {
			t.Fatalf("include_images at offset %d: no images key in %s", off, r.body)
		}
		if len(env.Data.Images) > 4 {
			t.Errorf("include_images: got %d images, want at most the cap 4", len(env.Data.Images))
		}
		if len(env.Data.Images) == 0 {
			break
		}
		embedded = append(embedded, env.Data.Images...)
		off += len(env.Data.Images)
	}
	// /images/: clamped with has_more.
	var listed []Image
	for off := 0; ; {
		r := a.do(http.MethodGet, fmt.Sprintf("/images/?dataset=caps&limit=500&offset=%d", off), nil)
		mustStatus(t, "/images/", r, http.StatusOK)
		var env imagesEnvelope
		r.decode(t, &env)
		if env.Pagination == nil {
			t.Fatal("/images/: no pagination object")
		}
		listed = append(listed, env.Data...)
		off += len(env.Data)
		if want := off < 7; env.Pagination.HasMore != want {
			t.Errorf("/images/ at %d: got has_more %v, want %v", off, env.Pagination.HasMore, want)
		}
		if !env.Pagination.HasMore {
			break
		}
		if len(env.Data) != 3 {
			t.Errorf("/images/: got a page of %d, want the cap 3", len(env.Data))
		}
	}
	// Download listing: truncated at its cap, total_items is the full count.
	r := a.do(http.MethodGet, "/datasets/caps/download", nil)
	mustStatus(t, "download", r, http.StatusOK)
	var lst listingEnvelope
	r.decode(t, &lst)
	if len(lst.Data.Items) != 5 || lst.Data.TotalItems != 7 || lst.Data.ID != ds.ID {
		t.Errorf("download: got %d items, total_items %d, id %s; want 5, 7, %s", len(lst.Data.Items), lst.Data.TotalItems, lst.Data.ID, ds.ID)
	}
	want := []string{"/a/000.png", "/a/001.png", "/a/002.png", "/b/000.png", "/b/001.png", "/b/002.png", "/b/003.png"}
	for name, got := range map[string][]Image{"include_images": embedded, "/images/": listed} {
		var paths []string
		for _, im := range got {
			paths = append(paths, im.DirectoryPath+"/"+im.Filename)
		}
		if strings.Join(paths, " ") != strings.Join(want, " ") {
			t.Errorf("%s order: got %v, want %v", name, paths, want)
		}
	}
	for i, it := range lst.Data.Items {
		if it.ID != listed[i].ID {
			t.Errorf("download item %d: got id %s, want %s (same order as /images/)", i, it.ID, listed[i].ID)
		}
		if (it.AnnotationURL != "") != (it.AnnotationCount > 0) {
			t.Errorf("download item %d: annotation_count %d with annotation_url %q", i, it.AnnotationCount, it.AnnotationURL)
		}
	}
}

func TestImageObjectFields(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	if _, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: "f", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	addImages(t, s, s.DefaultOrg(), "f", "/val", 1, true)
	a := newAPI(t, s, testMemberKey)
	r := a.do(http.MethodGet, "/images/?dataset=f", nil)
	mustStatus(t, "/images/", r, http.StatusOK)
	var env imagesEnvelope
	r.decode(t, &env)
	im := env.Data[0]
	if !strings.HasPrefix(im.ImageURL, s.APIURL()+"/api/v1/developer/images/") || !strings.HasSuffix(im.ImageURL, "/val/000.png") {
		t.Errorf("image_url: got %q", im.ImageURL)
	}
	if want := s.APIURL() + "/api/v1/developer/annotations/" + im.ID + "/file"; im.AnnotationURL != want {
		t.Errorf("annotation_url: got %q, want %q", im.AnnotationURL, want)
	}
	if im.Split == nil || *im.Split != "val" || im.Status != "complete" || im.CreatedAt.IsZero() || im.Tags == nil {
		t.Errorf("image: got split %v status %q created_at %v tags %v", im.Split, im.Status, im.CreatedAt, im.Tags)
	}
	b := a.do(http.MethodGet, im.ImageURL, nil)
	mustStatus(t, "image_url", b, http.StatusOK)
	if int64(len(b.body)) != im.FileSize {
		t.Errorf("image_url: got %d bytes, want %d", len(b.body), im.FileSize)
	}
}

func TestAnotherOrganizationGets404(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	ds, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: "mine", Classes: testClasses})
	if err != nil {
		t.Fatal(err)
	}
	ims := addImages(t, s, s.DefaultOrg(), "mine", "/", 1, true)
	other, err := s.CreateOrganization(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.CreateKey(ctx, other, "owner")
	if err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s, key)
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/datasets/mine"},
		{http.MethodGet, "/datasets/" + ds.ID},
		{http.MethodGet, "/datasets/mine/download"},
		{http.MethodPatch, "/datasets/mine"},
		{http.MethodDelete, "/datasets/" + ds.ID},
		{http.MethodGet, "/images/?dataset=mine"},
		{http.MethodGet, "/images/mine/000.png"},
		{http.MethodGet, "/annotations/" + ims[0].ID + "/file"},
		{http.MethodGet, "/annotations/mine/000.png"},
	} {
		var body any
		if tt.method == http.MethodPatch {
			body = map[string]string{"description": "x"}
		}
		r := a.do(tt.method, tt.path, body)
		if r.status != http.StatusNotFound {
			t.Errorf("%s %s from another organization: got %d, want 404", tt.method, tt.path, r.status)
			continue
		}
		checkErrorBody(t, tt.path, r, "not_found")
	}
	r := a.do(http.MethodGet, "/datasets/", nil)
	var env datasetsEnvelope
	r.decode(t, &env)
	if len(env.Data) != 0 {
		t.Errorf("other organization's list: got %d datasets, want 0", len(env.Data))
	}
}

func TestErrorStatuses(t *testing.T) {
	s := startServer(t, Options{MaxDatasetsPerOrg: 3})
	ctx := context.Background()
	org := s.DefaultOrg()
	keys := map[string]string{"admin": testAdminKey, "member": testMemberKey}
	for _, role := range []string{"owner", "annotator", "viewer"} {
		k, err := s.CreateKey(ctx, org, role)
		if err != nil {
			t.Fatal(err)
		}
		keys[role] = k
	}
	if _, err := s.CreateDataset(ctx, org, CreateDatasetRequest{Name: "taken", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDataset(ctx, org, CreateDatasetRequest{Name: "other", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	addImages(t, s, org, "other", "/x", 2, false)
	tests := []struct {
		desc, role, method, path string
		body                     any
		want                     int
		code                     string
	}{
		{"no key", "", http.MethodGet, "/datasets/", nil, 401, "unauthorized"},
		{"bad key", "bogus", http.MethodGet, "/datasets/", nil, 401, "unauthorized"},
		{"duplicate name", "member", http.MethodPost, "/datasets/", map[string]string{"name": "taken"}, 409, "conflict"},
		{"viewer creates", "viewer", http.MethodPost, "/datasets/", map[string]string{"name": "v"}, 403, "forbidden"},
		{"annotator creates", "annotator", http.MethodPost, "/datasets/", map[string]string{"name": "a"}, 403, "forbidden"},
		{"viewer updates", "viewer", http.MethodPatch, "/datasets/taken", map[string]string{"description": "d"}, 403, "forbidden"},
		{"member deletes", "member", http.MethodDelete, "/datasets/taken", nil, 403, "forbidden"},
		{"rename onto a taken name", "member", http.MethodPatch, "/datasets/taken", map[string]string{"new_name": "other"}, 409, "conflict"},
		{"unknown dataset", "member", http.MethodGet, "/datasets/nope", nil, 404, "not_found"},
		{"unknown route", "member", http.MethodGet, "/nope", nil, 404, "not_found"},
		{"wrong method", "member", http.MethodPut, "/datasets/", nil, 405, "method_not_allowed"},
		{"malformed JSON", "member", http.MethodPost, "/datasets/", `{"name": `, 400, "bad_request"},
		{"wrong JSON type", "member", http.MethodPost, "/datasets/", `{"name": 5}`, 422, "validation_error"},
		{"missing name", "member", http.MethodPost, "/datasets/", `{}`, 422, "validation_error"},
		{"name with slash", "member", http.MethodPost, "/datasets/", map[string]string{"name": "a/b"}, 400, "bad_request"},
		{"name with NUL", "member", http.MethodPost, "/datasets/", map[string]string{"name": "a\x00b"}, 400, "bad_request"},
		{"rename with slash", "member", http.MethodPatch, "/datasets/taken", map[string]string{"new_name": "x/y"}, 400, "bad_request"},
		{"unknown status_filter", "member", http.MethodGet, "/datasets/taken/download?status_filter=done", nil, 400, "bad_request"},
		{"unknown mode", "member", http.MethodGet, "/datasets/taken/download?mode=zip", nil, 400, "bad_request"},
		{"bad limit", "member", http.MethodGet, "/datasets/?limit=ten", nil, 422, "validation_error"},
		{"unknown /images/ key", "member", http.MethodGet, "/images/?dataset=taken&page=2", nil, 400, "bad_request"},
		{"unknown /images/ status", "member", http.MethodGet, "/images/?dataset=taken&status=done", nil, 400, "bad_request"},
		{"/images/ without dataset", "member", http.MethodGet, "/images/", nil, 422, "validation_error"},
		{"plan's dataset cap", "member", http.MethodPost, "/datasets/", map[string]string{"name": "third"}, 201, ""},
		{"over the plan's dataset cap", "member", http.MethodPost, "/datasets/", map[string]string{"name": "fourth"}, 402, "insufficient_credits"},
		{"admin deletes", "admin", http.MethodDelete, "/datasets/other", nil, 200, ""},
		{"owner deletes", "owner", http.MethodDelete, "/datasets/third", nil, 200, ""},
	}
	for _, tt := range tests {
		key := keys[tt.role]
		if tt.role == "bogus" {
			key = "pk_live_bogus"
		}
		r := newAPI(t, s, key).do(tt.method, tt.path, tt.body)
		if r.status != tt.want {
			t.Errorf("%s: got %d (%s), want %d", tt.desc, r.status, r.body, tt.want)
			continue
		}
		if tt.code != "" {
			checkErrorBody(t, tt.desc, r, tt.code)
		}
	}
	// The delete reported its images, and they are gone.
	a := newAPI(t, s, testAdminKey)
	if _, err := s.CreateDataset(ctx, org, CreateDatasetRequest{Name: "del", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	addImages(t, s, org, "del", "/", 3, true)
	r := a.do(http.MethodDelete, "/datasets/del", nil)
	var del struct{ Data deleteResult }
	r.decode(t, &del)
	if !del.Data.Deleted || del.Data.ImagesDeleted != 3 || del.Data.Name != "del" {
		t.Errorf("delete: got %+v, want deleted with 3 images", del.Data)
	}
	if r := a.do(http.MethodGet, "/images/del/000.png", nil); r.status != http.StatusNotFound {
		t.Errorf("image of a deleted dataset: got %d, want 404", r.status)
	}
}

func TestCreateUpdateDataset(t *testing.T) {
	s := startServer(t, Options{})
	a := newAPI(t, s, testMemberKey)
	req := map[string]any{
		"name": "Cars & Trucks 100%", "description": "d", "annotation_types": []string{"bbox"},
		"classes": []map[string]string{{"name": "car", "color": "#ff0000"}},
	}
	r := a.do(http.MethodPost, "/datasets", req)
	mustStatus(t, "create", r, http.StatusCreated)
	var env datasetEnvelope
	r.decode(t, &env)
	d := env.Data
	if d.Name != "Cars & Trucks 100%" || d.OrganizationID != s.DefaultOrg() || len(d.Classes) != 1 || d.Classes[0].Name != "car" ||
		len(d.AnnotationTypes) != 1 || d.CreatedAt.IsZero() || d.ImageCount != 0 {
		t.Errorf("create: got %+v", d)
	}
	for _, ref := range []string{url.PathEscape(d.Name), d.ID} {
		r := a.do(http.MethodGet, "/datasets/"+ref, nil)
		mustStatus(t, "get "+ref, r, http.StatusOK)
		var got datasetEnvelope
		r.decode(t, &got)
		if got.Data.ID != d.ID {
			t.Errorf("get %s: got id %s, want %s", ref, got.Data.ID, d.ID)
		}
		if strings.Contains(string(r.body), `"images"`) {
			t.Errorf("get %s without include_images: got images", ref)
		}
	}
	r = a.do(http.MethodPatch, "/datasets/"+d.ID, map[string]string{"new_name": "renamed", "description": "new"})
	mustStatus(t, "patch", r, http.StatusOK)
	r.decode(t, &env)
	if env.Data.Name != "renamed" || env.Data.Description != "new" || env.Data.ID != d.ID {
		t.Errorf("patch: got %+v", env.Data)
	}
	if r := a.do(http.MethodGet, "/datasets/renamed", nil); r.status != http.StatusOK {
		t.Errorf("get by the new name: got %d", r.status)
	}
	if r := a.do(http.MethodGet, "/datasets/RENAMED", nil); r.status != http.StatusNotFound {
		t.Errorf("names are case-sensitive: got %d, want 404", r.status)
	}
}

func TestIdempotencyKeyReplay(t *testing.T) {
	s := startServer(t, Options{})
	a := newAPI(t, s, testMemberKey)
	idem := "0123456789abcdef0123456789abcdef"
	first := a.do(http.MethodPost, "/datasets/", map[string]string{"name": "once"}, "Idempotency-Key", idem)
	mustStatus(t, "first", first, http.StatusCreated)
	second := a.do(http.MethodPost, "/datasets/", map[string]string{"name": "once"}, "Idempotency-Key", idem)
	if second.status != first.status || string(second.body) != string(first.body) {
		t.Errorf("replay: got %d %s, want %d %s", second.status, second.body, first.status, first.body)
	}
	if second.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: no Idempotent-Replayed header")
	}
	// Without the key, the same request is a conflict: only one dataset exists.
	if r := a.do(http.MethodPost, "/datasets/", map[string]string{"name": "once"}); r.status != http.StatusConflict {
		t.Errorf("same request without the key: got %d, want 409", r.status)
	}
	// The same idempotency key with another body is refused.
	if r := a.do(http.MethodPost, "/datasets/", map[string]string{"name": "twice"}, "Idempotency-Key", idem); r.status != http.StatusUnprocessableEntity {
		t.Errorf("same key, other body: got %d, want 422", r.status)
	}
	// Keys are per API key: the admin key with the same idempotency key runs anew.
	admin := newAPI(t, s, testAdminKey)
	if r := admin.do(http.MethodPost, "/datasets/", map[string]string{"name": "once"}, "Idempotency-Key", idem); r.status != http.StatusConflict {
		t.Errorf("same idempotency key under another API key: got %d, want 409 (a fresh attempt)", r.status)
	}
	// Concurrent retries with one key create one dataset.
	var wg sync.WaitGroup
	bodies := make([]string, 8)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a.do(http.MethodPost, "/datasets/", map[string]string{"name": "race"}, "Idempotency-Key", "race-key")
			bodies[i] = fmt.Sprint(r.status, string(r.body))
		}()
	}
	wg.Wait()
	for i := range bodies {
		if bodies[i] != bodies[0] {
			t.Errorf("concurrent retry %d: got %s, want %s", i, bodies[i], bodies[0])
		}
	}
	r := a.do(http.MethodGet, "/datasets/", nil)
	var env datasetsEnvelope
	r.decode(t, &env)
	if env.Pagination.Total != 2 {
		t.Errorf("datasets after replays: got %d, want 2", env.Pagination.Total)
	}
}

func TestHourlyBudget(t *testing.T) {
	s := startServer(t, Options{RequestsPerHour: 3})
	a := newAPI(t, s, testMemberKey)
	for i := range 3 {
		mustStatus(t, fmt.Sprintf("request %d", i), a.do(http.MethodGet, "/organizations/me", nil), http.StatusOK)
	}
	r := a.do(http.MethodGet, "/organizations/me", nil)
	mustStatus(t, "request over budget", r, http.StatusTooManyRequests)
	checkErrorBody(t, "429", r, "rate_limited")
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 3600 {
		t.Errorf("Retry-After: got %q, want seconds in [1, 3600]", r.header.Get("Retry-After"))
	}
	if got := s.Stats().Status429; got != 1 {
		t.Errorf("Stats.Status429: got %d, want 1", got)
	}
	// The budget is per key.
	mustStatus(t, "another key", newAPI(t, s, testAdminKey).do(http.MethodGet, "/organizations/me", nil), http.StatusOK)

	// A short window refills.
	s2 := startServer(t, Options{RequestsPerHour: 1, RateWindow: 300 * time.Millisecond})
	a2 := newAPI(t, s2, testMemberKey)
	mustStatus(t, "first", a2.do(http.MethodGet, "/organizations/me", nil), http.StatusOK)
	mustStatus(t, "second", a2.do(http.MethodGet, "/organizations/me", nil), http.StatusTooManyRequests)
	time.Sleep(350 * time.Millisecond)
	mustStatus(t, "after the window", a2.do(http.MethodGet, "/organizations/me", nil), http.StatusOK)
}

func TestOrganizationsMe(t *testing.T) {
	s := startServer(t, Options{})
	for key, role := range map[string]string{testAdminKey: "admin", testMemberKey: "member"} {
		r := newAPI(t, s, key).do(http.MethodGet, "/organizations/me", nil)
		mustStatus(t, "me", r, http.StatusOK)
		var env struct{ Organization organization }
		r.decode(t, &env)
		if env.Organization.ID != s.DefaultOrg() || env.Organization.Role != role || env.Organization.Name == "" {
			t.Errorf("me: got %+v, want org %s role %s", env.Organization, s.DefaultOrg(), role)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("me: no X-Request-Id")
		}
	}
}

func TestUploadRegisterAndAnnotations(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	if _, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: "up", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s, testMemberKey)
	data := demoBytes(t, 3)
	r := a.do(http.MethodPost, "/images/upload-url", uploadURLRequest{Dataset: "up", Filename: "x.png", DirectoryPath: "train/", ContentType: "image/png"})
	mustStatus(t, "upload-url", r, http.StatusOK)
	var up struct{ Data uploadURL }
	r.decode(t, &up)
	if up.Data.DirectoryPath != "/train" || up.Data.ExpiresInMinutes != 60 || !strings.HasPrefix(up.Data.UploadURL, s.StorageURL()) {
		t.Errorf("upload-url: got %+v", up.Data)
	}
	put := func(ct string) int {
		req, _ := http.NewRequest(http.MethodPut, up.Data.UploadURL, strings.NewReader(string(data)))
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := put("image/jpeg"); got != http.StatusForbidden {
		t.Errorf("PUT with another Content-Type: got %d, want 403", got)
	}
	reg := registerImageRequest{Dataset: "up", Filename: "x.png", DirectoryPath: "/train", FileSize: int64(len(data)), ContentType: "image/png"}
	if r := a.do(http.MethodPost, "/images/register", reg); r.status != http.StatusBadRequest {
		t.Errorf("register before PUT: got %d, want 400", r.status)
	}
	if got := put("image/png"); got != http.StatusOK {
		t.Fatalf("PUT: got %d, want 200", got)
	}
	r = a.do(http.MethodPost, "/images/register", reg)
	mustStatus(t, "register", r, http.StatusCreated)
	var im struct{ Data Image }
	r.decode(t, &im)
	if im.Data.FileSize != int64(len(data)) || im.Data.Width == 0 || im.Data.Status != "new" || im.Data.DirectoryPath != "/train" {
		t.Errorf("register: got %+v", im.Data)
	}
	r = a.do(http.MethodPost, "/images/upload-url", uploadURLRequest{Dataset: "up", Filename: "x.png", DirectoryPath: "/train", ContentType: "image/png"})
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "already exists") {
		t.Errorf("duplicate upload-url: got %d %s, want 400 already exists", r.status, r.body)
	}
	for _, bad := range []uploadURLRequest{
		{Dataset: "up", Filename: "a/b.png", ContentType: "image/png"},
		{Dataset: "up", Filename: "a\x00.png", ContentType: "image/png"},
		{Dataset: "up", Filename: "..", ContentType: "image/png"},
		{Dataset: "up", Filename: "ok.png", DirectoryPath: "/a/../b", ContentType: "image/png"},
		{Dataset: "up", Filename: "notes.txt", ContentType: "text/plain"},
	} {
		if r := a.do(http.MethodPost, "/images/upload-url", bad); r.status != http.StatusBadRequest {
			t.Errorf("upload-url %+v: got %d, want 400", bad, r.status)
		}
	}
	if r := newAPI(t, s, mustKey(t, s, "viewer")).do(http.MethodPost, "/images/upload-url",
		uploadURLRequest{Dataset: "up", Filename: "v.png", ContentType: "image/png"}); r.status != http.StatusForbidden {
		t.Errorf("viewer upload-url: got %d, want 403", r.status)
	}

	// Annotations: none yet, then saved, then read back by id and by path.
	doc := a.do(http.MethodGet, "/annotations/"+im.Data.ID+"/file", nil)
	mustStatus(t, "annotation file", doc, http.StatusOK)
	if got := strings.TrimSpace(string(doc.body)); got != `{"image":"x.png","annotations":[]}` {
		t.Errorf("empty annotation file: got %s", got)
	}
	anns := map[string]any{"annotations": []map[string]any{
		{"name": "circle", "type": "bbox", "bounding_box": map[string]float64{"x": 1, "y": 2, "w": 3, "h": 4}},
		{"name": "x", "type": "keypoint", "keypoint": map[string]float64{"x": 5, "y": 6}},
	}}
	mustStatus(t, "save annotations", a.do(http.MethodPost, "/annotations/up/train/x.png", anns), http.StatusOK)
	if r := a.do(http.MethodPost, "/annotations/up/train/x.png", map[string]any{"annotations": []map[string]any{{"name": "x", "type": "bbox"}}}); r.status != http.StatusUnprocessableEntity {
		t.Errorf("annotation without geometry: got %d, want 422", r.status)
	}
	if r := a.do(http.MethodPut, "/annotations/"+im.Data.ID+"/file", anns); r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
		t.Errorf("PUT /annotations/{id}/file (not in the contract): got %d, want 404 or 405", r.status)
	}
	var got annotationDocument
	a.do(http.MethodGet, "/annotations/"+im.Data.ID+"/file", nil).decode(t, &got)
	if got.Image != "x.png" || len(got.Annotations) != 2 || got.Annotations[0].BoundingBox == nil || got.Annotations[0].ID == "" {
		t.Errorf("annotation file: got %+v", got)
	}
	var byPath struct {
		Success         bool         `json:"success"`
		ImageID         string       `json:"image_id"`
		Filename        string       `json:"filename"`
		Annotations     []Annotation `json:"annotations"`
		AnnotationCount int          `json:"annotation_count"`
	}
	r = a.do(http.MethodGet, "/annotations/up/train/x.png", nil)
	mustStatus(t, "annotations by path", r, http.StatusOK)
	r.decode(t, &byPath)
	if !byPath.Success || byPath.ImageID != im.Data.ID || byPath.AnnotationCount != 2 || len(byPath.Annotations) != 2 {
		t.Errorf("annotations by path: got %+v", byPath)
	}
	if s.Stats().AnnotationFiles != 2 {
		t.Errorf("Stats.AnnotationFiles: got %d, want 2", s.Stats().AnnotationFiles)
	}
	var img struct{ Data []Image }
	a.do(http.MethodGet, "/images/?dataset=up&directory_path=train&filename=x.png", nil).decode(t, &img)
	if len(img.Data) != 1 || img.Data[0].AnnotationCount != 2 || img.Data[0].Status != "new" {
		t.Errorf("image after saving annotations: got %+v, want 2 annotations and the status unchanged (new)", img.Data)
	}
}

func mustKey(t *testing.T, s *Server, role string) string {
	t.Helper()
	k, err := s.CreateKey(context.Background(), s.DefaultOrg(), role)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestStatusFilters(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	if _, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: "st", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	ims := addImages(t, s, s.DefaultOrg(), "st", "/", 5, false)
	for _, im := range ims[:2] {
		if err := s.SetImageStatus(ctx, s.DefaultOrg(), im.ID, "complete"); err != nil {
			t.Fatal(err)
		}
	}
	a := newAPI(t, s, testMemberKey)
	var lst listingEnvelope
	a.do(http.MethodGet, "/datasets/st/download?status_filter=complete", nil).decode(t, &lst)
	if len(lst.Data.Items) != 2 || lst.Data.TotalItems != 2 {
		t.Errorf("status_filter=complete: got %d items (total %d), want 2", len(lst.Data.Items), lst.Data.TotalItems)
	}
	var env imagesEnvelope
	a.do(http.MethodGet, "/images/?dataset=st&status=new", nil).decode(t, &env)
	if len(env.Data) != 3 || env.Pagination.Total != 3 {
		t.Errorf("status=new: got %d images (total %d), want 3", len(env.Data), env.Pagination.Total)
	}
	var ds datasetEnvelope
	a.do(http.MethodGet, "/datasets/st", nil).decode(t, &ds)
	if ds.Data.CompletedImageCount != 2 || ds.Data.ImageCount != 5 || ds.Data.TotalSize == 0 {
		t.Errorf("dataset counts: got image_count %d completed %d total_size %d", ds.Data.ImageCount, ds.Data.CompletedImageCount, ds.Data.TotalSize)
	}
}

func TestHostileNamesAreReachable(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	org := s.DefaultOrg()
	if _, err := s.CreateDataset(ctx, org, CreateDatasetRequest{Name: "h ?#%", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", 1000)
	names := []struct{ dir, name string }{
		{"/", ".."}, {"/", "."}, {"/", "a/b"}, {"/", "\x01ctl"}, {"/", long}, {"/sub dir", "q?x#y%z.png"},
		{"/", "file"}, {"/dup", "same.png"},
	}
	want := map[string]string{}
	for i, n := range names {
		data := fmt.Sprintf("bytes of %d", i)
		im, err := s.AddImage(ctx, org, "h ?#%", n.dir, n.name, "image/png", []byte(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		want[im.ID] = data
		if r := get(t, im.ImageURL, "X-API-Key", testMemberKey); r.status != http.StatusOK || string(r.body) != data {
			t.Errorf("image_url of %q: got %d %q, want %q", n.name, r.status, r.body, data)
		}
		// A client that resolves the URL against its base keeps every segment.
		base, _ := url.Parse(s.APIURL() + "/api/v1/developer/")
		ref, err := url.Parse(im.ImageURL)
		if err != nil {
			t.Fatalf("image_url %q: %v", im.ImageURL, err)
		}
		if got := base.ResolveReference(&url.URL{Path: ref.Path, RawPath: ref.RawPath}).String(); got != im.ImageURL {
			t.Errorf("image_url %q resolved against the base: got %q", im.ImageURL, got)
		}
	}
	if _, err := s.AddImage(ctx, org, "h ?#%", "/dup", "same.png", "image/png", []byte("second"), nil); err != nil {
		t.Fatal(err)
	}
	a := newAPI(t, s, testMemberKey)
	r := a.do(http.MethodGet, "/images/"+url.PathEscape("h ?#%")+"/"+url.PathEscape(".."), nil)
	if r.status != http.StatusOK || string(r.body) != "bytes of 0" {
		t.Errorf("GET image '..': got %d %q", r.status, r.body)
	}
	var env imagesEnvelope
	a.do(http.MethodGet, "/images/?dataset="+url.QueryEscape("h ?#%")+"&directory_path=/dup", nil).decode(t, &env)
	if len(env.Data) != 2 || env.Data[0].ID == env.Data[1].ID {
		t.Errorf("duplicate names in one directory: got %d images", len(env.Data))
	}
	// The download listing covers them all, with working signed URLs.
	var lst listingEnvelope
	a.do(http.MethodGet, "/datasets/"+url.PathEscape("h ?#%")+"/download", nil).decode(t, &lst)
	if len(lst.Data.Items) != len(names)+1 {
		t.Fatalf("download: got %d items, want %d", len(lst.Data.Items), len(names)+1)
	}
	for _, it := range lst.Data.Items {
		if w, ok := want[it.ID]; ok {
			if r := get(t, it.ImageURL); r.status != http.StatusOK || string(r.body) != w {
				t.Errorf("signed URL of %q: got %d %q, want %q", it.Filename, r.status, r.body, w)
			}
		}
	}
}

func TestConcurrentReaders(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	if _, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: "c", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	addImages(t, s, s.DefaultOrg(), "c", "/", 20, true)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := newAPI(t, s, testMemberKey)
			for i := range 10 {
				switch (w + i) % 3 {
				case 0:
					a.do(http.MethodGet, "/images/?dataset=c&limit=5", nil)
				case 1:
					var lst listingEnvelope
					a.do(http.MethodGet, "/datasets/c/download", nil).decode(t, &lst)
					get(t, lst.Data.Items[i].ImageURL)
				case 2:
					a.do(http.MethodPost, "/datasets/", map[string]string{"name": fmt.Sprintf("w%d-%d", w, i)})
				}
			}
		}()
	}
	wg.Wait()
	if st := s.Stats(); st.APIRequests < 80 || st.StorageSawAPIKey != 0 {
		t.Errorf("stats: got %+v", st)
	}
}

func TestPagingSeesWrites(t *testing.T) {
	s := startServer(t, Options{ImageListCap: 2})
	ctx := context.Background()
	if _, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: "w", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	addImages(t, s, s.DefaultOrg(), "w", "/b", 4, false)
	a := newAPI(t, s, testMemberKey)
	page := func(off int) []string {
		var env imagesEnvelope
		a.do(http.MethodGet, fmt.Sprintf("/images/?dataset=w&offset=%d", off), nil).decode(t, &env)
		var out []string
		for _, im := range env.Data {
			out = append(out, im.DirectoryPath+"/"+im.Filename)
		}
		return out
	}
	walk := func() string {
		var all []string
		for off := 0; ; {
			p := page(off)
			if len(p) == 0 {
				return strings.Join(all, " ")
			}
			all = append(all, p...)
			off += len(p)
		}
	}
	if got, want := walk(), "/b/000.png /b/001.png /b/002.png /b/003.png"; got != want {
		t.Errorf("first walk: got %s, want %s", got, want)
	}
	addImages(t, s, s.DefaultOrg(), "w", "/a", 1, false)
	if got, want := walk(), "/a/000.png /b/000.png /b/001.png /b/002.png /b/003.png"; got != want {
		t.Errorf("walk after an insert: got %s, want %s", got, want)
	}
	if got, want := strings.Join(page(3), " "), "/b/002.png /b/003.png"; got != want {
		t.Errorf("a page at an offset no cursor ends at: got %s, want %s", got, want)
	}
}
