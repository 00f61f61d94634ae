package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// TestBulkUploadAndRegister: links for many images in one request, PUTs
// without the key, one register request; duplicates come back in Failed
// (bulk) or as ErrConflict (one by one); the limits are refused before
// anything is sent.
func TestBulkUploadAndRegister(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	c := newClient(t, srv, srv.MemberKey())
	if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "bulk"}); err != nil {
		t.Fatal(err)
	}
	const n = 30
	items := make([]client.BulkUploadItem, n)
	data := make([][]byte, n)
	for i := range items {
		items[i] = client.BulkUploadItem{Filename: fmt.Sprintf("%02d #%d.png", i, i), DirectoryPath: []string{"", "/train", "/val/x y"}[i%3], ContentType: "image/png"}
		data[i] = tinyPNG(t, 3+i, 2)
	}
	count := requests(c, srv)
	urls, err := c.BulkUploadURLs(ctx, "bulk", items)
	if err != nil {
		t.Fatal(err)
	}
	reg := make([]client.BulkRegisterItem, n)
	for i, u := range urls.UploadURLs {
		if u.Filename != items[i].Filename {
			t.Fatalf("upload URL %d: got %s, want %s (request order)", i, u.Filename, items[i].Filename)
		}
		if err := c.PutUpload(ctx, u.UploadURL, "image/png", data[i]); err != nil {
			t.Fatal(err)
		}
		reg[i] = client.BulkRegisterItem{Filename: u.Filename, DirectoryPath: u.DirectoryPath, FileSize: int64(len(data[i])), ContentType: "image/png"}
	}
	res, err := c.BulkRegisterImages(ctx, "bulk", reg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != n || len(res.Succeeded) != n || len(res.Failed) != 0 {
		t.Fatalf("got %d registered (%d listed), %d failed; want %d and none", res.Count, len(res.Succeeded), len(res.Failed), n)
	}
	wantRequests(t, "bulk upload of 30 images", count, 2)
	if srv.Stats().StorageSawAPIKey != 0 {
		t.Error("the storage host saw the key")
	}
	for i, im := range res.Succeeded {
		if im.Width != 3+i || im.FileSize != int64(len(data[i])) {
			t.Errorf("%s: got %dx%d, %d bytes; want %dx2, %d", im.Filename, im.Width, im.Height, im.FileSize, 3+i, len(data[i]))
		}
	}
	// Again: every one is now a duplicate in its directory.
	urls, err = c.BulkUploadURLs(ctx, "bulk", items[:2])
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range urls.UploadURLs {
		if err := c.PutUpload(ctx, u.UploadURL, "image/png", data[i]); err != nil {
			t.Fatal(err)
		}
	}
	res, err = c.BulkRegisterImages(ctx, "bulk", reg[:2])
	if err != nil || res.Count != 0 || len(res.Failed) != 2 || !strings.Contains(res.Failed[0].Error, "already exists") || res.Failed[1].Filename != reg[1].Filename {
		t.Errorf("duplicates: got %+v, %v; want both in Failed, saying already exists", res, err)
	}
	_, err = c.RegisterImage(ctx, client.RegisterImageRequest{Dataset: "bulk", Filename: reg[0].Filename, DirectoryPath: reg[0].DirectoryPath,
		FileSize: reg[0].FileSize, ContentType: "image/png"})
	wantAPIError(t, c, err, client.ErrConflict, http.StatusBadRequest, "already_exists")

	count = requests(c, srv)
	tooMany := make([]client.BulkUploadItem, client.MaxBulkUpload+1)
	for i := range tooMany {
		tooMany[i] = client.BulkUploadItem{Filename: fmt.Sprint(i, ".png"), ContentType: "image/png"}
	}
	if _, err := c.BulkUploadURLs(ctx, "bulk", tooMany); !errors.Is(err, client.ErrValidation) {
		t.Errorf("501 images: got %v, want ErrValidation", err)
	}
	wantRequests(t, "501 images", count, 0)
	big, err := c.BulkUploadURLs(ctx, "bulk", tooMany[:client.MaxBulkUpload])
	if err != nil || len(big.UploadURLs) != client.MaxBulkUpload {
		t.Errorf("500 images: got %v; want 500 links", err)
	}
}

