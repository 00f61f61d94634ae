package contract

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// poll is how often these tests poll an export (the contract advises 5 s;
// the devserver's builds here take a fraction of a second).
const poll = 100 * time.Millisecond

// fetchZip downloads an export through a fresh download link, without the
// key, and opens it.
func fetchZip(t *testing.T, c *tc, dataset, name string) (*zip.Reader, []byte) {
	t.Helper()
	link, err := c.ExportDownloadURL(t.Context(), dataset, name)
	if err != nil {
		t.Fatalf("ExportDownloadURL: %v", err)
	}
	body, n, err := c.OpenSigned(t.Context(), link, 0, -1)
	b := readAll(t, body, n, err)
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the export is not a ZIP: %v", err)
	}
	return zr, b
}

// memberName is the devserver's pictograph member of an image.
func memberName(prefix, dir, filename string) string {
	if d := strings.Trim(dir, "/"); d != "" {
		return prefix + d + "/" + filename
	}
	return prefix + filename
}

// exportDataset seeds a dataset of demo images (annotated, in train/ and
// val/) plus uploads with names that need escaping, some annotated through
// the save route, and returns its images.
func exportDataset(t *testing.T, srv *devserver.Server, c *tc, name string, demo int) []client.Image {
	t.Helper()
	ctx := t.Context()
	if _, err := srv.SeedDemo(ctx, srv.DefaultOrg(), name, demo); err != nil {
		t.Fatal(err)
	}
	ups := uploadAll(t, c, name)
	for i, u := range ups[:2] {
		anns := []client.Annotation{{Name: "circle", Type: "bbox", BoundingBox: &client.BoundingBox{X: float64(i), Y: 1, W: 2, H: 3}}}
		if _, err := saveAnns(t, c, name, u, anns); err != nil {
			t.Fatal(err)
		}
	}
	var all []client.Image
	if _, err := c.EachDatasetImage(ctx, name, 0, func(page []client.Image) error {
		all = append(all, page...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return all
}

// TestExportRoundTrip: create → poll → download link → ZIP, whose every
// member is byte-identical to what the per-image route answers for every
// image of the dataset; the whole costs 1 create, the polls and 1 link.
func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: 400 * time.Millisecond})
	c := newClient(t, srv, srv.MemberKey())
	images := exportDataset(t, srv, c, "shapes", 30)

	count := requests(c, srv)
	exportsBefore := srv.Stats().ExportRequests
	e, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "shapes", Name: "pictofs-1"})
	if err != nil {
		t.Fatalf("CreateExport: %v", err)
	}
	if e.Status != client.ExportPending || e.DownloadURL != "" || e.DatasetName != "shapes" || e.Format != client.FormatPictograph || e.IncludeImages {
		t.Errorf("created: got %+v, want a pending pictograph export of shapes without images or a link", e)
	}
	done, err := c.WaitExport(ctx, "shapes", "pictofs-1", poll)
	if err != nil {
		t.Fatalf("WaitExport: %v", err)
	}
	zr, raw := fetchZip(t, c, "shapes", "pictofs-1")
	cn, sn := count()
	if polls := srv.Stats().ExportRequests - exportsBefore; cn != sn || polls != cn || cn < 4 {
		t.Errorf("got %d requests sent, %d received, %d on /exports; want the same, at least a create, 2 polls and a link", cn, sn, polls)
	}
	annotations := 0
	for _, im := range images {
		annotations += im.AnnotationCount
	}
	if done.ImageCount != len(images) || done.AnnotationCount != annotations || done.FileSize != int64(len(raw)) ||
		done.ExpiresAt.Before(time.Now()) || done.DownloadURL == "" || done.ID != e.ID {
		t.Errorf("completed: got %+v, want %d images, %d annotations, %d bytes, an expiry and a link", done, len(images), annotations, len(raw))
	}
	members := testkit.ZipMembers(t, zr)
	if len(members) != len(images) {
		t.Errorf("got %d members, want one per image (%d)", len(members), len(images))
	}
	for _, im := range images {
		want, err := c.AnnotationFile(ctx, im.ID)
		if err != nil {
			t.Fatal(err)
		}
		name := memberName("annotations/", im.DirectoryPath, im.Filename+".json")
		if got, ok := members[name]; !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: got %q (present %v), want the per-image route's %q", name, got, ok, want)
		}
	}
	// The link in the completed export fetches the same ZIP.
	body, n, err := c.OpenExport(ctx, done.DownloadURL, 0, -1)
	if again := readAll(t, body, n, err); !bytes.Equal(again, raw) {
		t.Errorf("Export.DownloadURL: got %d bytes, want the %d of the download link", len(again), len(raw))
	}
	if srv.Stats().StorageSawAPIKey != 0 {
		t.Error("the storage host saw the API key")
	}
	noRetries(t, c)
}

