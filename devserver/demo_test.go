package devserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestSeedDemoIsLearnable(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	const n = 120
	ds, err := s.SeedDemo(ctx, s.DefaultOrg(), DemoDatasetName, n)
	if err != nil {
		t.Fatal(err)
	}
	if ds.ImageCount != n || ds.CompletedImageCount != n || ds.TotalSize == 0 {
		t.Errorf("demo dataset: got image_count %d completed %d total_size %d, want %d", ds.ImageCount, ds.CompletedImageCount, ds.TotalSize, n)
	}
	classes := map[string]bool{}
	for _, c := range ds.Classes {
		classes[c.Name] = true
	}
	if len(classes) != len(DemoClasses) {
		t.Errorf("demo classes: got %+v, want %+v", ds.Classes, DemoClasses)
	}
	if _, err := s.SeedDemo(ctx, s.DefaultOrg(), DemoDatasetName, 1); !errors.Is(err, ErrConflict) {
		t.Errorf("seeding the same name again: got %v, want ErrConflict", err)
	}

	a := newAPI(t, s, testMemberKey)
	var imgs []Image
	for off := 0; ; {
		var env imagesEnvelope
		a.do(http.MethodGet, fmt.Sprintf("/images/?dataset=%s&limit=1000&offset=%d", DemoDatasetName, off), nil).decode(t, &env)
		imgs = append(imgs, env.Data...)
		off += len(env.Data)
		if !env.Pagination.HasMore {
			break
		}
	}
	var lst listingEnvelope
	a.do(http.MethodGet, "/datasets/"+DemoDatasetName+"/download", nil).decode(t, &lst)
	urls := map[string]string{}
	for _, it := range lst.Data.Items {
		urls[it.ID] = it.ImageURL
	}
	dirs, types := map[string]int{}, map[string]int{}
	sizes := []int64{1 << 62, 0}
	checked := 0
	for _, im := range imgs {
		dirs[im.DirectoryPath]++
		types[im.ContentType]++
		sizes[0], sizes[1] = min(sizes[0], im.FileSize), max(sizes[1], im.FileSize)
		r := get(t, urls[im.ID])
		mustStatus(t, im.Filename, r, http.StatusOK)
		var pic image.Image
		var err error
		switch im.ContentType {
		case "image/png":
			pic, err = png.Decode(bytes.NewReader(r.body))
		case "image/jpeg":
			pic, err = jpeg.Decode(bytes.NewReader(r.body))
		default:
			t.Fatalf("%s: content type %q", im.Filename, im.ContentType)
		}
		if err != nil {
			t.Fatalf("%s: decode %s: %v", im.Filename, im.ContentType, err)
		}
		if b := pic.Bounds(); b.Dx() != im.Width || b.Dy() != im.Height || int64(len(r.body)) != im.FileSize {
			t.Errorf("%s: decoded %v and %d bytes, listed %dx%d and %d bytes", im.Filename, b, len(r.body), im.Width, im.Height, im.FileSize)
		}
		var doc annotationDocument
		a.do(http.MethodGet, "/annotations/"+im.ID+"/file", nil).decode(t, &doc)
		if len(doc.Annotations) == 0 || len(doc.Annotations) != im.AnnotationCount {
			t.Errorf("%s: got %d annotations, listed %d", im.Filename, len(doc.Annotations), im.AnnotationCount)
		}
		for _, ann := range doc.Annotations {
			bb := ann.BoundingBox
			if ann.Type != "bbox" || bb == nil || !classes[ann.Name] {
				t.Errorf("%s: annotation %+v is not a bbox of a dataset class", im.Filename, ann)
				continue
			}
			if bb.X < 0 || bb.Y < 0 || bb.W < 12 || bb.H < 12 || bb.X+bb.W > float64(im.Width) || bb.Y+bb.H > float64(im.Height) {
				t.Errorf("%s: box %+v is not inside %dx%d", im.Filename, *bb, im.Width, im.Height)
			}
			if im.ContentType == "image/png" {
				checked++
				checkShapeAt(t, im.Filename, pic, ann)
			}
		}
	}
	if dirs["/train"] == 0 || dirs["/val"] == 0 || len(dirs) != 2 {
		t.Errorf("directories: got %v, want train and val", dirs)
	}
	if types["image/png"] == 0 || types["image/jpeg"] == 0 {
		t.Errorf("content types: got %v, want PNG and JPEG", types)
	}
	if checked == 0 {
		t.Error("no PNG shape was checked")
	}
	t.Logf("demo: %d images, dirs %v, types %v, sizes %d..%d bytes", len(imgs), dirs, types, sizes[0], sizes[1])
}

// checkShapeAt checks that a flat-colored shape lies where the box says: a
// few pixels well inside it (lossless PNG) have one color.
func checkShapeAt(t *testing.T, name string, pic image.Image, ann Annotation) {
	t.Helper()
	bb := ann.BoundingBox
	cx, cy := int(bb.X+bb.W/2), int(bb.Y+bb.H/2)
	pts := [][2]int{{cx, cy}, {cx - 1, cy}, {cx + 1, cy}, {cx, cy - 1}, {cx, cy + 1}}
	if ann.Name == "triangle" { // the base row is the widest
		by := int(bb.Y+bb.H) - 2
		pts = [][2]int{{cx, by}, {cx - 1, by}, {cx + 1, by}}
	}
	r0, g0, b0, _ := pic.At(pts[0][0], pts[0][1]).RGBA()
	for _, p := range pts[1:] {
		if r, g, b, _ := pic.At(p[0], p[1]).RGBA(); r != r0 || g != g0 || b != b0 {
			t.Errorf("%s: %s at %+v: pixels around %v differ (%v vs %v): no flat shape there", name, ann.Name, *bb, p,
				[3]uint32{r, g, b}, [3]uint32{r0, g0, b0})
			return
		}
	}
}

