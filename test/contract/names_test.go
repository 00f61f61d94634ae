package contract

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// TestDatasetNames: names are case-sensitive and may hold any character but
// "/" and NUL; every single-dataset route reaches the right dataset by its
// escaped name, and by its id.
func TestDatasetNames(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	c := newClient(t, srv, srv.AdminKey())
	names := []string{
		"Alpha", "alpha", "ALPHA", "a b", "100%", "%2F", "q?x=1&y=2", "hash#tag", "semi;colon", "plus+sign",
		"ünï cødé", "back\\slash", "...", ".hidden", "tab\there", "emoji 📷", "colon:at@", "~tilde", "'quote\"",
	}
	data := tinyPNG(t, 3, 3)
	ids := map[string]string{}
	for _, name := range names {
		d, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: name})
		if err != nil {
			t.Fatalf("CreateDataset(%q): %v", name, err)
		}
		if d.Name != name {
			t.Errorf("CreateDataset(%q): got name %q", name, d.Name)
		}
		ids[name] = d.ID
		if _, err := c.UploadImage(ctx, name, "/"+name, name+".png", "image/png", data, 0, 0); err != nil {
			t.Errorf("UploadImage into %q: %v", name, err)
		}
	}
	for _, name := range names {
		for _, ref := range []string{name, ids[name]} {
			d, err := c.GetDataset(ctx, ref)
			if err != nil || d.ID != ids[name] || d.Name != name || d.ImageCount != 1 {
				t.Errorf("GetDataset(%q): got %+v, %v; want %s named %q with 1 image", ref, d, err, ids[name], name)
			}
		}
		imgs, _, err := c.ListImages(ctx, client.ImageQuery{Dataset: name, DirectoryPath: "/" + name})
		if err != nil || len(imgs) != 1 || imgs[0].Filename != name+".png" {
			t.Errorf("ListImages(%q): got %d images, %v; want %q", name, len(imgs), err, name+".png")
		}
		body, n, err := c.OpenImage(ctx, name, "/"+name, name+".png", 0, 0)
		if got := readAll(t, body, n, err); !bytes.Equal(got, data) {
			t.Errorf("OpenImage(%q): got %d bytes, want %d", name, len(got), len(data))
		}
		l, err := c.DownloadListing(ctx, name, client.DownloadOptions{})
		if err != nil || l.ID != ids[name] || len(l.Items) != 1 {
			t.Errorf("DownloadListing(%q): got %+v, %v; want 1 item of %s", name, l, err, ids[name])
		}
	}
	for _, name := range names {
		to := name + " (renamed)"
		d, err := c.UpdateDataset(ctx, name, client.UpdateDatasetRequest{NewName: &to})
		if err != nil || d.ID != ids[name] || d.Name != to {
			t.Errorf("rename %q: got %+v, %v; want %s named %q", name, d, err, ids[name], to)
			continue
		}
		res, err := c.DeleteDataset(ctx, to)
		if err != nil || res.ID != ids[name] || !res.Deleted || res.ImagesDeleted != 1 {
			t.Errorf("delete %q: got %+v, %v; want %s deleted with 1 image", to, res, err, ids[name])
		}
	}
	all, err := c.AllDatasets(ctx)
	if err != nil || len(all) != 0 {
		t.Errorf("after deleting every dataset: got %d, %v; want none", len(all), err)
	}
	for _, name := range []string{"a/b", ".", ".."} {
		_, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: name})
		wantAPIError(t, c, err, client.ErrValidation, http.StatusBadRequest, "bad_request")
	}
}
