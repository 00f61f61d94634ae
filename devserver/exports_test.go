package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// exportEnv is a server with dataset "e" (classes stop, yield): train/a.jpg
// (complete, a box and a polygon), val/b.png (new, a keypoint), c.png at the
// root (review, none) and an archived image.
func exportEnv(t *testing.T, opts Options) (*Server, *api) {
	t.Helper()
	s := startServer(t, opts)
	ctx := context.Background()
	org := s.DefaultOrg()
	if _, err := s.CreateDataset(ctx, org, CreateDatasetRequest{Name: "e", Classes: goldenClasses}); err != nil {
		t.Fatal(err)
	}
	add := func(dir, name string, i int, status string, anns []Annotation) {
		im, err := s.AddImage(ctx, org, "e", dir, name, "", demoBytes(t, i), anns)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetImageStatus(ctx, org, im.ID, status); err != nil {
			t.Fatal(err)
		}
	}
	add("/train", "a.jpg", 0, "complete", goldenAnnotations()[:2])
	add("/val", "b.png", 1, "new", []Annotation{{Name: "stop", Type: "keypoint", Keypoint: &Point{X: 3, Y: 4}}})
	add("/", "c.png", 2, "review", nil)
	add("/", "gone.png", 3, "new", nil)
	a := newAPI(t, s, testAdminKey)
	mustStatus(t, "archive", a.do(http.MethodDelete, "/images/e/gone.png", nil), http.StatusOK)
	return s, a
}

// createExport posts body (a JSON object) and returns the export.
func createExport(t *testing.T, a *api, body string) exportObject {
	t.Helper()
	r := a.do(http.MethodPost, "/exports/", body)
	mustStatus(t, "create export", r, http.StatusCreated)
	var e struct{ Data exportObject }
	r.decode(t, &e)
	return e.Data
}

