package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// seed makes a synthetic dataset of n images in dirs folders; even images
// carry one box, odd ones none.
func seed(t *testing.T, srv *devserver.Server, name string, n, dirs int) {
	t.Helper()
	if err := srv.SeedSynthetic(context.Background(), srv.DefaultOrg(), name, n, dirs); err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
}

// newEnv opens a catalog of srv over the real client, cache and prefetcher
// (eight workers, no free-space floor), without FUSE.
func newEnv(t *testing.T, srv *devserver.Server, cacheDir string, tweak func(*catalog.Options)) *testenv.Stack {
	t.Helper()
	return testenv.OpenStack(t, srv, testenv.Options{CacheDir: cacheDir, Workers: 8, MinFree: -1, Catalog: tweak})
}

// images returns every image of the dataset with its folder, walking the
// catalog as a listing would.
func images(t *testing.T, e *testenv.Stack, name string) (*catalog.Dataset, []*catalog.Image, map[*catalog.Image]*catalog.Dir) {
	t.Helper()
	ctx := context.Background()
	ds, err := e.Catalog.Dataset(ctx, name)
	if err != nil {
		t.Fatalf("Dataset(%q): %v", name, err)
	}
	var all []*catalog.Image
	dirOf := map[*catalog.Image]*catalog.Dir{}
	var walk func(key string)
	walk = func(key string) {
		d, err := e.Catalog.Dir(ctx, ds, key)
		if err != nil {
			t.Fatalf("Dir(%q): %v", key, err)
		}
		for _, im := range d.Images() {
			all = append(all, im)
			dirOf[im] = d
		}
		for _, sub := range d.Dirs() {
			walk(sub.Key())
		}
	}
	walk("")
	return ds, all, dirOf
}

