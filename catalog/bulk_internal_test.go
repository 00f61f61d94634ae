package catalog

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
)

// zipOf builds a ZIP of name → content, storing or deflating alternately.
func zipOf(t *testing.T, members [][2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, m := range members {
		method := zip.Deflate
		if i%2 == 1 {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: m[0], Method: method})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, m[1])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// cachedBlob puts data in a fresh cache and returns a handle to it.
func cachedBlob(t *testing.T, data []byte) *blobcache.Handle {
	t.Helper()
	c, err := blobcache.Open(blobcache.Options{Dir: t.TempDir(), MinFreeRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h, err := c.Fill(context.Background(), blobcache.KeyOf("zip"), int64(len(data)), func(_ context.Context, w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Release)
	return h
}

func testListing(images ...client.Image) *snapshot {
	b := newSnapshotBuilder("")
	b.add(images)
	return b.build(time.Now())
}

func TestIndexExportMatchesExactlyOrNotAtAll(t *testing.T) {
	img := func(id, dir, name string) client.Image {
		return client.Image{ID: id, DirectoryPath: dir, Filename: name, AnnotationCount: 1, FileSize: 10}
	}
	listing := testListing(
		img("id-a", "/train", "a.jpg"),
		img("id-b", "/", "b.png"),
		img("id-c", "/a//b/", "c.jpg"),
		img("id-d", "/val", "d.jpg"),
		img("id-e", "/val", "e.jpg"),
		img("id-f", "/val", "f.jpg"),
		img("id-g", "/val", "g.jpg"),
		img("id-h", "/val", "h.jpg"),
	)
	doc := func(name string) string {
		return `{"image": "` + name + `", "annotations": [{"id": "x", "name": "car"}]}`
	}
	members := [][2]string{
		{"annotations/train/a.jpg.json", doc("a.jpg")},                                          // the devserver's layout
		{"annotations/b.png.json", doc("b.png")},                                                // the top folder
		{"a/b/c.jpg.json", doc("c.jpg")},                                                        // no annotations/ prefix
		{"annotations/val/d.jpg.json", doc("other.jpg")},                                        // names another image: no match
		{"misc/0001.json", `{"image": {"id": "id-e", "filename": "e.jpg"}, "annotations": []}`}, // by id
		{"annotations/val/f.jpg.json", doc("f.jpg")},                                            // f twice: neither is trusted
		{"copy/f.json", `{"image_id": "id-f", "annotations": []}`},
		{"annotations/val/g.jpg.json", `not json`},               // unreadable
		{"annotations/val/unknown.jpg.json", doc("unknown.jpg")}, // no such image
		{"annotations/val/", ""},                                 // a directory entry
		{"README.txt", "hello"},                                  // not a document
	}
	data := zipOf(t, members)
	h := cachedBlob(t, data)
	docs, shapes, unmatched, err := indexExport(h, listing)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"id-a": doc("a.jpg"),
		"id-b": doc("b.png"),
		"id-c": doc("c.jpg"),
		"id-e": `{"image": {"id": "id-e", "filename": "e.jpg"}, "annotations": []}`,
	}
	if len(docs) != len(want) {
		t.Errorf("matched %d members (%v), want %d", len(docs), keys(docs), len(want))
	}
	for id, raw := range want {
		ref, ok := docs[id]
		if !ok {
			t.Errorf("%s: not matched", id)
			continue
		}
		got, err := readMember(h, ref)
		if err != nil {
			t.Errorf("%s: readMember: %v", id, err)
			continue
		}
		wantDoc, _ := formatAnnotationDoc([]byte(raw))
		if !bytes.Equal(got, wantDoc) || ref.size != int64(len(wantDoc)) {
			t.Errorf("%s: got %q (size %d), want %q", id, got, ref.size, wantDoc)
		}
	}
	// d (names another image), two claims on f, g (unreadable), unknown.
	if unmatched != 5 {
		t.Errorf("unmatched members: got %d, want 5", unmatched)
	}
	if len(shapes) != 2 || len(shapes[`image:",annotations,`]) != 3 || len(shapes[`image:{,annotations,`]) != 1 {
		t.Errorf("shapes: got %v, want 3 documents with a string image and 1 with an object", shapes)
	}
}

func keys(m map[string]docRef) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
