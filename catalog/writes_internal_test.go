package catalog

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pictofs/pictofs/client"
)

func TestValidateDocument(t *testing.T) {
	classes := map[string]bool{"cat": true, "dog": true}
	box := `"bounding_box": {"x": 1, "y": 2, "w": 3, "h": 4}`
	tests := []struct {
		name, doc string
		want      string // a part of the error; "" for valid
	}{
		{"as served", `{"image": "a.jpg", "annotations": [{"id": "1", "name": "cat", "type": "bbox", "confidence": 0.5, ` + box + `}]}`, ""},
		{"no image key", `{"annotations": []}`, ""},
		{"every geometry", `{"annotations": [{"name": "dog", "type": "polygon", "polygon": {"paths": []}}, {"name": "dog", "type": "polyline", "polyline": {"path": []}}, {"name": "cat", "type": "keypoint", "keypoint": {"x": 1, "y": 1}}]}`, ""},
		{"blank", "  \n", "empty"},
		{"not JSON", `{"annotations": [`, "not a JSON object"},
		{"an array", `[]`, "not a JSON object"},
		{"trailing text", `{"annotations": []} {}`, "text after"},
		{"another image", `{"image": "b.jpg", "annotations": []}`, `this is the document of "a.jpg"`},
		{"image not a string", `{"image": 3, "annotations": []}`, "document of"},
		{"no annotations", `{"image": "a.jpg"}`, `no "annotations"`},
		{"annotations null item", `{"annotations": [null]}`, "is null"},
		{"annotations an object", `{"annotations": {}}`, "array of objects"},
		{"label", `{"annotations": [{"name": "cat", "type": "bbox", ` + box + `, "label": "cat"}]}`, `unknown key "label"`},
		{"class", `{"annotations": [{"class": "cat", "name": "cat", "type": "bbox", ` + box + `}]}`, `unknown key "class"`},
		{"bbox shorthand", `{"annotations": [{"name": "cat", "type": "bbox", "bbox": [1, 2, 3, 4]}]}`, `unknown key "bbox"`},
		{"no name", `{"annotations": [{"type": "bbox", ` + box + `}]}`, "name must be a class"},
		{"unknown class", `{"annotations": [{"name": "cow", "type": "bbox", ` + box + `}]}`, `class "cow" is not a class of the dataset (its classes: cat, dog)`},
		{"unknown type", `{"annotations": [{"name": "cat", "type": "box", ` + box + `}]}`, "type must be"},
		{"geometry missing", `{"annotations": [{"name": "cat", "type": "polygon", ` + box + `}]}`, `needs a "polygon" object`},
		{"geometry not an object", `{"annotations": [{"name": "cat", "type": "bbox", "bounding_box": [1, 2, 3, 4]}]}`, `needs a "bounding_box" object`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := validateDocument([]byte(tc.doc), "a.jpg", classes)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidDocument)):
				t.Errorf("got %v, want an ErrInvalidDocument saying %q", err, tc.want)
			}
		})
	}
	if _, err := validateDocument([]byte(`{"annotations": [{"name": "cat", "type": "bbox", `+box+`}]}`), "a.jpg", nil); err == nil ||
		!strings.Contains(err.Error(), "it has none") {
		t.Errorf("a dataset without classes: got %v, want a refusal that says it has none", err)
	}
}

func TestNamesOfNewFiles(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		scratch     bool
		badName     bool
	}{
		{"a.jpg", "image/jpeg", false, false},
		{"A.JPEG", "image/jpeg", false, false},
		{"x.png", "image/png", false, false},
		{"x.tif", "image/tiff", false, false},
		{"x.heic", "image/heic", false, false},
		{"x.txt", "", false, false},
		{"README", "", false, false},
		{".a.jpg.Xy12Ab", "", true, false},
		{"a.jpg~", "", true, false},
		{"ctl\x01.jpg", "image/jpeg", false, true},
		{strings.Repeat("l", 251) + ".jpg", "image/jpeg", false, true},
	}
	for _, tc := range tests {
		if got := ContentTypeOf(tc.name); got != tc.contentType {
			t.Errorf("ContentTypeOf(%q): got %q, want %q", tc.name, got, tc.contentType)
		}
		if got := IsScratchName(tc.name); got != tc.scratch {
			t.Errorf("IsScratchName(%q): got %v, want %v", tc.name, got, tc.scratch)
		}
		if got := checkNewName(tc.name) != nil; got != tc.badName {
			t.Errorf("checkNewName(%q) refused: got %v, want %v", tc.name, got, tc.badName)
		}
	}
	for _, tc := range []struct {
		data []byte
		want bool
	}{
		{[]byte("\x89PNG\r\n\x1a\n...."), true}, {[]byte{0xff, 0xd8, 0xff, 0xe0}, true}, {[]byte("GIF89a"), true},
		{[]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), true}, {[]byte("\x00\x00\x00\x18ftypheic"), true}, {[]byte("II*\x00"), true},
		{[]byte("plain text"), false}, {[]byte("{}"), false}, {nil, false},
	} {
		if got := imageMagic(tc.data); got != tc.want {
			t.Errorf("imageMagic(%q): got %v, want %v", tc.data, got, tc.want)
		}
	}
}