// TestSaveAnnotationsRules: the save route refuses what the contract
// refuses, as ErrValidation, and keeps what it had.
func TestSaveAnnotationsRules(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	c := newClient(t, srv, srv.MemberKey())
	if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "rules", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	ups := uploadAll(t, c, "rules")
	u := ups[1]
	if _, err := saveAnns(t, c, "rules", u, []client.Annotation{{Name: "car", Type: "bbox", BoundingBox: &client.BoundingBox{W: 1, H: 1}}}); err != nil {
		t.Fatal(err)
	}
	before, err := c.AnnotationFile(ctx, u.img.ID)
	if err != nil {
		t.Fatal(err)
	}
	box := `"bounding_box": {"x": 1, "y": 2, "w": 3, "h": 4}`
	tests := []struct{ name, anns, want string }{
		{"class", `[{"class": "car", "type": "bbox", ` + box + `}]`, `unknown key "class"`},
		{"label", `[{"name": "car", "label": "car", "type": "bbox", ` + box + `}]`, `unknown key "label"`},
		{"shorthand bbox", `[{"name": "car", "type": "bbox", "bbox": [1, 2, 3, 4]}]`, `unknown key "bbox"`},
		{"unknown class", `[{"name": "truck", "type": "bbox", ` + box + `}]`, `"truck" is not a class`},
		{"no geometry", `[{"name": "car", "type": "bbox"}]`, "has no bounding_box"},
	}
	for _, tt := range tests {
		_, err := c.SaveAnnotationsAt(ctx, "rules", u.dir, u.name, json.RawMessage(tt.anns))
		ae := wantAPIError(t, c, err, client.ErrValidation, http.StatusUnprocessableEntity, "validation_error")
		if ae != nil && !strings.Contains(ae.Message, tt.want) {
			t.Errorf("%s: got %q, want it to say %q", tt.name, ae.Message, tt.want)
		}
	}
	if after, err := c.AnnotationFile(ctx, u.img.ID); err != nil || string(after) != string(before) {
		t.Errorf("after refused saves: got %s, %v; want %s", after, err, before)
	}
	_, err = c.SaveAnnotationsAt(ctx, "rules", u.dir, "missing.png", nil)
	wantAPIError(t, c, err, client.ErrNotFound, http.StatusNotFound, "not_found")
	// Bulk: per-image failures are listed, the rest is saved.
	res, err := c.BulkSaveAnnotations(ctx, []client.AnnotationSave{
		{ImageID: ups[0].img.ID, Annotations: json.RawMessage(`[{"name": "nose", "type": "keypoint", "keypoint": {"x": 1, "y": 2}}]`)},
		{ImageID: ups[2].img.ID, Annotations: json.RawMessage(`[{"name": "truck", "type": "keypoint", "keypoint": {"x": 1, "y": 2}}]`)},
		{ImageID: "no-such-image"},
	})
	if err != nil || len(res.Saved) != 1 || res.Saved[0].ImageID != ups[0].img.ID || res.Saved[0].NewCount != 1 ||
		len(res.Failed) != 2 || res.Failed[0].ImageID != ups[2].img.ID || !strings.Contains(res.Failed[0].Error, "truck") {
		t.Errorf("bulk save: got %+v, %v; want 1 saved and 2 failed", res, err)
	}
	count := requests(c, srv)
	if _, err := c.BulkSaveAnnotations(ctx, make([]client.AnnotationSave, client.MaxBulkSave+1)); !errors.Is(err, client.ErrValidation) {
		t.Errorf("201 saves: got %v, want ErrValidation", err)
	}
	wantRequests(t, "201 saves", count, 0)
}

