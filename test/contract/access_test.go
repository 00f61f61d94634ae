package contract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// TestRoles: create and rename need member or higher, delete needs admin
// or higher (§8); everyone may read. A refused call changes nothing.
func TestRoles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	org := srv.DefaultOrg()
	admin := newClient(t, srv, srv.AdminKey())
	for _, tt := range []struct {
		role                         string
		create, rename, del, uploads bool
	}{
		{role: "owner", create: true, rename: true, del: true, uploads: true},
		{role: "admin", create: true, rename: true, del: true, uploads: true},
		{role: "member", create: true, rename: true, del: false, uploads: true},
		{role: "annotator", create: false, rename: false, del: false, uploads: false},
		{role: "viewer", create: false, rename: false, del: false, uploads: false},
	} {
		t.Run(tt.role, func(t *testing.T) {
			key, err := srv.CreateKey(ctx, org, tt.role)
			if err != nil {
				t.Fatal(err)
			}
			c := newClient(t, srv, key)
			me, err := c.Me(ctx)
			if err != nil || me.ID != org || me.Role != tt.role {
				t.Errorf("Me: got %+v, %v; want organization %s, role %s", me, err, org, tt.role)
			}
			own := "of-" + tt.role
			if _, err := srv.CreateDataset(ctx, org, devserver.CreateDatasetRequest{Name: own}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetDataset(ctx, own); err != nil {
				t.Errorf("read: got %v, want every role to read", err)
			}
			if _, err := c.AllDatasets(ctx); err != nil {
				t.Errorf("list: got %v, want every role to list", err)
			}

			for _, op := range []struct {
				name    string
				allowed bool
				call    func() error
				check   func() error // the state the call must leave, by the admin key
			}{
				{"create", tt.create, func() error {
					_, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "new-" + tt.role})
					return err
				}, func() error { return exists(ctx, admin, "new-"+tt.role, tt.create) }},
				{"upload", tt.uploads, func() error {
					_, err := c.UploadImage(ctx, own, "/", "x.png", "image/png", tinyPNG(t, 2, 2), 0, 0)
					return err
				}, func() error {
					imgs, _, err := admin.ListImages(ctx, client.ImageQuery{Dataset: own})
					if err == nil && (len(imgs) == 1) != tt.uploads {
						err = fmt.Errorf("got %d images, want uploaded %v", len(imgs), tt.uploads)
					}
					return err
				}},
				{"rename", tt.rename, func() error {
					to := "renamed-" + tt.role
					_, err := c.UpdateDataset(ctx, own, client.UpdateDatasetRequest{NewName: &to})
					return err
				}, func() error { return exists(ctx, admin, "renamed-"+tt.role, tt.rename) }},
				{"delete", tt.del, func() error {
					name := own
					if tt.rename {
						name = "renamed-" + tt.role
					}
					_, err := c.DeleteDataset(ctx, name)
					return err
				}, func() error {
					name := own
					if tt.rename {
						name = "renamed-" + tt.role
					}
					return exists(ctx, admin, name, !tt.del)
				}},
			} {
				err := op.call()
				switch {
				case op.allowed && err != nil:
					t.Errorf("%s %s: got %v, want allowed", tt.role, op.name, err)
				case !op.allowed:
					wantAPIError(t, c, err, client.ErrForbidden, http.StatusForbidden, "forbidden")
				}
				if err := op.check(); err != nil {
					t.Errorf("%s %s: %v", tt.role, op.name, err)
				}
			}
		})
	}
}

// exists checks whether dataset name exists, as want says.
func exists(ctx context.Context, c *tc, name string, want bool) error {
	_, err := c.GetDataset(ctx, name)
	switch {
	case want && err != nil:
		return fmt.Errorf("dataset %q: got %v, want it to exist", name, err)
	case !want && !errors.Is(err, client.ErrNotFound):
		return fmt.Errorf("dataset %q: got %v, want ErrNotFound", name, err)
	}
	return nil
}