// TestSnapshotEditsCopyOnWrite checks that changing a listing makes a new
// one and leaves the old one as it was (readers may hold it).
func TestSnapshotEditsCopyOnWrite(t *testing.T) {
	old := testListing(
		client.Image{ID: "1", Filename: "a.png", DirectoryPath: "/train"},
		client.Image{ID: "2", Filename: "b.png", DirectoryPath: "/train"},
		client.Image{ID: "3", Filename: "c.png", DirectoryPath: "/"},
	)
	e := old.edit()
	e.addImage("train/new", &Image{id: "4", name: "d.png", filename: "d.png", remoteDir: "/train/new"})
	e.removeImage("train", "1")
	e.ensureDir("empty", "/empty")
	s := e.done()
	names := func(s *snapshot, key string) string {
		d := s.dirs[key]
		if d == nil {
			return "<none>"
		}
		var out []string
		for _, sub := range d.dirs {
			out = append(out, sub.name+"/")
		}
		for _, im := range d.images {
			out = append(out, im.name)
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		s        *snapshot
		key      string
		want     string
		snapshot string
	}{
		{s, "", "empty/ train/ c.png", "new"}, {s, "train", "new/ b.png", "new"}, {s, "train/new", "d.png", "new"}, {s, "empty", "", "new"},
		{old, "", "train/ c.png", "old"}, {old, "train", "a.png b.png", "old"}, {old, "train/new", "<none>", "old"},
	} {
		if got := names(c.s, c.key); got != c.want {
			t.Errorf("%s listing, %q: got %q, want %q", c.snapshot, c.key, got, c.want)
		}
	}
	if s.count != 3 || old.count != 3 {
		t.Errorf("counts: new %d, old %d; want 3 and 3", s.count, old.count)
	}
	if d := s.dirs["train/new"]; d.remotePath != "/train/new" || d.key != "train/new" {
		t.Errorf("made folder: remote %q key %q", d.remotePath, d.key)
	}
	e = s.edit()
	e.removeDir("train")
	if s2 := e.done(); s2.dirs["train"] != nil || s2.dirs["train/new"] != nil || names(s2, "") != "empty/ c.png" {
		t.Errorf("removeDir: got %q", names(s2, ""))
	}
}

// TestBatcherGroupsWhatArrivesWhileBusy checks the group commit: a request
// alone goes at once, those that arrive while one is in flight go
// together, and no group is larger than the limit.
func TestBatcherGroupsWhatArrivesWhileBusy(t *testing.T) {
	c := &Catalog{ctx: context.Background()}
	var b batcher[int, int]
	var mu sync.Mutex
	var groups [][]int
	release := make(chan struct{})
	var inFlight atomic.Int32
	run := func(ctx context.Context, reqs []int) ([]int, []error) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		mu.Lock()
		groups = append(groups, append([]int(nil), reqs...))
		first := len(groups) == 1
		mu.Unlock()
		if first {
			<-release
		}
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 10
		}
		return out, make([]error, len(reqs))
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if got, err := b.do(context.Background(), c, 0, 4, run); got != 0 || err != nil {
			t.Errorf("first: got %d %v", got, err)
		}
	}()
	for inFlight.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := b.do(context.Background(), c, i, 4, run); got != i*10 || err != nil {
				t.Errorf("request %d: got %d %v", i, got, err)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		queued := len(b.queue)
		b.mu.Unlock()
		if queued == 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued behind the one in flight, want 6", queued)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	c.bg.Wait()
	if len(groups) != 3 || len(groups[0]) != 1 || len(groups[1]) != 4 || len(groups[2]) != 2 {
		t.Errorf("groups: got %v, want [0], then 4 (the limit), then 2", groups)
	}
}
