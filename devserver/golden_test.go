package devserver

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pictofs/pictofs/internal/testenv/golden"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// The golden documents in internal/testenv/golden/docs are written from
// the contract (docs/pictograph-api.md), one per route. package client's
// tests read the same files and check the client against them; these tests send each golden request to the devserver and
// check that its answer has exactly the golden shape: the same keys (less
// those marked optional), each with the same JSON type (or null where
// marked nullable). So a wrong JSON tag on the devserver fails here, and
// one on the client fails there, whatever the other side does.

// shapeErrors compares a JSON answer with the golden response by shape.
func shapeErrors(g golden.Doc, actual []byte) []string {
	var gv, av any
	if err := json.Unmarshal(g.Response, &gv); err != nil {
		return []string{"golden response: " + err.Error()}
	}
	if err := json.Unmarshal(actual, &av); err != nil {
		return []string{fmt.Sprintf("answer is not JSON: %v: %.200s", err, actual)}
	}
	c := &shapeCheck{g: g}
	c.walk("", gv, av)
	return c.errs
}

type shapeCheck struct {
	g    golden.Doc
	errs []string
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

func (c *shapeCheck) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *shapeCheck) walk(path string, gv, av any) {
	nullable, isNullable := c.g.Nullable[path]
	want := jsonType(gv)
	if gv == nil {
		want = nullable
	}
	switch {
	case av == nil && (gv == nil || isNullable):
		return
	case av == nil:
		c.fail("%s: got null, want %s", orRoot(path), want)
		return
	case want == "":
		c.fail("%s: got %s, want null", orRoot(path), jsonType(av))
		return
	case jsonType(av) != want:
		c.fail("%s: got %s, want %s", orRoot(path), jsonType(av), want)
		return
	case gv == nil || slices.Contains(c.g.Free, path):
		return
	}
	switch gv := gv.(type) {
	case map[string]any:
		am := av.(map[string]any)
		for k, gk := range gv {
			p := join(path, k)
			ak, ok := am[k]
			if !ok {
				if !slices.Contains(c.g.Optional, p) {
					c.fail("%s: missing", p)
				}
				continue
			}
			c.walk(p, gk, ak)
		}
		for k := range am {
			if _, ok := gv[k]; !ok {
				c.fail("%s: a key the contract does not have", join(path, k))
			}
		}
	case []any:
		if len(gv) == 0 {
			return
		}
		for i, ae := range av.([]any) {
			var best []string
			for _, ge := range gv {
				sub := &shapeCheck{g: c.g}
				sub.walk(path+"[]", ge, ae)
				if len(sub.errs) == 0 {
					best = nil
					break
				}
				if best == nil || len(sub.errs) < len(best) {
					best = sub.errs
				}
			}
			for _, e := range best {
				c.fail("element %d: %s", i, e)
			}
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func orRoot(path string) string {
	if path == "" {
		return "(the body)"
	}
	return path
}

// goldenEnv is a devserver holding what the golden routes act on: dataset
// road-signs with classes stop and yield, /val/0001.jpg (complete, one
// annotation of each type), /train/0003.png (none), an archived image, a
// completed pictograph export "env-pictograph", a completed coco export
// "env-coco" and a failed export.
type goldenEnv struct {
	s                     *Server
	a                     *api
	img                   *Image
	completed, failed, co string // export ids
}

var goldenClasses = []Class{{Name: "stop", Type: "bbox", Color: "#e6194b"}, {Name: "yield", Type: "polygon", Color: "#3cb44b"}}

func goldenAnnotations() []Annotation {
	conf := 0.5
	return []Annotation{
		{Name: "stop", Type: "bbox", Confidence: &conf, BoundingBox: &BoundingBox{X: 12.5, Y: 30, W: 100, H: 80.25}},
		{Name: "yield", Type: "polygon", Polygon: &Polygon{Paths: [][]Point{{{X: 10, Y: 20}, {X: 40, Y: 20}, {X: 25, Y: 60}}}}},
		{Name: "stop", Type: "polyline", Polyline: &Polyline{Path: []Point{{X: 1, Y: 2}, {X: 3, Y: 4}}}},
		{Name: "stop", Type: "keypoint", Keypoint: &Point{X: 5, Y: 6}},
	}
}

func newGoldenEnv(t *testing.T) *goldenEnv {
	t.Helper()
	s := startServer(t, Options{ExportDelay: -1})
	ctx := context.Background()
	org := s.DefaultOrg()
	if _, err := s.CreateDataset(ctx, org, CreateDatasetRequest{Name: golden.Dataset, Description: "signs", Readme: "# signs\n",
		AnnotationTypes: []string{"bbox", "polygon"}, Classes: goldenClasses}); err != nil {
		t.Fatal(err)
	}
	img, err := s.AddImage(ctx, org, golden.Dataset, "/val", "0001.jpg", "image/jpeg", demoBytes(t, 0), goldenAnnotations())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddImage(ctx, org, golden.Dataset, "/train", "0003.png", "image/png", demoBytes(t, 1), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddImage(ctx, org, golden.Dataset, "/val", "old.jpg", "image/jpeg", demoBytes(t, 2), nil); err != nil {
		t.Fatal(err)
	}
	env := &goldenEnv{s: s, a: newAPI(t, s, testAdminKey), img: img}
	mustStatus(t, "archive", env.a.do(http.MethodDelete, "/images/road-signs/val/old.jpg", nil), http.StatusOK)
	env.completed = env.export(t, "env-pictograph", "pictograph")
	env.co = env.export(t, "env-coco", "coco")
	s.SetFaults(Faults{ExportFailRate: 1})
	env.failed = env.export(t, "env-failed", "pictograph")
	s.SetFaults(Faults{})
	return env
}

// export creates an export and waits for its build to end.
func (env *goldenEnv) export(t *testing.T, name, format string) string {
	t.Helper()
	r := env.a.do(http.MethodPost, "/exports/", map[string]any{"dataset_name": golden.Dataset, "name": name, "format": format, "include_images": false})
	mustStatus(t, "create export "+name, r, http.StatusCreated)
	var e struct{ Data exportObject }
	r.decode(t, &e)
	waitExport(t, env.a, e.Data.ID)
	return e.Data.ID
}

// waitExport polls an export until its build ends, for up to 10 s.
func waitExport(t *testing.T, a *api, id string) exportObject {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var e struct{ Data exportObject }
		r := a.do(http.MethodGet, "/exports/"+id, nil)
		mustStatus(t, "get export", r, http.StatusOK)
		r.decode(t, &e)
		if e.Data.Status == "completed" || e.Data.Status == "failed" {
			return e.Data
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s still %s after 10 s", id, e.Data.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// zipMember downloads the ZIP behind a signed link and returns the
// download's HTTP status and the bytes of member name; when it is not 200
// it returns the answer's body instead, for the caller's status check.
func zipMember(t *testing.T, link, name string) (int, []byte) {
	t.Helper()
	r := get(t, link)
	if r.status != http.StatusOK {
		return r.status, r.body
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatalf("export is not a ZIP: %v", err)
	}
	b, ok := testkit.ZipMembers(t, zr)[name]
	if !ok {
		t.Fatalf("no member %s in the export", name)
	}
	return r.status, b
}

func openZip(t *testing.T, link string) *zip.Reader {
	t.Helper()
	r := get(t, link)
	mustStatus(t, "download export", r, http.StatusOK)
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatalf("export is not a ZIP: %v", err)
	}
	return zr
}

func (env *goldenEnv) link(t *testing.T, id string) string {
	t.Helper()
	var l struct{ Data exportLink }
	r := env.a.do(http.MethodGet, "/exports/"+id+"/download", nil)
	mustStatus(t, "download link", r, http.StatusOK)
	r.decode(t, &l)
	return l.Data.DownloadURL
}

// goldenCase sends one golden request (or reads one golden document) and
// returns the answer's status and body.
type goldenCase struct {
	name string
	env  envKind
	run  func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte)
}

// envKind says which environment a case runs in.
type envKind int

const (
	shared envKind = iota // one environment for every case that only reads
	fresh                 // its own environment: the case changes it
	bare                  // a server with nothing in it
)

// send sends method path with the golden request body (ids replaced).
func send(env *goldenEnv, method, path string, g golden.Doc, ids ...string) (int, []byte) {
	var body any
	if g.Request != nil {
		b := string(g.Request)
		for i := 0; i+1 < len(ids); i += 2 {
			b = strings.ReplaceAll(b, ids[i], ids[i+1])
		}
		body = b
	}
	r := env.a.do(method, path, body)
	return r.status, r.body
}

// uploaded puts n bytes for /val/0001.jpg after archiving the one there,
// so that the golden register requests find their upload.
func (env *goldenEnv) uploaded(t *testing.T, n int) {
	t.Helper()
	mustStatus(t, "archive", env.a.do(http.MethodDelete, "/images/road-signs/val/0001.jpg", nil), http.StatusOK)
	r := env.a.do(http.MethodPost, "/images/upload-url", uploadURLRequest{Dataset: golden.Dataset, Filename: "0001.jpg", DirectoryPath: "/val", ContentType: "image/jpeg"})
	mustStatus(t, "upload-url", r, http.StatusOK)
	var up struct{ Data uploadURL }
	r.decode(t, &up)
	mustStatus(t, "PUT", (&api{t: t}).do(http.MethodPut, up.Data.UploadURL, bytes.Repeat([]byte{0xff}, n), "Content-Type", "image/jpeg"), http.StatusOK)
}

func goldenCases() []goldenCase {
	get := func(path func(env *goldenEnv) string) func(*testing.T, *goldenEnv, golden.Doc) (int, []byte) {
		return func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodGet, path(env), g)
		}
	}
	fixed := func(p string) func(*goldenEnv) string { return func(*goldenEnv) string { return p } }
	return []goldenCase{
		{"error", shared, get(fixed("/datasets/nope"))},
		{"organizations.me", shared, get(fixed("/organizations/me"))},
		{"datasets.list", shared, get(fixed("/datasets/"))},
		{"datasets.create", bare, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodPost, "/datasets/", g)
		}},
		{"datasets.get", shared, get(fixed("/datasets/road-signs"))},
		{"datasets.get.include_images", shared, get(fixed("/datasets/road-signs?include_images=true&images_limit=10000&images_offset=0"))},
		{"datasets.update", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodPatch, "/datasets/road-signs", g)
		}},
		{"datasets.delete", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodDelete, "/datasets/road-signs", g)
		}},
		{"datasets.download", shared, get(fixed("/datasets/road-signs/download?mode=full&limit=10000"))},
		{"images.list", shared, get(fixed("/images/?dataset=road-signs&limit=100"))},
		{"images.upload-url", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodPost, "/images/upload-url", g)
		}},
		{"images.register", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			env.uploaded(t, 24101)
			return send(env, http.MethodPost, "/images/register", g)
		}},
		{"images.bulk-upload-url", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodPost, "/images/bulk-upload-url", g)
		}},
		{"images.bulk-register", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			env.uploaded(t, 24101)
			status, body := send(env, http.MethodPost, "/images/bulk-register", g)
			var res struct{ Data bulkRegisterResult }
			if json.Unmarshal(body, &res) != nil || res.Data.Count != 1 {
				t.Errorf("bulk register: got %s, want 1 image registered", body)
			}
			// Again: now a duplicate, so failed has an item whose shape is checked too.
			env.uploaded(t, 24101)
			g.Request = json.RawMessage(strings.Replace(string(g.Request), `"images": [`, `"images": [{"filename": "0003.png", "directory_path": "/train", "file_size": 1, "content_type": "image/png", "width": 1, "height": 1}, `, 1))
			return status, mergeBulkRegister(t, body, env, g)
		}},
		{"images.delete", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodDelete, "/images/road-signs/val/0001.jpg", g)
		}},
		{"annotations.file", shared, get(func(env *goldenEnv) string { return "/annotations/" + env.img.ID + "/file" })},
		{"annotations.by-path", shared, get(fixed("/annotations/road-signs/val/0001.jpg"))},
		{"annotations.save", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodPost, "/annotations/road-signs/val/0001.jpg", g)
		}},
		{"annotations.bulk", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodPost, "/annotations/bulk", g, golden.Image, env.img.ID)
		}},
		{"annotations.delete", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodDelete, "/annotations/road-signs/val/0001.jpg", g)
		}},
		{"exports.create", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodPost, "/exports/", g)
		}},
		{"exports.get", shared, get(fixed("/exports/env-pictograph?dataset=road-signs"))},
		{"exports.get.failed", shared, get(func(env *goldenEnv) string { return "/exports/" + env.failed })},
		{"exports.download", shared, get(fixed("/exports/env-pictograph/download?dataset=road-signs"))},
		{"exports.list", shared, get(fixed("/exports/?dataset_name=road-signs&status=completed"))},
		{"exports.delete", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodDelete, "/exports/env-pictograph?dataset=road-signs", g)
		}},
		{"exports.bulk-delete", fresh, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return send(env, http.MethodPost, "/exports/bulk-delete", g, golden.Export, env.completed)
		}},
		{"exports.pictograph-member", shared, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return zipMember(t, env.link(t, env.completed), "annotations/val/0001.jpg.json")
		}},
		{"exports.coco", shared, func(t *testing.T, env *goldenEnv, g golden.Doc) (int, []byte) {
			return zipMember(t, env.link(t, env.co), "annotations.json")
		}},
	}
}