// TestOrganizationIsolation: a key of organization B gets 404 for every
// route on organization A's dataset and its images, by name and by id,
// never sees it in lists, and can use the same name for its own dataset.
func TestOrganizationIsolation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	a := newClient(t, srv, srv.AdminKey())
	orgB, keyB := testenv.NewOrganization(t, srv, "B", "owner")
	b := newClient(t, srv, keyB)

	dsA, err := a.CreateDataset(ctx, client.CreateDatasetRequest{Name: "secret", Classes: testClasses})
	if err != nil {
		t.Fatal(err)
	}
	data := tinyPNG(t, 9, 9)
	imA, err := a.UploadImage(ctx, "secret", "/train", "a.png", "image/png", data, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SaveAnnotationsAt(ctx, "secret", "/train", "a.png", json.RawMessage(`[{"id": "k", "name": "x", "type": "keypoint", "keypoint": {"x": 1, "y": 2}}]`)); err != nil {
		t.Fatal(err)
	}
	annA, err := a.AnnotationFile(ctx, imA.ID)
	if err != nil {
		t.Fatal(err)
	}

	newName := "stolen"
	for _, ref := range []string{"secret", dsA.ID} {
		for _, tt := range []struct {
			name string
			call func() error
		}{
			{"get", func() error { _, err := b.GetDataset(ctx, ref); return err }},
			{"include_images", func() error { _, err := b.DatasetImagesPage(ctx, ref, 10, 0); return err }},
			{"/images/", func() error { _, _, err := b.ListImages(ctx, client.ImageQuery{Dataset: ref}); return err }},
			{"download listing", func() error { _, err := b.DownloadListing(ctx, ref, client.DownloadOptions{}); return err }},
			{"image bytes", func() error { _, _, err := b.OpenImage(ctx, ref, "/train", "a.png", 0, 0); return err }},
			{"rename", func() error {
				_, err := b.UpdateDataset(ctx, ref, client.UpdateDatasetRequest{NewName: &newName})
				return err
			}},
			{"delete", func() error { _, err := b.DeleteDataset(ctx, ref); return err }},
			{"upload", func() error {
				_, err := b.UploadImage(ctx, ref, "/", "b.png", "image/png", data, 0, 0)
				return err
			}},
			{"save annotations", func() error {
				_, err := b.SaveAnnotationsAt(ctx, ref, "/train", "a.png", nil)
				return err
			}},
			{"delete annotations", func() error { _, err := b.DeleteAnnotations(ctx, ref, "/train", "a.png"); return err }},
			{"archive", func() error { return b.DeleteImage(ctx, ref, "/train", "a.png", false) }},
			{"export", func() error {
				_, err := b.CreateExport(ctx, client.CreateExportRequest{DatasetName: ref, Name: "steal"})
				return err
			}},
		} {
			t.Run(tt.name+" by "+map[bool]string{true: "name", false: "id"}[ref == "secret"], func(t *testing.T) {
				wantAPIError(t, b, tt.call(), client.ErrNotFound, http.StatusNotFound, "not_found")
			})
		}
	}
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"annotation file", func() error { _, err := b.AnnotationFile(ctx, imA.ID); return err }},
	} {
		t.Run(tt.name+" by image id", func(t *testing.T) {
			wantAPIError(t, b, tt.call(), client.ErrNotFound, http.StatusNotFound, "not_found")
		})
	}

	if res, err := b.BulkSaveAnnotations(ctx, []client.AnnotationSave{{ImageID: imA.ID}}); err != nil || len(res.Saved) != 0 || len(res.Failed) != 1 {
		t.Errorf("B's bulk save of A's image: got %+v, %v; want it in failed", res, err)
	}
	listB, err := b.AllDatasets(ctx)
	if err != nil || len(listB) != 0 {
		t.Errorf("B's list: got %d datasets, %v; want none", len(listB), err)
	}
	dsB, err := b.CreateDataset(ctx, client.CreateDatasetRequest{Name: "secret"})
	if err != nil || dsB.ID == dsA.ID || dsB.OrganizationID != orgB {
		t.Fatalf("B creates its own %q: got %+v, %v; want a new dataset of %s", "secret", dsB, err, orgB)
	}
	if _, err := a.GetDataset(ctx, dsB.ID); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("A gets B's dataset by id: got %v, want ErrNotFound", err)
	}
	for _, tt := range []struct {
		name string
		c    *tc
		want []string
	}{
		{"A", a, []string{dsA.ID}},
		{"B", b, []string{dsB.ID}},
	} {
		all, err := tt.c.AllDatasets(ctx)
		var ids []string
		for _, d := range all {
			ids = append(ids, d.ID)
		}
		if err != nil || !slices.Equal(ids, tt.want) {
			t.Errorf("%s's list: got %v, %v; want %v", tt.name, ids, err, tt.want)
		}
	}

	got, err := a.GetDataset(ctx, "secret")
	if err != nil || got.ID != dsA.ID || got.ImageCount != 1 {
		t.Errorf("A's dataset after B's attempts: got %+v, %v; want %s with 1 image", got, err, dsA.ID)
	}
	ann, err := a.AnnotationFile(ctx, imA.ID)
	if err != nil || string(ann) != string(annA) {
		t.Errorf("A's annotations after B's attempts: got %s, %v; want %s", ann, err, annA)
	}
}