// TestExportWithImagesBySplit: include_images and organize_by_split put
// each image's document and bytes under its split.
func TestExportWithImagesBySplit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: -1})
	c := newClient(t, srv, srv.MemberKey())
	images := exportDataset(t, srv, c, "split", 6)
	yes := true
	if _, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "split", Name: "s", IncludeImages: true, OrganizeBySplit: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitExport(ctx, "split", "s", poll); err != nil {
		t.Fatal(err)
	}
	zr, _ := fetchZip(t, c, "split", "s")
	members := testkit.ZipMembers(t, zr)
	if len(members) != 2*len(images) {
		t.Errorf("got %d members, want a document and an image per image (%d)", len(members), 2*len(images))
	}
	for _, im := range images {
		split := "unassigned"
		if im.Split != nil {
			split = *im.Split
		}
		doc, err := c.AnnotationFile(ctx, im.ID)
		if err != nil {
			t.Fatal(err)
		}
		body, n, err := c.OpenImage(ctx, "split", im.DirectoryPath, im.Filename, 0, -1)
		data := readAll(t, body, n, err)
		for name, want := range map[string][]byte{
			memberName(split+"/annotations/", im.DirectoryPath, im.Filename+".json"): doc,
			memberName(split+"/images/", im.DirectoryPath, im.Filename):              data,
		} {
			if got, ok := members[name]; !ok || !bytes.Equal(got, want) {
				t.Errorf("%s: got %d bytes (present %v), want the %d of the per-image route", name, len(got), ok, len(want))
			}
		}
	}
}

// TestExportIsASnapshot: an edit after the build is not in the ZIP; the
// per-image route has it.
func TestExportIsASnapshot(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: -1})
	c := newClient(t, srv, srv.MemberKey())
	images := exportDataset(t, srv, c, "snap", 3)
	target := images[0]
	before, err := c.AnnotationFile(ctx, target.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "snap", Name: "then"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitExport(ctx, "snap", "then", poll); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SaveAnnotationsAt(ctx, "snap", target.DirectoryPath, target.Filename, json.RawMessage(`[]`)); err != nil {
		t.Fatal(err)
	}
	after, err := c.AnnotationFile(ctx, target.ID)
	if err != nil || bytes.Equal(after, before) {
		t.Fatalf("the edit changed nothing: %s, %v", after, err)
	}
	zr, _ := fetchZip(t, c, "snap", "then")
	if got := testkit.ZipMembers(t, zr)[memberName("annotations/", target.DirectoryPath, target.Filename+".json")]; !bytes.Equal(got, before) {
		t.Errorf("after an edit: got member %s, want the document at build time %s", got, before)
	}
}

// TestExportNames: a duplicate name in a dataset is ErrConflict; the same
// name in another dataset is not; names are looked up in their dataset,
// ids without one; the client refuses the status filters that build
// empty exports before sending anything.
func TestExportNames(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: -1})
	c := newClient(t, srv, srv.MemberKey())
	for _, ds := range []string{"one", "two"} {
		if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: ds}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "one", Name: "nightly / 1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "one", Name: "nightly / 1", IncludeImages: true})
	wantAPIError(t, c, err, client.ErrConflict, http.StatusConflict, "conflict")
	second, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "two", Name: "nightly / 1"})
	if err != nil || second.ID == first.ID {
		t.Fatalf("the same name in another dataset: got %+v, %v; want a new export", second, err)
	}
	for _, tt := range []struct{ dataset, ref, want string }{
		{"one", "nightly / 1", first.ID}, {"two", "nightly / 1", second.ID}, {"", first.ID, first.ID}, {"two", second.ID, second.ID},
	} {
		if e, err := c.GetExport(ctx, tt.dataset, tt.ref); err != nil || e.ID != tt.want {
			t.Errorf("GetExport(%q, %q): got %+v, %v; want %s", tt.dataset, tt.ref, e, err, tt.want)
		}
	}
	_, err = c.GetExport(ctx, "", "nightly / 1")
	wantAPIError(t, c, err, client.ErrNotFound, http.StatusNotFound, "not_found")
	_, err = c.GetExport(ctx, "one", "nope")
	wantAPIError(t, c, err, client.ErrNotFound, http.StatusNotFound, "not_found")

	count := requests(c, srv)
	for _, sf := range []string{"all", "in_progress", "finished"} {
		if _, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "one", Name: "x", StatusFilter: sf}); !errors.Is(err, client.ErrValidation) {
			t.Errorf("status_filter %q: got %v, want ErrValidation", sf, err)
		}
	}
	_, err = c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "one", Name: strings.Repeat("n", 101)})
	if !errors.Is(err, client.ErrValidation) {
		t.Errorf("a name of 101 characters: got %v, want ErrValidation", err)
	}
	wantRequests(t, "refused locally", count, 0)
	_, err = c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "one", Name: "y", Format: "yolo"})
	wantAPIError(t, c, err, client.ErrValidation, http.StatusUnprocessableEntity, "unsupported_format")
}