// mergeBulkRegister sends the second bulk register (with a duplicate) and
// returns the first answer with the second's failed list, so that both a
// succeeded and a failed item are checked.
func mergeBulkRegister(t *testing.T, first []byte, env *goldenEnv, g golden.Doc) []byte {
	t.Helper()
	_, second := send(env, http.MethodPost, "/images/bulk-register", g)
	var a, b map[string]map[string]json.RawMessage
	if json.Unmarshal(first, &a) != nil || json.Unmarshal(second, &b) != nil {
		t.Fatalf("bulk register answers: %s / %s", first, second)
	}
	a["data"]["failed"] = b["data"]["failed"]
	if string(b["data"]["failed"]) == "[]" {
		t.Errorf("bulk register of a duplicate: got %s, want it in failed", second)
	}
	out, _ := json.Marshal(a)
	return out
}

func TestGoldenShapes(t *testing.T) {
	sharedEnv := newGoldenEnv(t)
	for _, gc := range goldenCases() {
		t.Run(gc.name, func(t *testing.T) {
			g := golden.Load(t, gc.name)
			env := sharedEnv
			switch gc.env {
			case bare:
				s := startServer(t, Options{})
				env = &goldenEnv{s: s, a: newAPI(t, s, testAdminKey)}
			case fresh:
				env = newGoldenEnv(t)
			}
			status, body := gc.run(t, env, g)
			if status != g.Status {
				t.Fatalf("got status %d (%s), want %d", status, body, g.Status)
			}
			for _, e := range shapeErrors(g, body) {
				t.Errorf("%s", e)
			}
		})
	}
}

// TestGoldenCoverage checks that every golden document has a case.
func TestGoldenCoverage(t *testing.T) {
	cases := map[string]bool{}
	for _, gc := range goldenCases() {
		cases[gc.name] = true
	}
	for _, name := range golden.Names(t) {
		if !cases[name] {
			t.Errorf("golden %s has no case", name)
		}
	}
}

// TestShapeCheckCatchesWrongTags makes sure the check can fail.
func TestShapeCheckCatchesWrongTags(t *testing.T) {
	g := golden.Load(t, "annotations.delete")
	tests := []struct {
		body string
		want int
	}{
		{`{"image_id": "i", "deleted_count": 1}`, 0},
		{`{"image_id": "i", "deletedCount": 1}`, 2},
		{`{"image_id": "i", "deleted_count": "1"}`, 1},
		{`{"image_id": null, "deleted_count": 1}`, 1},
	}
	for _, tt := range tests {
		if errs := shapeErrors(g, []byte(tt.body)); len(errs) != tt.want {
			t.Errorf("%s: got %d errors %v, want %d", tt.body, len(errs), errs, tt.want)
		}
	}
}
