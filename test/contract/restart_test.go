package contract

import (
	"bytes"
	"net/url"
	"testing"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// snapshot is what a client sees of a server, without the URLs that
// name its (changing) ports.
type snapshot struct {
	datasets    []client.Dataset
	images      map[string][]client.Image // by dataset id
	bytes       map[string][]byte         // by image id, via signed URLs
	annotations map[string][]byte         // by image id
}

func takeSnapshot(t *testing.T, c *tc) snapshot {
	t.Helper()
	ctx := t.Context()
	s := snapshot{images: map[string][]client.Image{}, bytes: map[string][]byte{}, annotations: map[string][]byte{}}
	var err error
	if s.datasets, err = c.AllDatasets(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range s.datasets {
		err := c.EachImage(ctx, client.ImageQuery{Dataset: d.ID}, func(page []client.Image) error {
			for _, im := range page {
				im.ImageURL, im.ThumbnailURL, im.AnnotationURL = "", "", ""
				s.images[d.ID] = append(s.images[d.ID], im)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		l, err := c.DownloadListing(ctx, d.ID, client.DownloadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			body, n, err := c.OpenSigned(ctx, it.ImageURL, 0, 0)
			s.bytes[it.ID] = readAll(t, body, n, err)
			if s.annotations[it.ID], err = c.AnnotationFile(ctx, it.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// TestRestartPersistence closes the server and opens a new one on the same
// data directory: the same keys work, and datasets, images, annotations and
// bytes are intact.
func TestRestartPersistence(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	srv := testenv.StartServer(t, devserver.Options{DataDir: dir})
	adminKey, memberKey := srv.AdminKey(), srv.MemberKey()
	viewerKey, err := srv.CreateKey(ctx, srv.DefaultOrg(), "viewer")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv, memberKey)
	for _, name := range []string{"first", "second set"} {
		if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: name, Description: "about " + name,
			Classes: []client.Class{{Name: "car", Type: "bbox", Color: "#ff0000"}}}); err != nil {
			t.Fatal(err)
		}
	}
	ups := uploadAll(t, c, "first")
	if _, err := saveAnns(t, c, "first", ups[0], []client.Annotation{{ID: "a", Name: "car", Type: "bbox",
		BoundingBox: &client.BoundingBox{X: 1, Y: 2, W: 3, H: 4}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SeedDemo(ctx, srv.DefaultOrg(), "demo", 6); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, c)
	l, err := c.DownloadListing(ctx, "first", client.DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldURL, err := url.Parse(l.Items[0].ImageURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	srv2 := testenv.StartServer(t, devserver.Options{DataDir: dir})
	if srv2.AdminKey() != adminKey || srv2.MemberKey() != memberKey {
		t.Errorf("keys after restart: got %s…/%s…, want the first start's", srv2.AdminKey()[:12], srv2.MemberKey()[:12])
	}
	for _, k := range []struct{ role, key string }{{"admin", adminKey}, {"member", memberKey}, {"viewer", viewerKey}} {
		me, err := newClient(t, srv2, k.key).Me(ctx)
		if err != nil || me.Role != k.role {
			t.Errorf("%s key after restart: got %+v, %v; want role %s", k.role, me, err, k.role)
		}
	}
	c2 := newClient(t, srv2, memberKey)
	after := takeSnapshot(t, c2)

	if len(after.datasets) != len(before.datasets) || len(before.datasets) != 3 {
		t.Fatalf("datasets: got %d after restart, %d before, want 3", len(after.datasets), len(before.datasets))
	}
	for i, d := range before.datasets {
		a := after.datasets[i]
		if a.ID != d.ID || a.Name != d.Name || a.Description != d.Description || a.ImageCount != d.ImageCount ||
			a.TotalSize != d.TotalSize || !a.CreatedAt.Equal(d.CreatedAt) || len(a.Classes) != len(d.Classes) {
			t.Errorf("dataset %d: got %+v after restart, want %+v", i, a, d)
		}
		bi, ai := before.images[d.ID], after.images[d.ID]
		if len(ai) != len(bi) || len(bi) != d.ImageCount {
			t.Errorf("dataset %s: got %d images after restart, %d before, want %d", d.Name, len(ai), len(bi), d.ImageCount)
			continue
		}
		for j := range bi {
			if !sameImage(ai[j], bi[j]) {
				t.Errorf("image %d of %s: got %+v after restart, want %+v", j, d.Name, ai[j], bi[j])
			}
		}
	}
	if len(before.bytes) != 10 {
		t.Errorf("got %d images read before the restart, want 10", len(before.bytes))
	}
	for id, b := range before.bytes {
		if !bytes.Equal(after.bytes[id], b) {
			t.Errorf("image %s: got %d bytes after restart, want the %d before", id, len(after.bytes[id]), len(b))
		}
		if !bytes.Equal(after.annotations[id], before.annotations[id]) {
			t.Errorf("image %s: got annotations %s after restart, want %s", id, after.annotations[id], before.annotations[id])
		}
	}
	for _, u := range ups {
		body, n, err := c2.OpenImage(ctx, "first", u.dir, u.name, 0, 0)
		if got := readAll(t, body, n, err); !bytes.Equal(got, u.data) {
			t.Errorf("%s after restart: got %d bytes, want the %d uploaded", u.name, len(got), len(u.data))
		}
	}

	// The signing secret persists: a URL signed before the restart still
	// verifies on the new storage listener.
	moved, err := url.Parse(srv2.StorageURL())
	if err != nil {
		t.Fatal(err)
	}
	oldURL.Host = moved.Host
	body, n, err := c2.OpenSigned(ctx, oldURL.String(), 0, 0)
	if got := readAll(t, body, n, err); !bytes.Equal(got, before.bytes[l.Items[0].ID]) {
		t.Errorf("URL signed before the restart: got %d bytes, want %d", len(got), len(before.bytes[l.Items[0].ID]))
	}
}

func sameImage(a, b client.Image) bool {
	return a.ID == b.ID && a.DatasetID == b.DatasetID && a.Filename == b.Filename && a.DirectoryPath == b.DirectoryPath &&
		a.Status == b.Status && a.AnnotationCount == b.AnnotationCount && a.FileSize == b.FileSize &&
		a.Width == b.Width && a.Height == b.Height && a.ContentType == b.ContentType && a.CreatedAt.Equal(b.CreatedAt)
}