// TestWriteRoles: who may do what (the contract's §8, and the devserver's
// answer where it is open: annotators save annotations, only admins and
// owners archive or delete).
func TestWriteRoles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: -1})
	setup := newClient(t, srv, srv.AdminKey())
	if _, err := setup.CreateDataset(ctx, client.CreateDatasetRequest{Name: "r", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	ups := uploadAll(t, setup, "r")
	if _, err := setup.CreateExport(ctx, client.CreateExportRequest{DatasetName: "r", Name: "keep"}); err != nil {
		t.Fatal(err)
	}
	rank := map[string]int{"viewer": 1, "annotator": 2, "member": 3, "admin": 4, "owner": 5}
	tests := []struct {
		name   string
		lowest string
		call   func(c *tc, role string) error
	}{
		{"save annotations", "annotator", func(c *tc, _ string) error {
			_, err := c.SaveAnnotationsAt(ctx, "r", ups[0].dir, ups[0].name, json.RawMessage(`[]`))
			return err
		}},
		{"bulk save annotations", "annotator", func(c *tc, _ string) error {
			_, err := c.BulkSaveAnnotations(ctx, []client.AnnotationSave{{ImageID: ups[0].img.ID}})
			return err
		}},
		{"bulk upload URLs", "member", func(c *tc, role string) error {
			_, err := c.BulkUploadURLs(ctx, "r", []client.BulkUploadItem{{Filename: role + ".png", ContentType: "image/png"}})
			return err
		}},
		{"create export", "member", func(c *tc, role string) error {
			_, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "r", Name: role})
			return err
		}},
		{"delete annotations", "admin", func(c *tc, _ string) error {
			_, err := c.DeleteAnnotations(ctx, "r", ups[0].dir, ups[0].name)
			return err
		}},
		{"delete export", "admin", func(c *tc, role string) error {
			if role == "owner" {
				return c.DeleteExport(ctx, "r", "admin")
			}
			return c.DeleteExport(ctx, "r", "keep")
		}},
		{"archive", "admin", func(c *tc, role string) error {
			u := map[string]*upload{"admin": ups[1], "owner": ups[2]}[role]
			if u == nil {
				u = ups[3]
			}
			return c.DeleteImage(ctx, "r", u.dir, u.name, false)
		}},
	}
	for _, role := range []string{"viewer", "annotator", "member", "admin", "owner"} {
		key, err := srv.CreateKey(ctx, srv.DefaultOrg(), role)
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(t, srv, key)
		for _, tt := range tests {
			err := tt.call(c, role)
			if rank[role] >= rank[tt.lowest] {
				if err != nil {
					t.Errorf("%s by %s: got %v, want it allowed", tt.name, role, err)
				}
				continue
			}
			if !errors.Is(err, client.ErrForbidden) {
				t.Errorf("%s by %s: got %v, want ErrForbidden", tt.name, role, err)
			}
		}
	}
}

// TestArchiveAndPermanentDelete: an archived image leaves every listing
// and the image count, and counts as archived; a dataset holding only
// archived images has image_count 0, so a mount must add
// archived_image_count before it deletes one.
func TestArchiveAndPermanentDelete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	c := newClient(t, srv, srv.AdminKey())
	if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "arc", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	ups := uploadAll(t, c, "arc")
	if _, err := saveAnns(t, c, "arc", ups[0], []client.Annotation{{Name: "x", Type: "keypoint", Keypoint: &client.Point{X: 1, Y: 1}}}); err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteAnnotations(ctx, "arc", ups[0].dir, ups[0].name)
	if err != nil || del.ImageID != ups[0].img.ID || del.DeletedCount != 1 {
		t.Errorf("DeleteAnnotations: got %+v, %v; want 1 deleted of %s", del, err, ups[0].img.ID)
	}
	for _, u := range ups[1:] {
		if err := c.DeleteImage(ctx, "arc", u.dir, u.name, false); err != nil {
			t.Fatalf("archive %s: %v", u.name, err)
		}
	}
	d, err := c.GetDataset(ctx, "arc")
	if err != nil || d.ImageCount != 1 || d.ArchivedImageCount != len(ups)-1 || d.TotalSize != int64(len(ups[0].data)) {
		t.Errorf("after archiving: got %+v, %v; want 1 image of %d bytes and %d archived", d, err, len(ups[0].data), len(ups)-1)
	}
	var listed []string
	if _, err := c.EachDatasetImage(ctx, "arc", 0, func(page []client.Image) error {
		for _, im := range page {
			listed = append(listed, im.Filename)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	imgs, _, err := c.ListImages(ctx, client.ImageQuery{Dataset: "arc"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.DownloadListing(ctx, "arc", client.DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || len(imgs) != 1 || len(l.Items) != 1 || l.TotalItems != 1 || listed[0] != ups[0].name {
		t.Errorf("listings: got %v, %d, %d; want only %s", listed, len(imgs), len(l.Items), ups[0].name)
	}
	err = c.DeleteImage(ctx, "arc", ups[1].dir, ups[1].name, false)
	wantAPIError(t, c, err, client.ErrNotFound, http.StatusNotFound, "not_found")
	if err := c.DeleteImage(ctx, "arc", ups[1].dir, ups[1].name, true); err != nil {
		t.Errorf("permanent delete of an archived image: %v", err)
	}
	if err := c.DeleteImage(ctx, "arc", ups[0].dir, ups[0].name, false); err != nil {
		t.Fatal(err)
	}
	d, err = c.GetDataset(ctx, "arc")
	if err != nil || d.ImageCount != 0 || d.ArchivedImageCount != len(ups)-1 {
		t.Fatalf("got %+v, %v; want 0 images and %d archived", d, err, len(ups)-1)
	}
	// What the real service does here is unknown; the devserver deletes.
	res, err := c.DeleteDataset(ctx, "arc")
	if err != nil || !res.Deleted || res.ImagesDeleted != len(ups)-1 {
		t.Errorf("DeleteDataset of archived images only: got %+v, %v; want deleted with %d images", res, err, len(ups)-1)
	}
}