// routeDocument is the image's document from the per-image route,
// re-indented as the SDK writes it: what the catalog must serve.
func routeDocument(t *testing.T, api *client.Client, imageID string) []byte {
	t.Helper()
	doc, err := testenv.Document(context.Background(), api, imageID)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func readDoc(t *testing.T, doc catalog.Doc) []byte {
	t.Helper()
	defer doc.Release()
	if doc.Handle == nil {
		return doc.Data
	}
	b, err := io.ReadAll(io.NewSectionReader(doc.Handle.File(), 0, doc.Handle.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestListingNamesCostsNoDocuments(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	seed(t, srv, "set", 300, 3)
	e := newEnv(t, srv, "", func(o *catalog.Options) { o.Bulk.Disable = true })
	srv.ResetStats()

	_, all, _ := images(t, e, "set")
	if len(all) != 300 {
		t.Fatalf("listed %d images, want 300", len(all))
	}
	ds, _ := e.Catalog.Dataset(context.Background(), "set")
	known := 0
	for _, im := range all {
		size, ok := e.Catalog.KnownAnnotationSize(ds, im)
		if ok != (im.AnnotationCount() == 0) {
			t.Errorf("%s: KnownAnnotationSize ok = %v with %d annotations", im.Name(), ok, im.AnnotationCount())
		}
		if ok {
			known++
			if size <= 0 {
				t.Errorf("%s: known size %d", im.Name(), size)
			}
		}
	}
	st := srv.Stats()
	if st.AnnotationFiles != 0 {
		t.Errorf("listing and naming fetched %d documents, want 0", st.AnnotationFiles)
	}
	// datasets + include_images (300 images: one page) and nothing else.
	if st.APIRequests > 2 {
		t.Errorf("listing cost %d API requests, want at most 2", st.APIRequests)
	}
	if known != 150 {
		t.Errorf("%d sizes known without a request, want 150 (the unannotated half)", known)
	}
}

func TestDocumentsEqualThePerImageRoute(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	seed(t, srv, "set", 60, 2)
	e := newEnv(t, srv, "", func(o *catalog.Options) { o.Bulk.Disable = true })
	ds, all, _ := images(t, e, "set")
	srv.ResetStats()
	for _, im := range all {
		doc, err := e.Catalog.OpenAnnotation(context.Background(), ds, im)
		if err != nil {
			t.Fatalf("OpenAnnotation(%s): %v", im.Name(), err)
		}
		got := readDoc(t, doc)
		size, err := e.Catalog.AnnotationSize(context.Background(), ds, im)
		if err != nil || size != int64(len(got)) {
			t.Errorf("%s: AnnotationSize = %d, %v; want %d", im.Name(), size, err, len(got))
		}
		if want := routeDocument(t, e.API, im.ID()); !bytes.Equal(got, want) {
			t.Errorf("%s: got document %q, want %q", im.Name(), got, want)
		}
	}
	// One request per annotated image from the catalog (30), plus the 60
	// the test itself made to compare.
	if got := srv.Stats().AnnotationFiles; got != 30+60 {
		t.Errorf("per-image requests: got %d, want 90 (30 by the catalog, 60 by the test)", got)
	}
}

func TestStatAheadFollowsListingOrder(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	seed(t, srv, "set", 400, 1)
	e := newEnv(t, srv, "", func(o *catalog.Options) { o.Bulk.Disable = true })
	ds, all, dirOf := images(t, e, "set")
	ctx := context.Background()
	var annotated []*catalog.Image
	for _, im := range all {
		if im.AnnotationCount() > 0 {
			annotated = append(annotated, im)
		}
	}

	t.Run("random stats fetch nothing ahead", func(t *testing.T) {
		before := e.Catalog.Stats().DocsAhead
		for _, i := range []int{150, 3, 77, 190, 12} {
			im := annotated[i]
			e.Catalog.StatAhead(ds, dirOf[im], im)
			if _, err := e.Catalog.AnnotationSize(ctx, ds, im); err != nil {
				t.Fatal(err)
			}
		}
		if got := e.Catalog.Stats().DocsAhead - before; got != 0 {
			t.Errorf("random stats fetched %d documents ahead, want 0", got)
		}
	})

	t.Run("sequential stats widen a window", func(t *testing.T) {
		before := e.Catalog.Stats().DocsAhead
		seq := all[200:300]
		for _, im := range seq {
			e.Catalog.StatAhead(ds, dirOf[im], im)
			if _, err := e.Catalog.AnnotationSize(ctx, ds, im); err != nil {
				t.Fatal(err)
			}
		}
		got := e.Catalog.Stats().DocsAhead - before
		// The documents ahead are those of the run (about half annotated),
		// plus at most one window past its end.
		if got < 20 || got > 50+32 {
			t.Errorf("sequential stats fetched %d documents ahead, want between 20 and 82", got)
		}
	})
}

func TestWaitTimeoutBoundsAListing(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	seed(t, srv, "set", 10, 1)
	e := newEnv(t, srv, "", func(o *catalog.Options) { o.WaitTimeout = 300 * time.Millisecond })
	srv.SetFaults(devserver.Faults{APILatency: 2 * time.Second})
	start := time.Now()
	_, err := e.Catalog.Datasets(context.Background())
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Datasets over a 2 s API with a 300 ms bound: got %v, want a deadline error", err)
	}
	if took > time.Second {
		t.Errorf("Datasets waited %v, want about 300 ms", took)
	}
	// The listing went on in the background: a later call finds it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := e.Catalog.Datasets(context.Background()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listing never completed in the background")
		}
	}
}

func TestInodeNumbersAreStableAndDistinct(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	seed(t, srv, "set", 50, 3)
	a := newEnv(t, srv, "", nil)
	b := newEnv(t, srv, "", nil)
	dsA, imsA, _ := images(t, a, "set")
	dsB, imsB, _ := images(t, b, "set")
	seen := map[uint64]string{catalog.RootIno: "root"}
	add := func(ino uint64, what string) {
		if prev, dup := seen[ino]; dup {
			t.Errorf("inode %d of %s is also %s's", ino, what, prev)
		}
		seen[ino] = what
	}
	add(catalog.DatasetIno(dsA), "dataset")
	add(catalog.DatasetJSONIno(dsA), "dataset.json")
	add(catalog.DirIno(dsA, false, ""), "images/")
	add(catalog.DirIno(dsA, true, ""), "annotations/")
	for i, im := range imsA {
		add(catalog.ImageIno(dsA, im), im.Name())
		add(catalog.AnnotationIno(dsA, im), im.Name()+".json")
		if got, want := catalog.ImageIno(dsB, imsB[i]), catalog.ImageIno(dsA, im); got != want {
			t.Errorf("%s: inode %d in one catalog, %d in another", im.Name(), got, want)
		}
	}
	if catalog.DatasetIno(dsA) != catalog.DatasetIno(dsB) {
		t.Error("dataset inode differs between catalogs")
	}
}

func TestWarmFillsTheCacheAndSaysWhatWontFit(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	seed(t, srv, "set", 120, 3)
	e := newEnv(t, srv, "", func(o *catalog.Options) { o.Bulk.Disable = true })
	ctx := context.Background()
	var calls int
	var last catalog.WarmProgress
	res, err := e.Catalog.Warm(ctx, "set", "dir-001", catalog.WarmOptions{}, func(p catalog.WarmProgress) {
		calls++
		switch {
		case calls == 1 && (p.Files != 0 || p.TotalFiles != 80):
			t.Errorf("first progress: %+v, want the totals (80 files) before any file", p)
		case calls > 1 && p.Files <= last.Files:
			t.Errorf("progress went from %d to %d files", last.Files, p.Files)
		}
		last = p
	})
	if err != nil {
		t.Fatalf("Warm: %v", err)
	}
	if res.TotalFiles != 80 || res.Files != 80 || res.Failed != 0 {
		t.Errorf("Warm of one folder of 40 images: got %+v, want 80 files (40 images, 40 documents), 0 failed", res.WarmProgress)
	}
	if calls == 0 || last.Files != res.Files {
		t.Errorf("progress: %d calls, last %+v; want the last to match the result %+v", calls, last, res.WarmProgress)
	}
	srv.ResetStats()
	ds, all, dirOf := images(t, e, "set")
	for _, im := range all {
		if dirOf[im].Key() != "dir-001" {
			continue
		}
		h, err := e.Catalog.OpenImage(ctx, ds, im)
		if err != nil {
			t.Fatal(err)
		}
		h.Release()
	}
	if got := srv.Stats().StorageGets; got != 0 {
		t.Errorf("reading the warmed folder cost %d storage GETs, want 0", got)
	}
	again, err := e.Catalog.Warm(ctx, "set", "dir-001", catalog.WarmOptions{}, nil)
	if err != nil || again.Cached != 80 {
		t.Errorf("second Warm: got %+v, %v; want all 80 cached", again.WarmProgress, err)
	}

	tiny := testenv.OpenStack(t, srv, testenv.Options{CacheSize: 4096, MinFree: -1})
	srv.ResetStats()
	if _, err := tiny.Catalog.Warm(ctx, "set", "", catalog.WarmOptions{}, nil); !errors.Is(err, catalog.ErrWontFit) {
		t.Errorf("Warm of more than the cache holds: got %v, want ErrWontFit", err)
	}
	if got := srv.Stats().StorageGets; got != 0 {
		t.Errorf("a warm-up that does not fit fetched %d blobs, want 0", got)
	}
}
