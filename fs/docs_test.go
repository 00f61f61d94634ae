package fs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// quickExports is a devserver whose exports build in a moment.
var quickExports = devserver.Options{ExportDelay: 200 * time.Millisecond}

// docFixture is a demo dataset mounted writable, with the path of one
// image's document.
type docFixture struct {
	srv  *devserver.Server
	tm   *testenv.Mount
	ds   string // the dataset's directory in the mount
	img  client.Image
	path string // its document in the mount
}

func newDocFixture(t *testing.T, allowDelete bool, key string) *docFixture {
	t.Helper()
	srv := demoServer(t, quickExports, 6)
	return docFixtureOn(t, srv, allowDelete, key)
}

func docFixtureOn(t *testing.T, srv *devserver.Server, allowDelete bool, key string) *docFixture {
	t.Helper()
	tm := testenv.NewMount(t, srv, testenv.Options{Key: key, Writable: true, AllowDelete: allowDelete})
	admin := testenv.Client(t, srv, srv.AdminKey())
	var img client.Image
	_, err := admin.EachDatasetImage(context.Background(), demoName, 0, func(page []client.Image) error {
		for _, im := range page {
			if img.ID == "" && im.AnnotationCount > 0 {
				img = im
			}
		}
		return nil
	})
	if err != nil || img.ID == "" {
		t.Fatalf("no annotated demo image: %v", err)
	}
	ds := filepath.Join(tm.Dir, demoName)
	return &docFixture{srv: srv, tm: tm, ds: ds, img: img,
		path: filepath.Join(ds, testenv.DocumentPath(img))}
}

// serverDoc is the image's document on the server, as the mount shows it.
func (f *docFixture) serverDoc(t *testing.T) []byte {
	t.Helper()
	doc, err := testenv.Document(context.Background(), testenv.Client(t, f.srv, f.srv.AdminKey()), f.img.ID)
	if err != nil {
		t.Fatalf("document of %s on the server: %v", f.img.Filename, err)
	}
	return doc
}