func TestDemoGenerationIsDeterministic(t *testing.T) {
	noise := demoNoise(7)
	gen := func(seed int64, i int) []byte {
		var sc demoScratch
		if _, err := generateDemoImage(&sc, seed, i, noise); err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(sc.out.Bytes())
	}
	if !bytes.Equal(gen(7, 42), gen(7, 42)) {
		t.Error("same seed and index: got different bytes")
	}
	if bytes.Equal(gen(7, 42), gen(8, 42)) || bytes.Equal(gen(7, 42), gen(7, 43)) {
		t.Error("another seed or index: got the same bytes")
	}
}

func TestImportDir(t *testing.T) {
	s := startServer(t, Options{})
	ctx := context.Background()
	dir := t.TempDir()
	files := map[string][]byte{
		"cover.png":           demoBytes(t, 1),
		"train/cars/a.jpg":    []byte("not really a jpeg"),
		"train/cars/b.png":    demoBytes(t, 2),
		"val/c.png":           demoBytes(t, 3),
		"val/c.png.json":      []byte(`{"image":"c.png","annotations":[{"name":"car","type":"bbox","bounding_box":{"x":1,"y":2,"w":3,"h":4}}]}`),
		"notes.txt":           []byte("skipped"),
		".hidden/x.png":       []byte("skipped"),
		"val/.DS_Store":       []byte("skipped"),
		"train/cars/deep.gif": []byte("GIF89a"),
	}
	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.ImportDir(ctx, s.DefaultOrg(), "imported", dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds.ImageCount != 5 {
		t.Errorf("imported: got %d images, want 5", ds.ImageCount)
	}
	a := newAPI(t, s, testMemberKey)
	var env imagesEnvelope
	a.do(http.MethodGet, "/images/?dataset=imported&limit=100", nil).decode(t, &env)
	got := map[string]Image{}
	for _, im := range env.Data {
		got[im.DirectoryPath+"|"+im.Filename] = im
	}
	for _, want := range []struct {
		key, ct string
		anns    int
	}{
		{"/|cover.png", "image/png", 0}, {"/train/cars|a.jpg", "image/jpeg", 0}, {"/train/cars|b.png", "image/png", 0},
		{"/val|c.png", "image/png", 1}, {"/train/cars|deep.gif", "image/gif", 0},
	} {
		im, ok := got[want.key]
		if !ok {
			t.Errorf("imported: %s missing (got %v)", want.key, len(got))
			continue
		}
		if im.ContentType != want.ct || im.AnnotationCount != want.anns {
			t.Errorf("%s: got %s with %d annotations, want %s with %d", want.key, im.ContentType, im.AnnotationCount, want.ct, want.anns)
		}
	}
	if im := got["/train/cars|b.png"]; im.Width == 0 || im.Split == nil || *im.Split != "train" {
		t.Errorf("b.png: got width %d split %v", im.Width, im.Split)
	}
	r := a.do(http.MethodGet, "/images/imported/train/cars/b.png", nil)
	if !bytes.Equal(r.body, files["train/cars/b.png"]) {
		t.Errorf("imported bytes differ")
	}
	if _, err := s.ImportDir(ctx, s.DefaultOrg(), "imported", dir); !errors.Is(err, ErrConflict) {
		t.Errorf("importing the same name again: got %v, want ErrConflict", err)
	}
	if _, err := s.ImportDir(ctx, s.DefaultOrg(), "missing", filepath.Join(dir, "nope")); err == nil {
		t.Error("importing a missing directory: got no error")
	}
}

func TestGoAPIErrors(t *testing.T) {
	s := startServer(t, Options{MaxDatasetsPerOrg: 1})
	ctx := context.Background()
	org := s.DefaultOrg()
	if _, err := s.CreateDataset(ctx, org, CreateDatasetRequest{Name: "one", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc string
		err  error
		want error
	}{
		{"duplicate", second(s.CreateDataset(ctx, org, CreateDatasetRequest{Name: "one", Classes: testClasses})), ErrConflict},
		{"over the cap", second(s.CreateDataset(ctx, org, CreateDatasetRequest{Name: "two", Classes: testClasses})), ErrPlanLimit},
		{"bad name", second(s.CreateDataset(ctx, org, CreateDatasetRequest{Name: "a/b", Classes: testClasses})), ErrInvalid},
		{"unknown dataset", second(s.AddImage(ctx, org, "nope", "/", "x", "image/png", nil, nil)), ErrNotFound},
		{"unknown role", second(s.CreateKey(ctx, org, "boss")), ErrInvalid},
		{"unknown org", second(s.CreateKey(ctx, "nope", "admin")), ErrNotFound},
		{"unknown status", s.SetImageStatus(ctx, org, "nope", "done"), ErrInvalid},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.desc, tt.err, tt.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// BenchmarkGenerateDemoImage measures one demo image, drawn and encoded.
func BenchmarkGenerateDemoImage(b *testing.B) {
	noise := demoNoise(1)
	var sc demoScratch
	total := 0
	for i := 0; b.Loop(); i++ {
		sc.out.Reset()
		if _, err := generateDemoImage(&sc, 1, i, noise); err != nil {
			b.Fatal(err)
		}
		total += sc.out.Len()
	}
	b.ReportMetric(float64(total)/float64(b.N), "bytes/img")
}