func exportLinkOf(t *testing.T, a *api, id string) string {
	t.Helper()
	r := a.do(http.MethodGet, "/exports/"+id+"/download", nil)
	mustStatus(t, "download link", r, http.StatusOK)
	var l struct{ Data exportLink }
	r.decode(t, &l)
	return l.Data.DownloadURL
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// perImage returns GET /annotations/{id}/file of every listed image by
// "<dir>/<filename>" and the image bytes by the same key.
func perImage(t *testing.T, a *api, dataset string) (docs, imgs map[string][]byte) {
	t.Helper()
	var list imagesEnvelope
	a.do(http.MethodGet, "/images/?dataset="+dataset+"&limit=1000", nil).decode(t, &list)
	docs, imgs = map[string][]byte{}, map[string][]byte{}
	for _, im := range list.Data {
		k := memberPath(im.DirectoryPath, im.Filename)
		r := a.do(http.MethodGet, "/annotations/"+im.ID+"/file", nil)
		mustStatus(t, "annotation file", r, http.StatusOK)
		docs[k] = r.body
		b := a.do(http.MethodGet, "/images/"+dataset+"/"+imagePath(im.DirectoryPath, im.Filename), nil)
		mustStatus(t, "image bytes", b, http.StatusOK)
		imgs[k] = b.body
	}
	return docs, imgs
}

func TestExportLifecycle(t *testing.T) {
	_, a := exportEnv(t, Options{ExportDelay: 600 * time.Millisecond})
	start := time.Now()
	e := createExport(t, a, `{"dataset_name": "e", "name": "snap", "format": "pictograph", "include_images": false}`)
	if e.Status != "pending" || e.DownloadURL != "" || e.FileSize != nil || e.ExpiresAt != nil || e.ErrorMessage != nil {
		t.Errorf("created: got %+v, want pending with no link, size, expiry or error", e)
	}
	if r := a.do(http.MethodGet, "/exports/snap/download?dataset=e", nil); r.status != http.StatusConflict {
		t.Errorf("download link while pending: got %d, want 409", r.status)
	} else {
		checkErrorBody(t, "download link while pending", r, "export_not_ready")
	}
	var seen []string
	var done exportObject
	for deadline := time.Now().Add(10 * time.Second); ; {
		var got struct{ Data exportObject }
		a.do(http.MethodGet, "/exports/snap?dataset=e", nil).decode(t, &got)
		if len(seen) == 0 || seen[len(seen)-1] != got.Data.Status {
			seen = append(seen, got.Data.Status)
		}
		if got.Data.Status == "completed" || got.Data.Status == "failed" {
			done = got.Data
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %s after 10 s", got.Data.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("completed after %v, want at least the export delay of 600ms", took)
	}
	if strings.Join(seen, " ") != "pending processing completed" {
		t.Errorf("got statuses %v, want pending, processing, completed", seen)
	}
	if done.DownloadURL == "" || done.FileSize == nil || *done.FileSize == 0 || done.ImageCount == nil || *done.ImageCount != 3 ||
		done.AnnotationCount == nil || *done.AnnotationCount != 3 || done.ExpiresAt == nil || !done.ExpiresAt.After(time.Now().Add(24*time.Hour)) {
		t.Errorf("completed: got %+v, want a link, a size, 3 images, 3 annotations and an expiry days away", done)
	}
	// By id, the same export.
	var byID struct{ Data exportObject }
	a.do(http.MethodGet, "/exports/"+done.ID, nil).decode(t, &byID)
	if byID.Data.Name != "snap" || byID.Data.DatasetName != "e" {
		t.Errorf("by id: got %+v", byID.Data)
	}
	if r := a.do(http.MethodGet, "/exports/snap", nil); r.status != http.StatusNotFound {
		t.Errorf("a name without ?dataset=: got %d, want 404", r.status)
	}
	// The link in the export and the one from /download both fetch the ZIP.
	for _, link := range []string{done.DownloadURL, exportLinkOf(t, a, done.ID)} {
		zr := openZip(t, link)
		if len(zr.File) != 3 {
			t.Errorf("got %d members, want 3", len(zr.File))
		}
	}
}

func TestExportPictographMembersEqualThePerImageDocuments(t *testing.T) {
	s, a := exportEnv(t, Options{ExportDelay: -1})
	docs, imgs := perImage(t, a, "e")
	tests := []struct {
		name, body string
		want       map[string]string // member → key of docs ("d:") or imgs ("i:")
	}{
		{"annotations only", `{"dataset_name": "e", "name": "plain", "include_images": false}`, map[string]string{
			"annotations/train/a.jpg.json": "d:train/a.jpg", "annotations/val/b.png.json": "d:val/b.png", "annotations/c.png.json": "d:c.png"}},
		{"with images, by split", `{"dataset_name": "e", "name": "split", "format": "pictograph", "include_images": true, "organize_by_split": true}`, map[string]string{
			"train/annotations/train/a.jpg.json": "d:train/a.jpg", "val/annotations/val/b.png.json": "d:val/b.png",
			"unassigned/annotations/c.png.json": "d:c.png", "train/images/train/a.jpg": "i:train/a.jpg",
			"val/images/val/b.png": "i:val/b.png", "unassigned/images/c.png": "i:c.png"}},
		{"complete only", `{"dataset_name": "e", "name": "complete", "include_images": false, "status_filter": "complete"}`, map[string]string{
			"annotations/train/a.jpg.json": "d:train/a.jpg"}},
		{"all: empty, as on the service", `{"dataset_name": "e", "name": "all", "include_images": false, "status_filter": "all"}`, map[string]string{}},
	}
	for _, tt := range tests {
		e := createExport(t, a, tt.body)
		done := waitExport(t, a, e.ID)
		if done.Status != "completed" {
			t.Fatalf("%s: got %+v, want completed", tt.name, done)
		}
		got := testkit.ZipMembers(t, openZip(t, exportLinkOf(t, a, e.ID)))
		var wantNames []string
		for m := range tt.want {
			wantNames = append(wantNames, m)
		}
		sort.Strings(wantNames)
		if !slices.Equal(keys(got), wantNames) {
			t.Errorf("%s: got members %v, want %v", tt.name, keys(got), wantNames)
			continue
		}
		for m, src := range tt.want {
			want := docs[src[2:]]
			if src[0] == 'i' {
				want = imgs[src[2:]]
			}
			if !bytes.Equal(got[m], want) {
				t.Errorf("%s: member %s is not byte-identical to the per-image route's answer:\n got  %.200q\n want %.200q", tt.name, m, got[m], want)
			}
		}
		if done.ImageCount == nil || int(*done.ImageCount) != len(tt.want)-strings.Count(strings.Join(wantNames, " "), "/images/") {
			t.Errorf("%s: image_count %v", tt.name, done.ImageCount)
		}
	}
	if st := s.Stats(); st.ExportBuilds != int64(len(tests)) || st.ExportDownloads != int64(len(tests)) || st.StorageSawAPIKey != 0 {
		t.Errorf("stats: got %d builds, %d downloads, %d storage requests with a key; want %d, %d, 0",
			st.ExportBuilds, st.ExportDownloads, st.StorageSawAPIKey, len(tests), len(tests))
	}
}

func TestExportIsASnapshot(t *testing.T) {
	_, a := exportEnv(t, Options{ExportDelay: -1})
	before, _ := perImage(t, a, "e")
	e := createExport(t, a, `{"dataset_name": "e", "name": "before", "include_images": false}`)
	waitExport(t, a, e.ID)
	mustStatus(t, "edit", a.do(http.MethodPost, "/annotations/e/train/a.jpg", `{"annotations": []}`), http.StatusOK)
	after, _ := perImage(t, a, "e")
	if bytes.Equal(before["train/a.jpg"], after["train/a.jpg"]) {
		t.Fatal("the edit changed nothing")
	}
	got := testkit.ZipMembers(t, openZip(t, exportLinkOf(t, a, e.ID)))
	if m := got["annotations/train/a.jpg.json"]; !bytes.Equal(m, before["train/a.jpg"]) {
		t.Errorf("after an edit: got member %s, want the document as it was when the export was built %s", m, before["train/a.jpg"])
	}
}

func TestExportCOCO(t *testing.T) {
	_, a := exportEnv(t, Options{ExportDelay: -1})
	e := createExport(t, a, `{"dataset_name": "e", "name": "coco", "format": "coco", "include_images": true, "class_filter": ["stop"]}`)
	if done := waitExport(t, a, e.ID); done.Status != "completed" {
		t.Fatalf("got %+v", done)
	}
	got := testkit.ZipMembers(t, openZip(t, exportLinkOf(t, a, e.ID)))
	if want := []string{"annotations.json", "images/c.png", "images/train/a.jpg", "images/val/b.png"}; !slices.Equal(keys(got), want) {
		t.Fatalf("got members %v, want %v", keys(got), want)
	}
	var doc struct {
		Images      []cocoImage      `json:"images"`
		Annotations []cocoAnnotation `json:"annotations"`
		Categories  []cocoCategory   `json:"categories"`
	}
	if err := json.Unmarshal(got["annotations.json"], &doc); err != nil {
		t.Fatalf("annotations.json: %v", err)
	}
	var files []string
	for _, im := range doc.Images {
		files = append(files, fmt.Sprintf("%d:%s", im.ID, im.FileName))
	}
	if strings.Join(files, " ") != "1:c.png 2:train/a.jpg 3:val/b.png" {
		t.Errorf("images: got %v", files)
	}
	if len(doc.Categories) != 1 || doc.Categories[0] != (cocoCategory{ID: 1, Name: "stop"}) {
		t.Errorf("categories with class_filter [stop]: got %+v", doc.Categories)
	}
	// stop: a's box (image 2) and b's keypoint (image 3); yield's polygon is filtered out.
	if len(doc.Annotations) != 2 || doc.Annotations[0].ImageID != 2 || doc.Annotations[0].BBox != [4]float64{12.5, 30, 100, 80.25} ||
		doc.Annotations[0].Area != 100*80.25 || doc.Annotations[1].ImageID != 3 || doc.Annotations[1].NumKeypoints != 1 {
		t.Errorf("annotations: got %+v", doc.Annotations)
	}
	// By split: one annotations.json per split that has images.
	e = createExport(t, a, `{"dataset_name": "e", "name": "coco-split", "format": "coco", "include_images": false, "organize_by_split": true}`)
	waitExport(t, a, e.ID)
	got = testkit.ZipMembers(t, openZip(t, exportLinkOf(t, a, e.ID)))
	if want := []string{"train/annotations.json", "unassigned/annotations.json", "val/annotations.json"}; !slices.Equal(keys(got), want) {
		t.Errorf("by split: got %v, want %v", keys(got), want)
	}
	var train struct {
		Annotations []cocoAnnotation `json:"annotations"`
	}
	json.Unmarshal(got["train/annotations.json"], &train)
	if len(train.Annotations) != 2 || train.Annotations[1].Area != 600 || len(train.Annotations[1].Segmentation) != 1 {
		t.Errorf("train: got %+v, want the box and the polygon (area 600)", train.Annotations)
	}
}

func TestCreateExportValidation(t *testing.T) {
	s, a := exportEnv(t, Options{ExportDelay: -1})
	createExport(t, a, `{"dataset_name": "e", "name": "taken", "include_images": false}`)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"duplicate name", "POST", "/exports/", `{"dataset_name": "e", "name": "taken", "include_images": true}`, 409, "conflict"},
		{"no include_images", "POST", "/exports/", `{"dataset_name": "e", "name": "n"}`, 422, "validation_error"},
		{"unsupported format", "POST", "/exports/", `{"dataset_name": "e", "name": "n", "format": "yolo", "include_images": false}`, 422, "unsupported_format"},
		{"unknown format", "POST", "/exports/", `{"dataset_name": "e", "name": "n", "format": "tiff", "include_images": false}`, 422, "validation_error"},
		{"long name", "POST", "/exports/", `{"dataset_name": "e", "name": "` + strings.Repeat("n", 101) + `", "include_images": false}`, 422, "validation_error"},
		{"no name", "POST", "/exports/", `{"dataset_name": "e", "include_images": false}`, 422, "validation_error"},
		{"unknown key", "POST", "/exports/", `{"dataset_name": "e", "name": "n", "include_images": false, "compress": true}`, 422, "validation_error"},
		{"unknown class", "POST", "/exports/", `{"dataset_name": "e", "name": "n", "include_images": false, "class_filter": ["car"]}`, 422, "validation_error"},
		{"unknown stage", "POST", "/exports/", `{"dataset_name": "e", "name": "n", "include_images": false, "status_filter": "done"}`, 422, "validation_error"},
		{"unknown dataset", "POST", "/exports/", `{"dataset_name": "nope", "name": "n", "include_images": false}`, 404, "not_found"},
		{"unknown list key", "GET", "/exports/?dataset=e", "", 400, "bad_request"},
		{"unknown list status", "GET", "/exports/?status=done", "", 400, "bad_request"},
	}
	for _, tt := range tests {
		var body any
		if tt.body != "" {
			body = tt.body
		}
		r := a.do(tt.method, tt.path, body)
		if r.status != tt.status {
			t.Errorf("%s: got %d %s, want %d", tt.name, r.status, r.body, tt.status)
			continue
		}
		checkErrorBody(t, tt.name, r, tt.code)
	}
	if r := newAPI(t, s, mustKey(t, s, "annotator")).do("POST", "/exports/", `{"dataset_name": "e", "name": "n", "include_images": false}`); r.status != http.StatusForbidden {
		t.Errorf("create by an annotator: got %d, want 403", r.status)
	}
	// Without the trailing slash: a 307 to it, as FastAPI answers.
	req, _ := http.NewRequest(http.MethodPost, a.base+"/exports", strings.NewReader(`{}`))
	req.Header.Set("X-API-Key", a.key)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasSuffix(resp.Header.Get("Location"), "/exports/") {
		t.Errorf("POST /exports: got %d to %q, want 307 to /exports/", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A name with "/" and spaces is reachable, escaped.
	e := createExport(t, a, `{"dataset_name": "e", "name": "a/b c", "include_images": false}`)
	var got struct{ Data exportObject }
	r := a.do(http.MethodGet, "/exports/"+url.PathEscape("a/b c")+"?dataset=e", nil)
	mustStatus(t, "get a/b c", r, http.StatusOK)
	r.decode(t, &got)
	if got.Data.ID != e.ID {
		t.Errorf("got %+v, want %s", got.Data, e.ID)
	}
}

func TestExportFailures(t *testing.T) {
	_, a := exportEnv(t, Options{ExportDelay: -1, ExportFailRate: 1})
	e := createExport(t, a, `{"dataset_name": "e", "name": "doomed", "include_images": false}`)
	done := waitExport(t, a, e.ID)
	if done.Status != "failed" || done.ErrorMessage == nil || *done.ErrorMessage == "" || done.DownloadURL != "" || done.FileSize != nil {
		t.Errorf("got %+v, want failed with an error_message and nothing to download", done)
	}
	r := a.do(http.MethodGet, "/exports/"+e.ID+"/download", nil)
	if r.status != http.StatusConflict || !strings.Contains(r.message(), *done.ErrorMessage) {
		t.Errorf("download link of a failed export: got %d %s, want 409 with the error message", r.status, r.message())
	}
}

func TestExportDeletes(t *testing.T) {
	s, a := exportEnv(t, Options{ExportDelay: -1})
	var ids []string
	for i := range 3 {
		ids = append(ids, createExport(t, a, fmt.Sprintf(`{"dataset_name": "e", "name": "x%d", "include_images": false}`, i)).ID)
	}
	member := newAPI(t, s, testMemberKey)
	if r := member.do(http.MethodDelete, "/exports/x0?dataset=e", nil); r.status != http.StatusForbidden {
		t.Errorf("delete by a member: got %d, want 403", r.status)
	}
	if r := member.do(http.MethodPost, "/exports/bulk-delete", `{"export_ids": []}`); r.status != http.StatusForbidden {
		t.Errorf("bulk delete by a member: got %d, want 403", r.status)
	}
	owner := newAPI(t, s, mustKey(t, s, "owner"))
	r := owner.do(http.MethodDelete, "/exports/x0?dataset=e", nil)
	mustStatus(t, "delete by the owner", r, http.StatusOK)
	var del struct{ Data exportDeleted }
	r.decode(t, &del)
	if del.Data != (exportDeleted{ID: ids[0], Name: "x0", Deleted: true}) {
		t.Errorf("got %+v", del.Data)
	}
	if r := a.do(http.MethodGet, "/exports/"+ids[0], nil); r.status != http.StatusNotFound {
		t.Errorf("after delete: got %d, want 404", r.status)
	}
	r = a.do(http.MethodPost, "/exports/bulk-delete", fmt.Sprintf(`{"export_ids": [%q, %q, "nope"]}`, ids[1], ids[0]))
	mustStatus(t, "bulk delete", r, http.StatusOK)
	var bd bulkDeleteResult
	r.decode(t, &bd)
	if !slices.Equal(bd.Succeeded, ids[1:2]) || !slices.Equal(bd.NotFound, []string{ids[0], "nope"}) || bd.Count != 1 {
		t.Errorf("got %+v, want %s deleted and the others not found", bd, ids[1])
	}
	if r := a.do(http.MethodPost, "/exports/bulk-delete", `{}`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("bulk delete without ids: got %d, want 422", r.status)
	}
	// Deleting the dataset deletes its exports.
	mustStatus(t, "delete dataset", a.do(http.MethodDelete, "/datasets/e", nil), http.StatusOK)
	if r := a.do(http.MethodGet, "/exports/"+ids[2], nil); r.status != http.StatusNotFound {
		t.Errorf("export of a deleted dataset: got %d, want 404", r.status)
	}
}

func TestExportListPaging(t *testing.T) {
	s, a := exportEnv(t, Options{ExportDelay: -1, ExportListCap: 3})
	if _, err := s.CreateDataset(context.Background(), s.DefaultOrg(), CreateDatasetRequest{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		ds := "e"
		if i%2 == 1 {
			ds = "other"
		}
		waitExport(t, a, createExport(t, a, fmt.Sprintf(`{"dataset_name": %q, "name": "x%d", "include_images": false}`, ds, i)).ID)
	}
	var names []string
	for offset := 0; ; {
		var page struct {
			Data       []exportObject `json:"data"`
			Pagination Pagination     `json:"pagination"`
		}
		r := a.do(http.MethodGet, fmt.Sprintf("/exports/?limit=50&offset=%d", offset), nil)
		mustStatus(t, "list", r, http.StatusOK)
		r.decode(t, &page)
		if len(page.Data) > 3 || page.Pagination.Limit != 3 || page.Pagination.Total != 7 {
			t.Fatalf("got %d exports and %+v, want a page clamped to 3 of 7", len(page.Data), page.Pagination)
		}
		for _, e := range page.Data {
			names = append(names, e.Name)
		}
		offset += len(page.Data)
		if !page.Pagination.HasMore {
			break
		}
	}
	if strings.Join(names, " ") != "x6 x5 x4 x3 x2 x1 x0" {
		t.Errorf("got %v, want all 7, newest first", names)
	}
	var mine struct {
		Data       []exportObject `json:"data"`
		Pagination Pagination     `json:"pagination"`
	}
	a.do(http.MethodGet, "/exports/?dataset_name=other&status=completed", nil).decode(t, &mine)
	if mine.Pagination.Total != 3 || len(mine.Data) != 3 || mine.Data[0].DatasetName != "other" {
		t.Errorf("dataset_name=other: got %+v", mine.Pagination)
	}
	if r := a.do(http.MethodGet, "/exports/?dataset_name=nope", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown dataset_name: got %d, want 404", r.status)
	}
}

func TestExportStorage(t *testing.T) {
	s, a := exportEnv(t, Options{ExportDelay: -1})
	e := createExport(t, a, `{"dataset_name": "e", "name": "z", "include_images": true}`)
	waitExport(t, a, e.ID)
	link := exportLinkOf(t, a, e.ID)
	if !strings.HasPrefix(link, s.StorageURL()+"/x/"+e.ID+"?") {
		t.Fatalf("got link %s, want one on the storage host %s", link, s.StorageURL())
	}
	whole := get(t, link)
	mustStatus(t, "whole", whole, http.StatusOK)
	if ct := whole.header.Get("Content-Type"); ct != "application/zip" {
		t.Errorf("got Content-Type %q, want application/zip", ct)
	}
	part := get(t, link, "Range", "bytes=10-29")
	if part.status != http.StatusPartialContent || !bytes.Equal(part.body, whole.body[10:30]) {
		t.Errorf("range 10-29: got %d and %d bytes, want 206 and bytes 10..29", part.status, len(part.body))
	}
	tampered := strings.Replace(link, "/x/"+e.ID, "/x/"+e.ID[:len(e.ID)-1]+"0", 1)
	if tampered == link {
		tampered = strings.Replace(link, "/x/"+e.ID, "/x/"+e.ID[:len(e.ID)-1]+"1", 1)
	}
	for name, u := range map[string]string{"tampered": tampered, "no signature": strings.Split(link, "&signature=")[0]} {
		if r := get(t, u); r.status != http.StatusForbidden {
			t.Errorf("%s: got %d, want 403", name, r.status)
		}
	}
	s.SetFaults(Faults{URLTTL: -time.Minute})
	expired := exportLinkOf(t, a, e.ID)
	s.SetFaults(Faults{})
	if r := get(t, expired); r.status != http.StatusForbidden || !strings.Contains(r.message(), "expired") {
		t.Errorf("expired: got %d %s, want 403 expired", r.status, r.body)
	}
	if s.Stats().StorageSawAPIKey != 0 {
		t.Errorf("the storage host saw the API key")
	}
}

func TestExportBuildResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := startServer(t, Options{DataDir: dir, ExportDelay: time.Hour})
	if _, err := s1.CreateDataset(context.Background(), s1.DefaultOrg(), CreateDatasetRequest{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	e := createExport(t, newAPI(t, s1, testAdminKey), `{"dataset_name": "r", "name": "slow", "include_images": false}`)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, Options{DataDir: dir, ExportDelay: -1})
	if done := waitExport(t, newAPI(t, s2, testAdminKey), e.ID); done.Status != "completed" {
		t.Errorf("after a restart: got %+v, want the build done", done)
	}
}

func TestExportRequestsCountAgainstTheBudget(t *testing.T) {
	_, a := exportEnv(t, Options{ExportDelay: time.Hour, RequestsPerHour: 20})
	// exportEnv spent 1 request (the archive); creates and polls spend the rest.
	e := createExport(t, a, `{"dataset_name": "e", "name": "b", "include_images": false}`)
	sent := 2
	for sent < 25 {
		sent++
		if r := a.do(http.MethodGet, "/exports/"+e.ID, nil); r.status == http.StatusTooManyRequests {
			break
		}
	}
	if sent != 21 {
		t.Errorf("the first 429 came at request %d, want 21 (a budget of 20)", sent)
	}
}