// annotations returns the names of a document's annotations.
func annotationNames(t *testing.T, doc []byte) []string {
	t.Helper()
	var d struct {
		Annotations []struct {
			Name string `json:"name"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("document %q: %v", doc, err)
	}
	var out []string
	for _, a := range d.Annotations {
		out = append(out, a.Name)
	}
	return out
}

// docWith is a document of filename holding one bbox of each class.
func docWith(filename string, classes ...string) []byte {
	var anns []string
	for i, c := range classes {
		anns = append(anns, fmt.Sprintf(`{"name": %q, "type": "bbox", "bounding_box": {"x": %d, "y": 2, "w": 5, "h": 6}}`, c, i))
	}
	return []byte(fmt.Sprintf(`{"image": %q, "annotations": [%s]}`, filename, strings.Join(anns, ", ")))
}

// checkSaved checks that the server holds classes for the image, and that
// the mount reads (and stats) the server's document.
func (f *docFixture) checkSaved(t *testing.T, how string, classes ...string) {
	t.Helper()
	server := f.serverDoc(t)
	if got := strings.Join(annotationNames(t, server), ","); got != strings.Join(classes, ",") {
		t.Errorf("%s: server holds annotations %q, want %q", how, got, strings.Join(classes, ","))
	}
	got, err := os.ReadFile(f.path)
	if err != nil || !bytes.Equal(got, server) {
		t.Errorf("%s: the mount reads %q (%v), want the server's document %q", how, got, err, server)
	}
	if st, err := os.Stat(f.path); err != nil || st.Size() != int64(len(server)) || st.Mode().Perm() != 0o644 {
		t.Errorf("%s: stat %v %v, want size %d and mode 0644", how, st, err, len(server))
	}
}

func TestSaveAnnotationDocuments(t *testing.T) {
	f := newDocFixture(t, false, "")
	name := f.img.Filename
	if err := os.WriteFile(f.path, docWith(name, "circle", "triangle"), 0o644); err != nil {
		t.Fatalf("write the document: %v", err)
	}
	f.checkSaved(t, "os.WriteFile", "circle", "triangle")

	// Edit what the mount serves (ids and all) and save it back.
	served, _ := os.ReadFile(f.path)
	edited := bytes.Replace(served, []byte(`"triangle"`), []byte(`"rectangle"`), 1)
	if err := os.WriteFile(f.path, edited, 0o644); err != nil {
		t.Fatalf("save an edited document: %v", err)
	}
	f.checkSaved(t, "an edit of the served document", "circle", "rectangle")

	viewer, err := f.srv.CreateKey(context.Background(), f.srv.DefaultOrg(), "viewer")
	if err != nil {
		t.Fatal(err)
	}
	v := docFixtureOn(t, f.srv, false, viewer)
	if err := os.WriteFile(v.path, docWith(name, "circle"), 0o644); !errnoIs(err, syscall.EACCES) {
		t.Errorf("save with a viewer key: got %v, want EACCES", err)
	}
	f.checkSaved(t, "after a viewer's refused save", "circle", "rectangle")

	if err := os.Chmod(f.path, 0o644); err != nil {
		t.Errorf("chmod of a document: %v", err)
	}
	if err := exec.Command("touch", f.path).Run(); err != nil {
		t.Errorf("touch of a document: %v", err)
	}
}

func TestInvalidDocumentsAreRefused(t *testing.T) {
	f := newDocFixture(t, false, "")
	before := f.serverDoc(t)
	name := f.img.Filename
	tests := []struct{ what, doc string }{
		{"not JSON", `{"annotations": [`},
		{"empty", ``},
		{"no annotations", `{"image": "` + name + `"}`},
		{"annotations not an array", `{"annotations": {"name": "circle"}}`},
		{"unknown key", `{"annotations": [{"name": "circle", "type": "bbox", "bounding_box": {"x": 1, "y": 1, "w": 2, "h": 2}, "label": "x"}]}`},
		{"shorthand bbox", `{"annotations": [{"name": "circle", "type": "bbox", "bbox": [1, 1, 2, 2]}]}`},
		{"unknown class", string(docWith(name, "hexagon"))},
		{"unknown type", `{"annotations": [{"name": "circle", "type": "box", "bounding_box": {"x": 1, "y": 1, "w": 2, "h": 2}}]}`},
		{"no geometry", `{"annotations": [{"name": "circle", "type": "polygon"}]}`},
		{"another image's document", string(docWith("someone-else.png", "circle"))},
	}
	for _, tc := range tests {
		err := os.WriteFile(f.path, []byte(tc.doc), 0o644)
		if !errnoIs(err, syscall.EINVAL) {
			t.Errorf("%s: got %v, want EINVAL", tc.what, err)
		}
	}
	if after := f.serverDoc(t); !bytes.Equal(after, before) {
		t.Errorf("a refused document changed the server's:\n%s\nwant\n%s", after, before)
	}
	if got, err := os.ReadFile(f.path); err != nil || !bytes.Equal(got, before) {
		t.Errorf("after the refusals the mount reads %q (%v), want the server's document", got, err)
	}
	if err := os.Truncate(f.path, 0); !errnoIs(err, syscall.EINVAL) {
		t.Errorf("truncate of a document: got %v, want EINVAL", err)
	}
}

// TestEditorsSaveDocuments saves documents the way editors do: vim in
// place, vim renaming the original to a backup first (backupcopy=auto,
// with its "4913" probe), and Python's atomic writer (a temp file in the
// folder, then os.replace).
func TestEditorsSaveDocuments(t *testing.T) {
	f := newDocFixture(t, false, "")
	name := f.img.Filename
	vim := testkit.RequireTool(t, "vim")
	dir := filepath.Dir(f.path)
	// vim starts outside the mount and is given the document's full path
	// (backupdir=. is the file's folder, wherever vim runs): a child that
	// started in the mount would ask this process's FUSE server for its
	// working directory between fork and exec, a window in which a
	// stop-the-world of this process can wait on the fork forever.
	outside := t.TempDir()
	vimRun := func(args ...string) ([]byte, error) {
		cmd := exec.Command(vim, append([]string{"-u", "NONE", "-N", "-n", "-i", "NONE", "-es"}, args...)...)
		cmd.Dir = outside
		return cmd.CombinedOutput()
	}
	edit := func(how string, args ...string) {
		t.Helper()
		if out, err := vimRun(args...); err != nil {
			t.Fatalf("%s: vim: %v\n%s", how, err, out)
		}
	}
	// Replace the whole buffer with a new document, then write.
	replace := func(doc []byte) string {
		return "%d|call setline(1, " + vimString(string(doc)) + ")"
	}
	edit("vim in place", "-c", replace(docWith(name, "rectangle")), "-c", "wq", f.path)
	f.checkSaved(t, "vim in place", "rectangle")

	edit("vim with a backup", "-c", "set writebackup backupcopy=auto backupskip= backupdir=.", "-c", replace(docWith(name, "circle", "circle")), "-c", "wq", f.path)
	f.checkSaved(t, "vim renaming the original to a backup", "circle", "circle")
	if entries, _ := os.ReadDir(dir); strings.Contains(fmt.Sprint(entries), "~") || strings.Contains(fmt.Sprint(entries), "4913") {
		t.Errorf("vim's backup or probe left in the mount: %v", entries)
	}

	if out, err := vimRun("-c", "set writebackup backupcopy=auto backupskip= backupdir=.", "-c", replace([]byte(`{"annotations": [{"label": "x"}]}`)), "-c", "w", "-c", "q!", f.path); err == nil {
		t.Errorf("vim wrote an invalid document without an error:\n%s", out)
	}
	f.checkSaved(t, "after vim was refused an invalid document", "circle", "circle")

	py := pythonWithPIL(t)
	run(t, py, "-c", `
import os, sys, tempfile
path, doc = sys.argv[1], sys.argv[2]
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".json")
with os.fdopen(fd, "w") as f:
    f.write(doc)
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, path)
`, f.path, string(docWith(name, "triangle")))
	f.checkSaved(t, "a Python atomic write", "triangle")
	if entries, _ := os.ReadDir(dir); strings.Contains(fmt.Sprint(entries), "tmp") {
		t.Errorf("the atomic writer's temp file is left in the mount: %v", entries)
	}
}

// vimString quotes s for a Vim expression: a list of lines.
func vimString(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		lines = append(lines, "'"+strings.ReplaceAll(l, "'", "''")+"'")
	}
	return "[" + strings.Join(lines, ", ") + "]"
}

// TestRemovalsNeedAllowDelete checks unlink and rmdir with and without
// --allow-delete, and what each does on the server.
func TestRemovalsNeedAllowDelete(t *testing.T) {
	srv := demoServer(t, quickExports, 6)
	ro := docFixtureOn(t, srv, false, "")
	img := filepath.Join(ro.ds, testenv.ImagePath(ro.img))
	for what, op := range map[string]func() error{
		"rm image":        func() error { return os.Remove(img) },
		"rm document":     func() error { return os.Remove(ro.path) },
		"rmdir non-empty": func() error { return os.Remove(filepath.Dir(img)) },
		"rm -r of a folder": func() error {
			out, err := exec.Command("rm", "-r", filepath.Dir(img)).CombinedOutput()
			if err != nil && strings.Contains(string(out), "Operation not permitted") {
				return syscall.EPERM // rm's refusal, as the kernel gave it
			}
			return fmt.Errorf("rm -r: %v: %s", err, out)
		},
		"rmdir dataset's files": func() error { return os.Remove(filepath.Join(ro.ds, "images")) },
	} {
		if err := op(); !errnoIs(err, syscall.EPERM) {
			t.Errorf("%s without --allow-delete: got %v, want EPERM", what, err)
		}
	}
	if d, _ := srv.Dataset(context.Background(), srv.DefaultOrg(), demoName); d.ImageCount != 6 || d.ArchivedImageCount != 0 {
		t.Fatalf("removals without --allow-delete changed the server: %+v", d)
	}
	local := filepath.Join(ro.ds, "images", "new-folder")
	if err := os.Mkdir(local, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(local); err != nil {
		t.Errorf("rmdir of an empty folder made through the mount: %v", err)
	}

	f := docFixtureOn(t, srv, true, "")
	img = filepath.Join(f.ds, testenv.ImagePath(f.img))
	if err := os.Remove(f.path); err != nil {
		t.Fatalf("rm of a document with --allow-delete: %v", err)
	}
	empty := fmt.Sprintf("{\n  \"image\": %q,\n  \"annotations\": []\n}", f.img.Filename)
	if got := f.serverDoc(t); string(got) != empty {
		t.Errorf("after rm the server's document is %q, want no annotations", got)
	}
	if got, err := os.ReadFile(f.path); err != nil || string(got) != empty {
		t.Errorf("after rm the mount reads %q (%v), want the empty document", got, err)
	}
	if err := os.Remove(img); err != nil {
		t.Fatalf("rm of an image with --allow-delete: %v", err)
	}
	if _, err := os.Stat(img); !errnoIs(err, syscall.ENOENT) {
		t.Errorf("stat of an archived image: got %v, want ENOENT", err)
	}
	if _, err := os.Stat(f.path); !errnoIs(err, syscall.ENOENT) {
		t.Errorf("stat of an archived image's document: got %v, want ENOENT", err)
	}
	d, _ := srv.Dataset(context.Background(), srv.DefaultOrg(), demoName)
	if d.ImageCount != 5 || d.ArchivedImageCount != 1 {
		t.Errorf("after rm of one image: server counts %d images, %d archived; want 5 and 1", d.ImageCount, d.ArchivedImageCount)
	}
	if err := os.Remove(filepath.Join(f.ds, "images", "train")); !errnoIs(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir of a folder that holds images, with --allow-delete: got %v, want ENOTEMPTY", err)
	}

	member, err := srv.CreateKey(context.Background(), srv.DefaultOrg(), "member")
	if err != nil {
		t.Fatal(err)
	}
	m := docFixtureOn(t, srv, true, member)
	if err := os.Remove(filepath.Join(m.ds, testenv.ImagePath(m.img))); !errnoIs(err, syscall.EACCES) {
		t.Errorf("rm of an image with a member key: got %v, want EACCES", err)
	}
	if err := os.Remove(m.path); !errnoIs(err, syscall.EACCES) {
		t.Errorf("rm of a document with a member key: got %v, want EACCES", err)
	}
}

// TestRmRfDatasetArchivesButNeverDeletes runs rm -rf on a whole dataset
// with --allow-delete: it can archive every image (and clear documents),
// but the dataset itself stays, with all its images archived, because a
// dataset that holds any image is never deleted.
func TestRmRfDatasetArchivesButNeverDeletes(t *testing.T) {
	srv := demoServer(t, quickExports, 6)
	tm := testenv.NewMount(t, srv, testenv.Options{Writable: true, AllowDelete: true})
	ds := filepath.Join(tm.Dir, demoName)
	if err := exec.Command("rm", "-rf", ds).Run(); err == nil {
		t.Errorf("rm -rf of a dataset succeeded: it must fail on rmdir of the dataset")
	}
	d, err := srv.Dataset(context.Background(), srv.DefaultOrg(), demoName)
	if err != nil {
		t.Fatalf("the dataset is gone after rm -rf: %v", err)
	}
	if d.ImageCount != 0 || d.ArchivedImageCount != 6 {
		t.Errorf("after rm -rf: %d images, %d archived; want 0 and 6 (archived, not deleted)", d.ImageCount, d.ArchivedImageCount)
	}
	if err := os.Remove(ds); !errnoIs(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir of a dataset whose images are all archived: got %v, want ENOTEMPTY", err)
	}
	if _, err := os.Stat(filepath.Join(ds, "dataset.json")); err != nil {
		t.Errorf("the dataset's directory after rm -rf: %v", err)
	}
	if err := os.Mkdir(filepath.Join(tm.Dir, "empty-one"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(tm.Dir, "empty-one")); err != nil {
		t.Errorf("rmdir of an empty dataset: %v", err)
	}
}
