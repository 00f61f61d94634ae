package catalog_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/sharedcache/redistest"
)

// readEveryDocument opens every document of the dataset through the
// catalog and compares it, byte for byte, with the per-image route's
// (fetched with a second client, so those requests are counted apart).
func readEveryDocument(t *testing.T, e *testenv.Stack, name string, route map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	ds, all, _ := images(t, e, name)
	for _, im := range all {
		doc, err := e.Catalog.OpenAnnotation(ctx, ds, im)
		if err != nil {
			t.Fatalf("OpenAnnotation(%s): %v", im.Name(), err)
		}
		got := readDoc(t, doc)
		if want := route[im.ID()]; !bytes.Equal(got, want) {
			t.Errorf("%s: got document %q, want the per-image route's %q", im.Name(), got, want)
		}
		if size, ok := e.Catalog.KnownAnnotationSize(ds, im); !ok || size != int64(len(got)) {
			t.Errorf("%s: known size %d (%v), want %d", im.Name(), size, ok, len(got))
		}
	}
}

// routeDocuments fetches every document of the dataset on the per-image
// route: what the catalog must serve, whatever its source.
func routeDocuments(t *testing.T, srv *devserver.Server, name string) map[string][]byte {
	t.Helper()
	api := testenv.Client(t, srv, srv.AdminKey())
	docs := map[string][]byte{}
	_, err := api.EachDatasetImage(context.Background(), name, 0, func(page []client.Image) error {
		for _, img := range page {
			if img.AnnotationCount == 0 {
				docs[img.ID] = []byte("{\n  \"image\": \"" + img.Filename + "\",\n  \"annotations\": []\n}")
				continue
			}
			docs[img.ID] = routeDocument(t, api, img.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func exportsLeft(t *testing.T, srv *devserver.Server) int {
	t.Helper()
	api := testenv.Client(t, srv, srv.AdminKey())
	all, err := api.AllExports(context.Background(), client.ExportQuery{})
	if err != nil {
		t.Fatalf("AllExports: %v", err)
	}
	return len(all)
}

// TestBulkDocumentsComeFromOneExport: every document of a dataset is served
// from one export, byte-identical to the per-image route's, for a handful
// of requests; the export is deleted once downloaded; a remount over the
// same cache serves them all with no request.
func TestBulkDocumentsComeFromOneExport(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: 500 * time.Millisecond})
	seed(t, srv, "set", 400, 4)
	route := routeDocuments(t, srv, "set")
	cacheDir := t.TempDir()
	srv.ResetStats()

	e := newEnv(t, srv, cacheDir, nil)
	readEveryDocument(t, e, "set", route)
	st := srv.Stats()
	cs := e.Catalog.Stats()
	if cs.DocsFromExport != 200 || cs.ExportsCompleted != 1 {
		t.Errorf("catalog: %+v; want 200 documents from 1 export", cs)
	}
	// datasets, listing, create, polls (1 s then 2 s…), download link, delete, one check
	if st.APIRequests > 10 || st.AnnotationFiles > 1 {
		t.Errorf("reading 400 documents cost %d API requests (%d per-image, %d export), want at most 10 with at most 1 per-image",
			st.APIRequests, st.AnnotationFiles, st.ExportRequests)
	}
	if n := exportsLeft(t, srv); n != 0 {
		t.Errorf("%d exports left on the server, want 0 (deleted once downloaded)", n)
	}
	e.Close()

	srv.ResetStats()
	again := newEnv(t, srv, cacheDir, nil)
	fillsBefore := again.Cache.Stats().Fills
	readEveryDocument(t, again, "set", route)
	if st := srv.Stats(); st.AnnotationFiles != 0 || st.ExportRequests != 0 {
		t.Errorf("remount: %d per-image and %d export requests, want 0 and 0", st.AnnotationFiles, st.ExportRequests)
	}
	// The documents the first mount cut out of the ZIP are cache blobs the
	// remount finds: it writes none again.
	if got := again.Cache.Stats().Fills - fillsBefore; got != 0 {
		t.Errorf("remount: %d cache fills, want 0 (every document a blob of the first mount)", got)
	}
}

// TestBulkFallsBackToThePerImageRoute: when exports fail, or never
// complete, every document still comes, right, from the per-image route.
func TestBulkFallsBackToThePerImageRoute(t *testing.T) {
	tests := []struct {
		name string
		srv  devserver.Options
		wait time.Duration
	}{
		{"build fails", devserver.Options{ExportDelay: 200 * time.Millisecond, ExportFailRate: 1}, 0},
		{"build never completes", devserver.Options{ExportDelay: time.Hour}, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := testenv.StartServer(t, tt.srv)
			seed(t, srv, "set", 60, 2)
			route := routeDocuments(t, srv, "set")
			srv.ResetStats()
			e := newEnv(t, srv, "", func(o *catalog.Options) { o.Bulk.Wait = tt.wait })
			start := time.Now()
			readEveryDocument(t, e, "set", route)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("reading 60 documents took %v", took)
			}
			if got := srv.Stats().AnnotationFiles; got != 30 {
				t.Errorf("per-image requests: got %d, want 30 (one per annotated image)", got)
			}
			if cs := e.Catalog.Stats(); cs.DocsFromExport != 0 {
				t.Errorf("documents from an export that did not complete: %d", cs.DocsFromExport)
			}
		})
	}
}

// TestBulkIsRebuiltAfterTheTTL: a document changed on the server shows once
// the snapshot is older than AnnotationTTL.
func TestBulkIsRebuiltAfterTheTTL(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: 100 * time.Millisecond})
	seed(t, srv, "set", 20, 1)
	const ttl = 3 * time.Second
	e := newEnv(t, srv, "", func(o *catalog.Options) { o.AnnotationTTL = ttl; o.ListTTL = ttl })
	ctx := context.Background()
	ds, all, _ := images(t, e, "set")
	im := all[0]
	before := readDoc(t, must(e.Catalog.OpenAnnotation(ctx, ds, im)))
	if err := srv.SetAnnotations(ctx, srv.DefaultOrg(), im.ID(), []devserver.Annotation{
		{ID: "changed", Name: "square", Type: "bbox", BoundingBox: &devserver.BoundingBox{X: 2, Y: 2, W: 3, H: 3}},
	}); err != nil {
		t.Fatal(err)
	}
	if got := readDoc(t, must(e.Catalog.OpenAnnotation(ctx, ds, im))); !bytes.Equal(got, before) {
		t.Errorf("within the TTL the document changed: got %q", got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds, all, _ = images(t, e, "set")
		got := readDoc(t, must(e.Catalog.OpenAnnotation(ctx, ds, all[0])))
		if bytes.Contains(got, []byte(`"changed"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the change, the document is still %q", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if cs := e.Catalog.Stats(); cs.ExportsCompleted < 2 {
		t.Errorf("exports completed: %d, want a rebuild", cs.ExportsCompleted)
	}
}

// TestBulkWaitsForTheExportWhenTheBudgetRunsLow: with the hourly budget
// nearly spent, a read waits for the building export (up to WaitTimeout)
// instead of spending a request, and succeeds.
func TestBulkWaitsForTheExportWhenTheBudgetRunsLow(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: 2 * time.Second})
	seed(t, srv, "set", 40, 1)
	route := routeDocuments(t, srv, "set")
	api := testenv.Client(t, srv, srv.AdminKey(), func(o *client.Options) { o.RequestsPerHour = 30 })
	srv.ResetStats()
	e := newEnv(t, srv, "", func(o *catalog.Options) {
		o.API = api
		o.Bulk.Wait = -1      // without a low budget, reads would not wait at all
		o.Bulk.LowBudget = 29 // low once the listing is done
	})
	readEveryDocument(t, e, "set", route)
	if got := srv.Stats().AnnotationFiles; got > 1 {
		t.Errorf("per-image requests with the budget low: got %d, want at most 1 (the check of the export)", got)
	}
	if e.Catalog.Stats().ExportWaits == 0 {
		t.Error("no read waited for the export")
	}
}

// TestBulkSnapshotIsSharedThroughTheTier: with a shared tier, a second
// node gets the first node's export from it: no export of its own.
func TestBulkSnapshotIsSharedThroughTheTier(t *testing.T) {
	redis := redistest.Start(t)
	srv := testenv.StartServer(t, devserver.Options{ExportDelay: 300 * time.Millisecond})
	seed(t, srv, "set", 100, 2)
	route := routeDocuments(t, srv, "set")
	ns := srv.APIURL() + "/" + srv.DefaultOrg()
	tier := newTier(t, redis.URL(), ns)
	first := newEnv(t, srv, "", func(o *catalog.Options) { o.SharedCache = tier })
	readEveryDocument(t, first, "set", route)
	if err := tier.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.ResetStats()
	second := newEnv(t, srv, "", func(o *catalog.Options) { o.SharedCache = newTier(t, redis.URL(), ns) })
	readEveryDocument(t, second, "set", route)
	if st := srv.Stats(); st.APIRequests != 0 {
		t.Errorf("second node: %d API requests (%d export, %d per-image), want 0", st.APIRequests, st.ExportRequests, st.AnnotationFiles)
	}
	if cs := second.Catalog.Stats(); cs.DocsFromExport != 50 {
		t.Errorf("second node: %d documents from the export, want 50", cs.DocsFromExport)
	}
}

func must(doc catalog.Doc, err error) catalog.Doc {
	if err != nil {
		panic(err)
	}
	return doc
}
