package devserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// writeEnv is a server with dataset "w" (classes of goldenClasses) holding
// /val/a.jpg with status review and one box, and /b.png with none.
func writeEnv(t *testing.T) (*Server, *api, *Image) {
	t.Helper()
	s := startServer(t, Options{ExportDelay: -1})
	ctx := context.Background()
	if _, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: "w", Classes: goldenClasses}); err != nil {
		t.Fatal(err)
	}
	img, err := s.AddImage(ctx, s.DefaultOrg(), "w", "/val", "a.jpg", "image/jpeg", demoBytes(t, 0),
		[]Annotation{{Name: "stop", Type: "bbox", BoundingBox: &BoundingBox{W: 1, H: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetImageStatus(ctx, s.DefaultOrg(), img.ID, "review"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddImage(ctx, s.DefaultOrg(), "w", "/", "b.png", "image/png", demoBytes(t, 1), nil); err != nil {
		t.Fatal(err)
	}
	return s, newAPI(t, s, testAdminKey), img
}

func TestSaveAnnotationsValidation(t *testing.T) {
	_, a, _ := writeEnv(t)
	box := `"bounding_box": {"x": 1, "y": 2, "w": 3, "h": 4}`
	tri := `"polygon": {"paths": [[{"x": 0, "y": 0}, {"x": 4, "y": 0}, {"x": 0, "y": 3}]]}`
	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"another top-level key", `{"annotations": [], "image": "a.jpg"}`, 422, `unknown key "image"`},
		{"no annotations", `{}`, 422, "annotations is required"},
		{"annotations not a list", `{"annotations": {}}`, 422, "must be a list"},
		{"a list, not an object", `[]`, 422, ""},
		{"class instead of name", `{"annotations": [{"class": "stop", "type": "bbox", ` + box + `}]}`, 422, `unknown key "class"`},
		{"label", `{"annotations": [{"name": "stop", "label": "stop", "type": "bbox", ` + box + `}]}`, 422, `unknown key "label"`},
		{"shorthand bbox", `{"annotations": [{"name": "stop", "type": "bbox", "bbox": [1, 2, 3, 4]}]}`, 422, `unknown key "bbox"`},
		{"class not on the dataset", `{"annotations": [{"name": "car", "type": "bbox", ` + box + `}]}`, 422, `"car" is not a class of the dataset`},
		{"no name", `{"annotations": [{"type": "bbox", ` + box + `}]}`, 422, "name is required"},
		{"unknown type", `{"annotations": [{"name": "stop", "type": "circle", ` + box + `}]}`, 422, `type "circle"`},
		{"no geometry", `{"annotations": [{"name": "stop", "type": "polygon"}]}`, 422, "has no polygon"},
		{"two geometries", `{"annotations": [{"name": "stop", "type": "bbox", ` + box + `, ` + tri + `}]}`, 422, "must not have a polygon"},
		{"short polygon", `{"annotations": [{"name": "yield", "type": "polygon", "polygon": {"paths": [[{"x": 0, "y": 0}, {"x": 1, "y": 1}]]}}]}`, 422, "at least 3"},
		{"negative box", `{"annotations": [{"name": "stop", "type": "bbox", "bounding_box": {"x": 0, "y": 0, "w": -1, "h": 1}}]}`, 422, "negative size"},
		{"confidence over 1", `{"annotations": [{"name": "stop", "type": "bbox", "confidence": 1.5, ` + box + `}]}`, 422, "confidence"},
		{"wrong type of value", `{"annotations": [{"name": 7, "type": "bbox", ` + box + `}]}`, 422, "name"},
		{"not an object", `{"annotations": [7]}`, 422, "must be an object"},
		{"malformed", `{"annotations": [`, 400, "malformed"},
	}
	for _, tt := range tests {
		r := a.do(http.MethodPost, "/annotations/w/val/a.jpg", tt.body)
		if r.status != tt.status || !strings.Contains(r.message(), tt.want) {
			t.Errorf("%s: got %d %s, want %d saying %q", tt.name, r.status, r.message(), tt.status, tt.want)
		}
	}
	// Nothing was saved by the refused requests.
	var doc annotationDocument
	a.do(http.MethodGet, "/annotations/w/val/a.jpg", nil).decode(t, &doc)
	if len(doc.Annotations) != 1 {
		t.Errorf("after refused saves: got %d annotations, want the 1 seeded", len(doc.Annotations))
	}
}

func TestSaveAnnotations(t *testing.T) {
	s, a, img := writeEnv(t)
	body := `{"annotations": [{"name": "yield", "type": "polygon", "polygon": {"paths": [[{"x": 10, "y": 20}, {"x": 40, "y": 20}, {"x": 25, "y": 60}]]}},
		{"id": "mine", "name": "stop", "type": "keypoint", "confidence": 0.25, "keypoint": {"x": 5, "y": 6}}]}`
	r := a.do(http.MethodPost, "/annotations/w/val/a.jpg", body)
	mustStatus(t, "save", r, http.StatusOK)
	var res saveResult
	r.decode(t, &res)
	if want := (saveResult{Success: true, ImageID: img.ID, PreviousCount: 1, NewCount: 2, Status: "review"}); res != want {
		t.Errorf("got %+v, want %+v", res, want)
	}
	var doc annotationDocument
	a.do(http.MethodGet, "/annotations/"+img.ID+"/file", nil).decode(t, &doc)
	if len(doc.Annotations) != 2 {
		t.Fatalf("got %+v, want 2 annotations", doc)
	}
	poly, kp := doc.Annotations[0], doc.Annotations[1]
	if poly.ID == "" || poly.BoundingBox == nil || *poly.BoundingBox != (BoundingBox{X: 10, Y: 20, W: 30, H: 40}) {
		t.Errorf("polygon: got id %q, box %+v; want a generated id and the box 10,20 30x40", poly.ID, poly.BoundingBox)
	}
	if kp.ID != "mine" || kp.Confidence == nil || *kp.Confidence != 0.25 {
		t.Errorf("keypoint: got %+v, want id mine and confidence 0.25 kept", kp)
	}
	var imgs imagesEnvelope
	a.do(http.MethodGet, "/images/?dataset=w&filename=a.jpg", nil).decode(t, &imgs)
	if len(imgs.Data) != 1 || imgs.Data[0].Status != "review" || imgs.Data[0].AnnotationCount != 2 {
		t.Errorf("got %+v, want status review (unchanged) and 2 annotations", imgs.Data)
	}
	// The Go API follows the same rules.
	if err := s.SetAnnotations(context.Background(), s.DefaultOrg(), img.ID, []Annotation{{Name: "car", Type: "keypoint", Keypoint: &Point{}}}); err == nil {
		t.Error("SetAnnotations with a class the dataset does not have: got no error")
	}
	r = a.do(http.MethodPost, "/annotations/w/val/nope.jpg", `{"annotations": []}`)
	mustStatus(t, "save to an unknown image", r, http.StatusNotFound)
}

func TestDeleteAnnotations(t *testing.T) {
	_, a, img := writeEnv(t)
	r := a.do(http.MethodDelete, "/annotations/w/val/a.jpg", nil)
	mustStatus(t, "delete annotations", r, http.StatusOK)
	var res deleteAnnotationsResult
	r.decode(t, &res)
	if res != (deleteAnnotationsResult{ImageID: img.ID, DeletedCount: 1}) {
		t.Errorf("got %+v, want %s and 1", res, img.ID)
	}
	var doc annotationDocument
	a.do(http.MethodGet, "/annotations/"+img.ID+"/file", nil).decode(t, &doc)
	var imgs imagesEnvelope
	a.do(http.MethodGet, "/images/?dataset=w&filename=a.jpg", nil).decode(t, &imgs)
	if len(doc.Annotations) != 0 || imgs.Data[0].AnnotationCount != 0 || imgs.Data[0].Status != "review" {
		t.Errorf("got %+v and %+v, want no annotations and the status unchanged", doc, imgs.Data[0])
	}
}

func TestWriteRoles(t *testing.T) {
	s, _, img := writeEnv(t)
	keys := map[string]string{}
	for _, role := range []string{"owner", "admin", "member", "annotator", "viewer"} {
		keys[role] = mustKey(t, s, role)
	}
	save := `{"annotations": []}`
	bulkSave := fmt.Sprintf(`{"saves": [{"image_id": %q, "annotations": []}]}`, img.ID)
	bulkUp := `{"dataset": "w", "images": [{"filename": "n.png", "directory_path": "/", "content_type": "image/png"}]}`
	bulkReg := `{"dataset": "w", "images": [{"filename": "n.png", "directory_path": "/", "file_size": 1, "content_type": "image/png", "width": 1, "height": 1}]}`
	tests := []struct {
		route, method, path, body string
		lowest                    string // the lowest role allowed
	}{
		{"save", http.MethodPost, "/annotations/w/val/a.jpg", save, "annotator"},
		{"bulk save", http.MethodPost, "/annotations/bulk", bulkSave, "annotator"},
		{"bulk upload URLs", http.MethodPost, "/images/bulk-upload-url", bulkUp, "member"},
		{"bulk register", http.MethodPost, "/images/bulk-register", bulkReg, "member"},
		{"delete annotations", http.MethodDelete, "/annotations/w/val/a.jpg", "", "admin"},
		{"archive", http.MethodDelete, "/images/w/b.png", "", "admin"},
	}
	for _, tt := range tests {
		for _, role := range []string{"viewer", "annotator", "member", "admin"} {
			if role == "admin" && tt.route == "archive" {
				continue // done last, by the owner, below
			}
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := newAPI(t, s, keys[role]).do(tt.method, tt.path, body)
			allowed := roleRank[role] >= roleRank[tt.lowest]
			if got := r.status != http.StatusForbidden; got != allowed {
				t.Errorf("%s by %s: got %d %s, want allowed %v", tt.route, role, r.status, r.body, allowed)
			}
			if !allowed {
				checkErrorBody(t, tt.route, r, "forbidden")
			}
		}
	}
	mustStatus(t, "archive by the owner", newAPI(t, s, keys["owner"]).do(http.MethodDelete, "/images/w/b.png", nil), http.StatusOK)
}

func TestArchiveAndDelete(t *testing.T) {
	s, a, img := writeEnv(t)
	ctx := context.Background()
	if err := s.SetImageStatus(ctx, s.DefaultOrg(), img.ID, "complete"); err != nil {
		t.Fatal(err)
	}
	counts := func() [4]int {
		var d datasetEnvelope
		a.do(http.MethodGet, "/datasets/w", nil).decode(t, &d)
		return [4]int{d.Data.ImageCount, d.Data.CompletedImageCount, d.Data.ArchivedImageCount, int(d.Data.TotalSize)}
	}
	before := counts()
	r := a.do(http.MethodDelete, "/images/w/val/a.jpg", nil)
	mustStatus(t, "archive", r, http.StatusOK)
	var res deleteImageResult
	r.decode(t, &res)
	if !res.Success || !strings.Contains(res.Message, "archived") {
		t.Errorf("got %+v, want success and a message saying archived", res)
	}
	if got, want := counts(), [4]int{before[0] - 1, before[1] - 1, 1, before[3] - int(img.FileSize)}; got != want {
		t.Errorf("counts (images, completed, archived, size): got %v, want %v", got, want)
	}
	var imgs imagesEnvelope
	a.do(http.MethodGet, "/images/?dataset=w", nil).decode(t, &imgs)
	var inc struct {
		Data struct {
			Images []Image `json:"images"`
		} `json:"data"`
	}
	a.do(http.MethodGet, "/datasets/w?include_images=true", nil).decode(t, &inc)
	var lst listingEnvelope
	a.do(http.MethodGet, "/datasets/w/download", nil).decode(t, &lst)
	if len(imgs.Data) != 1 || len(inc.Data.Images) != 1 || len(lst.Data.Items) != 1 || lst.Data.TotalItems != 1 || imgs.Data[0].Filename != "b.png" {
		t.Errorf("listings after archiving: got %d in /images/, %d in include_images, %d (total %d) in the download listing; want only b.png",
			len(imgs.Data), len(inc.Data.Images), len(lst.Data.Items), lst.Data.TotalItems)
	}
	for _, path := range []string{"/images/w/val/a.jpg", "/annotations/w/val/a.jpg"} {
		if r := a.do(http.MethodGet, path, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s of an archived image: got %d, want 404", path, r.status)
		}
	}
	if r := a.do(http.MethodDelete, "/images/w/val/a.jpg", nil); r.status != http.StatusNotFound {
		t.Errorf("archive twice: got %d, want 404", r.status)
	}
	if r := a.do(http.MethodDelete, "/images/w/val/a.jpg?permanently=1", nil); r.status != http.StatusBadRequest {
		t.Errorf("unknown query key: got %d, want 400", r.status)
	}
	// A new image may take the archived one's name.
	if _, err := s.AddImage(ctx, s.DefaultOrg(), "w", "/val", "a.jpg", "image/jpeg", demoBytes(t, 3), nil); err != nil {
		t.Fatal(err)
	}
	r = a.do(http.MethodPost, "/images/upload-url", uploadURLRequest{Dataset: "w", Filename: "a.jpg", DirectoryPath: "/val", ContentType: "image/jpeg"})
	if r.status != http.StatusBadRequest || !strings.Contains(r.message(), "already exists") {
		t.Errorf("upload-url over the new a.jpg: got %d %s, want 400 already exists", r.status, r.body)
	}
	// permanent=true deletes the live one first, then the archived one.
	for i, want := range [][4]int{{1, 0, 1, 0}, {1, 0, 0, 0}} {
		mustStatus(t, "permanent delete", a.do(http.MethodDelete, "/images/w/val/a.jpg?permanent=true", nil), http.StatusOK)
		got := counts()
		if got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("after permanent delete %d: counts %v, want images, completed, archived %v", i+1, got, want[:3])
		}
	}
	if r := a.do(http.MethodDelete, "/images/w/val/a.jpg?permanent=true", nil); r.status != http.StatusNotFound {
		t.Errorf("permanent delete of nothing: got %d, want 404", r.status)
	}
	// A dataset whose images are all archived: DELETE removes it (admin).
	mustStatus(t, "archive b.png", a.do(http.MethodDelete, "/images/w/b.png", nil), http.StatusOK)
	if c := counts(); c[0] != 0 || c[2] != 1 {
		t.Fatalf("counts %v, want 0 images and 1 archived", c)
	}
	r = a.do(http.MethodDelete, "/datasets/w", nil)
	mustStatus(t, "delete a dataset of archived images", r, http.StatusOK)
	var del struct{ Data deleteResult }
	r.decode(t, &del)
	if !del.Data.Deleted || del.Data.ImagesDeleted != 1 {
		t.Errorf("got %+v, want deleted with 1 image", del.Data)
	}
}

func TestBulkWrites(t *testing.T) {
	_, a, img := writeEnv(t)
	items := func(n int, register bool) string {
		var parts []string
		for i := range n {
			if register {
				parts = append(parts, fmt.Sprintf(`{"filename": "%03d.png", "directory_path": "/bulk", "file_size": 0, "content_type": "image/png", "width": 0, "height": 0}`, i))
			} else {
				parts = append(parts, fmt.Sprintf(`{"filename": "%03d.png", "directory_path": "bulk/", "content_type": "image/png"}`, i))
			}
		}
		return `{"dataset": "w", "images": [` + strings.Join(parts, ",") + `]}`
	}
	if r := a.do(http.MethodPost, "/images/bulk-upload-url", items(501, false)); r.status != http.StatusUnprocessableEntity {
		t.Errorf("501 upload URLs: got %d, want 422", r.status)
	}
	if r := a.do(http.MethodPost, "/images/bulk-register", items(501, true)); r.status != http.StatusUnprocessableEntity {
		t.Errorf("501 registers: got %d, want 422", r.status)
	}
	if r := a.do(http.MethodPost, "/images/bulk-upload-url", `{"dataset": "w", "images": [], "extra": 1}`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("unknown key: got %d, want 422", r.status)
	}
	r := a.do(http.MethodPost, "/images/bulk-upload-url", items(500, false))
	mustStatus(t, "500 upload URLs", r, http.StatusOK)
	var ups struct{ Data bulkUploadURLs }
	r.decode(t, &ups)
	if len(ups.Data.UploadURLs) != 500 {
		t.Fatalf("got %d upload URLs, want 500", len(ups.Data.UploadURLs))
	}
	for i, u := range ups.Data.UploadURLs {
		if u.Filename != fmt.Sprintf("%03d.png", i) || u.DirectoryPath != "/bulk" {
			t.Fatalf("upload URL %d: got %+v, want %03d.png in /bulk (request order)", i, u, i)
		}
	}
	data := demoBytes(t, 5)
	for _, i := range []int{0, 1} {
		mustStatus(t, "PUT", putUpload(t, ups.Data.UploadURLs[i].UploadURL, "image/png", data), http.StatusOK)
	}
	// 000 and 001 are uploaded; 002 is not; 000 is asked twice.
	reg := `{"dataset": "w", "images": [
		{"filename": "000.png", "directory_path": "/bulk", "file_size": 0, "content_type": "image/png", "width": 0, "height": 0},
		{"filename": "001.png", "directory_path": "/bulk", "file_size": 0, "content_type": "image/png", "width": 0, "height": 0},
		{"filename": "002.png", "directory_path": "/bulk", "file_size": 0, "content_type": "image/png", "width": 0, "height": 0},
		{"filename": "000.png", "directory_path": "/bulk", "file_size": 0, "content_type": "image/png", "width": 0, "height": 0}]}`
	r = a.do(http.MethodPost, "/images/bulk-register", reg)
	mustStatus(t, "bulk register", r, http.StatusOK)
	var res struct{ Data bulkRegisterResult }
	r.decode(t, &res)
	if res.Data.Count != 2 || len(res.Data.Succeeded) != 2 || len(res.Data.Failed) != 2 || res.Data.Succeeded[0].Width == 0 {
		t.Fatalf("got %+v, want 000 and 001 registered (with their size decoded), 002 and the second 000 failed", res.Data)
	}
	for _, f := range res.Data.Failed {
		if f.Filename == "002.png" && !strings.Contains(f.Error, "PUT it") {
			t.Errorf("002.png: got %q, want a message about the missing upload", f.Error)
		}
	}

	// Bulk saves: at most 200; per-image failures are listed.
	var saves []string
	for range 201 {
		saves = append(saves, fmt.Sprintf(`{"image_id": %q, "annotations": []}`, img.ID))
	}
	if r := a.do(http.MethodPost, "/annotations/bulk", `{"saves": [`+strings.Join(saves, ",")+`]}`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("201 saves: got %d, want 422", r.status)
	}
	mixed := fmt.Sprintf(`{"saves": [
		{"image_id": %q, "annotations": [{"name": "stop", "type": "keypoint", "keypoint": {"x": 1, "y": 1}}]},
		{"image_id": "no-such-image", "annotations": []},
		{"image_id": %q, "annotations": [{"name": "car", "type": "keypoint", "keypoint": {"x": 1, "y": 1}}]},
		{"image_id": %q, "annotations": [{"class": "stop"}]}]}`, img.ID, img.ID, img.ID)
	r = a.do(http.MethodPost, "/annotations/bulk", mixed)
	mustStatus(t, "bulk save", r, http.StatusOK)
	var out bulkSaveResult
	r.decode(t, &out)
	if len(out.Saved) != 1 || out.Saved[0] != (bulkSaved{ImageID: img.ID, PreviousCount: 1, NewCount: 1, Status: "review"}) || len(out.Failed) != 3 {
		t.Errorf("got %+v, want 1 saved and 3 failed", out)
	}
	for i, want := range []string{"not found", `"car" is not a class`, `unknown key "class"`} {
		if i < len(out.Failed) && !strings.Contains(out.Failed[i].Error, want) {
			t.Errorf("failed %d: got %q, want it to say %q", i, out.Failed[i].Error, want)
		}
	}
	if r := a.do(http.MethodPost, "/annotations/bulk", `{"saves": [], "force": true}`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("unknown key: got %d, want 422", r.status)
	}
}

// putUpload PUTs data to a signed upload URL, without a key.
func putUpload(t *testing.T, uploadURL, contentType string, data []byte) response {
	t.Helper()
	return (&api{t: t}).do(http.MethodPut, uploadURL, data, "Content-Type", contentType)
}

func TestImportDerivesClasses(t *testing.T) {
	s := startServer(t, Options{})
	dir := t.TempDir()
	writeFile(t, dir, "a.png", demoBytes(t, 1))
	writeFile(t, dir, "a.png.json", []byte(`{"image": "a.png", "annotations": [{"name": "dog", "type": "bbox", "bounding_box": {"x": 1, "y": 1, "w": 2, "h": 2}}]}`))
	writeFile(t, dir, "sub/b.png", demoBytes(t, 2))
	writeFile(t, dir, "sub/b.png.json", []byte(`{"annotations": [{"name": "cat", "type": "keypoint", "keypoint": {"x": 1, "y": 1}}, {"name": "dog", "type": "keypoint", "keypoint": {"x": 2, "y": 2}}]}`))
	d, err := s.ImportDir(context.Background(), s.DefaultOrg(), "imp", dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range d.Classes {
		names = append(names, c.Name)
	}
	if strings.Join(names, " ") != "dog cat" || d.ImageCount != 2 {
		t.Errorf("got classes %v and %d images, want dog cat and 2", names, d.ImageCount)
	}
	b, _ := json.Marshal(d)
	if strings.Contains(string(b), "readme") {
		t.Errorf("an imported dataset without a readme: got %s, want no readme key", b)
	}
}