// TestExportFailedBuild: a failed build has its error_message, WaitExport
// says ErrExportFailed, and there is nothing to download.
func TestExportFailedBuild(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: 200 * time.Millisecond, ExportFailRate: 1})
	c := newClient(t, srv, srv.MemberKey())
	if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "f"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: "f", Name: "doomed"}); err != nil {
		t.Fatal(err)
	}
	e, err := c.WaitExport(ctx, "f", "doomed", poll)
	if !errors.Is(err, client.ErrExportFailed) || e == nil || e.Status != client.ExportFailed || e.ErrorMessage == "" || !strings.Contains(err.Error(), e.ErrorMessage) {
		t.Fatalf("got %+v, %v; want a failed export with its error message", e, err)
	}
	_, err = c.ExportDownloadURL(ctx, "f", "doomed")
	wantAPIError(t, c, err, client.ErrConflict, http.StatusConflict, "export_not_ready")
}

// TestExportDeletes: members cannot delete exports, admins and owners
// can, one by one or in bulk.
func TestExportDeletes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: -1})
	member := newClient(t, srv, srv.MemberKey())
	admin := newClient(t, srv, srv.AdminKey())
	ownerKey, err := srv.CreateKey(ctx, srv.DefaultOrg(), "owner")
	if err != nil {
		t.Fatal(err)
	}
	owner := newClient(t, srv, ownerKey)
	if _, err := member.CreateDataset(ctx, client.CreateDatasetRequest{Name: "d"}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 4 {
		e, err := member.CreateExport(ctx, client.CreateExportRequest{DatasetName: "d", Name: fmt.Sprint("e", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	wantAPIError(t, member, member.DeleteExport(ctx, "d", "e0"), client.ErrForbidden, http.StatusForbidden, "forbidden")
	_, err = member.BulkDeleteExports(ctx, ids)
	wantAPIError(t, member, err, client.ErrForbidden, http.StatusForbidden, "forbidden")
	if err := admin.DeleteExport(ctx, "d", "e0"); err != nil {
		t.Fatalf("admin DeleteExport: %v", err)
	}
	if err := owner.DeleteExport(ctx, "", ids[1]); err != nil {
		t.Fatalf("owner DeleteExport by id: %v", err)
	}
	_, err = member.GetExport(ctx, "d", "e0")
	wantAPIError(t, member, err, client.ErrNotFound, http.StatusNotFound, "not_found")
	wantAPIError(t, admin, admin.DeleteExport(ctx, "d", "e0"), client.ErrNotFound, http.StatusNotFound, "not_found")
	res, err := admin.BulkDeleteExports(ctx, []string{ids[2], ids[0], ids[3], "not-an-id"})
	if err != nil || fmt.Sprint(res.Succeeded) != fmt.Sprint([]string{ids[2], ids[3]}) || fmt.Sprint(res.NotFound) != fmt.Sprint([]string{ids[0], "not-an-id"}) || res.Count != 2 {
		t.Errorf("BulkDeleteExports: got %+v, %v; want %s and %s deleted, the others not found", res, err, ids[2], ids[3])
	}
	if left, err := member.AllExports(ctx, client.ExportQuery{DatasetName: "d"}); err != nil || len(left) != 0 {
		t.Errorf("after the deletes: got %d exports, %v; want none", len(left), err)
	}
}

// TestExportListing: the listing is paged at the server's cap with
// has_more, newest first, and filtered by dataset and status.
func TestExportListing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: -1, ExportListCap: 3})
	c := newClient(t, srv, srv.MemberKey())
	for _, ds := range []string{"a", "b"} {
		if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: ds}); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range 8 {
		ds := []string{"a", "b"}[i%2]
		e, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: ds, Name: fmt.Sprint("x", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitExport(ctx, "", e.ID, poll); err != nil {
			t.Fatal(err)
		}
		want = append([]string{e.Name}, want...)
	}
	count := requests(c, srv)
	all, err := c.AllExports(ctx, client.ExportQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range all {
		got = append(got, e.Name)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("AllExports: got %v, want %v (newest first)", got, want)
	}
	wantRequests(t, "AllExports at a cap of 3", count, 3)
	page, p, err := c.ListExports(ctx, client.ExportQuery{DatasetName: "b", Status: client.ExportCompleted}, 2, 2)
	if err != nil || len(page) != 2 || p == nil || p.Total != 4 || p.HasMore || page[0].Name != "x3" || page[0].DatasetName != "b" {
		t.Errorf("ListExports(b, completed, 2, 2): got %d exports (first %+v), %+v, %v; want x3 and x1 of 4, no more", len(page), page, p, err)
	}
	if page, _, err := c.ListExports(ctx, client.ExportQuery{Status: client.ExportPending}, 0, 0); err != nil || len(page) != 0 {
		t.Errorf("pending: got %d, %v; want none", len(page), err)
	}
}

// TestBigExport builds a pictograph export of the 25,000-image dataset:
// the build streams (the heap stays small), the server answers while it
// builds, and the ZIP holds one document per image, equal to the
// per-image route's.
func TestBigExport(t *testing.T) {
	if raceEnabled {
		// The heap is not checked under the race detector: the test may
		// share the process with others. Without it, the test runs alone.
		t.Parallel()
	}
	ctx := t.Context()
	srv, _ := startBig(t, devserver.Options{ExportDelay: -1})
	c := newClient(t, srv, srv.MemberKey())
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	start := time.Now()
	if _, err := c.CreateExport(ctx, client.CreateExportRequest{DatasetName: bigName, Name: "all"}); err != nil {
		t.Fatal(err)
	}
	polls := 0
	var e *client.Export
	for {
		var err error
		if e, err = c.GetExport(ctx, bigName, "all"); err != nil {
			t.Fatalf("a poll while the export builds: %v", err)
		}
		polls++
		if e.Done() {
			break
		}
		time.Sleep(poll)
	}
	close(stop)
	wg.Wait()
	t.Logf("25,000-image export built in %v (%d polls, %d bytes); heap in use %d MiB before, peak %d MiB",
		time.Since(start).Round(time.Millisecond), polls, e.FileSize, base>>20, peak>>20)
	if e.Status != client.ExportCompleted || e.ImageCount != bigImages {
		t.Fatalf("got %+v, want completed with %d images", e, bigImages)
	}
	// Measured without the race detector: about 11 MiB (the client, the
	// polls and the build share this process). A build that held the
	// documents or the ZIP in memory would add their size at least.
	if grew := int64(peak) - int64(base); grew > 48<<20 && !raceEnabled {
		t.Errorf("the heap grew by %d MiB during the build, want under 48 MiB (the build must stream)", grew>>20)
	}
	zr, _ := fetchZip(t, c, bigName, "all")
	if len(zr.File) != bigImages {
		t.Fatalf("got %d members, want %d", len(zr.File), bigImages)
	}
	imgs, _, err := c.ListImages(ctx, client.ImageQuery{Dataset: bigName, Offset: bigImages - 2, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*zip.File{}
	for _, f := range zr.File {
		byName[f.Name] = f
	}
	for _, im := range imgs {
		want, err := c.AnnotationFile(ctx, im.ID)
		if err != nil {
			t.Fatal(err)
		}
		f := byName["annotations/"+im.Filename+".json"]
		if f == nil {
			t.Fatalf("no member for %s", im.Filename)
		}
		rc, _ := f.Open()
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %s, want %s", im.Filename, got, want)
		}
	}
}

// exportAPI is the part of the client a mount's export snapshot uses; the
// check keeps the signatures the lead builds on.
var _ interface {
	CreateExport(context.Context, client.CreateExportRequest) (*client.Export, error)
	GetExport(context.Context, string, string) (*client.Export, error)
	ExportDownloadURL(context.Context, string, string) (string, error)
	ListExports(context.Context, client.ExportQuery, int, int) ([]client.Export, *client.Pagination, error)
	AllExports(context.Context, client.ExportQuery) ([]client.Export, error)
	DeleteExport(context.Context, string, string) error
	BulkDeleteExports(context.Context, []string) (*client.BulkDeleteResult, error)
	OpenSigned(context.Context, string, int64, int64) (io.ReadCloser, int64, error)
} = (*client.Client)(nil)
