package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// serverImages returns the images of a dataset on the server, by
// directory_path/filename.
func serverImages(t *testing.T, api *client.Client, dataset string) map[string]client.Image {
	t.Helper()
	out := map[string]client.Image{}
	_, err := api.EachDatasetImage(context.Background(), dataset, 0, func(page []client.Image) error {
		for _, img := range page {
			out[strings.Trim(img.DirectoryPath, "/")+"/"+img.Filename] = img
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dataset, err)
	}
	return out
}

// serverBytes reads an image's bytes from the server (the byte route).
func serverBytes(t *testing.T, api *client.Client, dataset, dir, name string) []byte {
	t.Helper()
	rc, _, err := api.OpenImage(context.Background(), dataset, dir, name, 0, -1)
	if err != nil {
		t.Fatalf("read %s/%s from the server: %v", dir, name, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	return buf.Bytes()
}

func TestCopyUploadsImages(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	testenv.EmptyDataset(t, srv, "up")
	tm := testenv.NewMount(t, srv, testenv.Options{Writable: true})
	src := t.TempDir()
	want := map[string][]byte{}
	for i := range 5 {
		name := fmt.Sprintf("img%d.png", i)
		if i >= 3 {
			name = filepath.Join("sub", "deeper", name)
		}
		b := testenv.PNG(t, i)
		want[filepath.ToSlash(name)] = b
		os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755)
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	images := filepath.Join(tm.Dir, "up", "images")
	run(t, "cp", "-r", src+"/.", images)

	got := serverImages(t, tm.API, "up")
	if len(got) != len(want) {
		t.Errorf("server holds %d images, want %d: %v", len(got), len(want), keysOf(got))
	}
	st := srv.Stats()
	for name, b := range want {
		dir, file := filepath.Split(name)
		if img, ok := got[strings.TrimSuffix(dir, "/")+"/"+file]; !ok || img.FileSize != int64(len(b)) {
			t.Errorf("%s: on the server %+v, want %d bytes", name, img, len(b))
			continue
		}
		if s := serverBytes(t, tm.API, "up", dir, file); !bytes.Equal(s, b) {
			t.Errorf("%s: server bytes differ (%d vs %d)", name, len(s), len(b))
		}
		read, err := os.ReadFile(filepath.Join(images, name))
		if err != nil || !bytes.Equal(read, b) {
			t.Errorf("%s: read back through the mount: %d bytes, %v; want %d", name, len(read), err, len(b))
		}
	}
	if after := srv.Stats(); after.StorageGets != st.StorageGets {
		t.Errorf("reading the uploaded images back cost %d storage GETs, want 0 (served from the cache)", after.StorageGets-st.StorageGets)
	}
	if out := run(t, "ls", filepath.Join(tm.Dir, "up", "annotations", "sub", "deeper")); !strings.Contains(out, "img3.png.json") {
		t.Errorf("ls annotations/sub/deeper: %q, want the new image's document", out)
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func errnoIs(err error, want syscall.Errno) bool {
	var e syscall.Errno
	return errors.As(err, &e) && e == want
}

// TestImageWritesRefused checks every way a new image can be refused: each
// is the errno of the call that fails, the file is not left behind, and
// nothing reaches the server.
func TestImageWritesRefused(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	testenv.EmptyDataset(t, srv, "ref")
	cacheDir := t.TempDir()
	tm := testenv.NewMount(t, srv, testenv.Options{CacheDir: cacheDir, Writable: true, Catalog: func(o *catalog.Options) { o.Writes.MaxFileBytes = 64 << 10 }})
	images := filepath.Join(tm.Dir, "ref", "images")
	if err := os.WriteFile(filepath.Join(images, "first.png"), testenv.PNG(t, 1), 0o644); err != nil {
		t.Fatalf("upload first.png: %v", err)
	}
	// Another client takes a name after the mount listed the folder.
	os.ReadDir(images)
	if _, err := tm.API.UploadImage(context.Background(), "ref", "/", "taken.png", "image/png", testenv.PNG(t, 2), 0, 0); err != nil {
		t.Fatal(err)
	}
	big := append(testenv.PNG(t, 3), make([]byte, 100<<10)...)
	tests := []struct {
		name string
		op   func() error
		want syscall.Errno
	}{
		{"unknown extension", func() error { return os.WriteFile(filepath.Join(images, "notes.txt"), []byte("hi"), 0o644) }, syscall.EINVAL},
		{"no extension", func() error { return os.WriteFile(filepath.Join(images, "README"), []byte("hi"), 0o644) }, syscall.EINVAL},
		{"empty file", func() error { return os.WriteFile(filepath.Join(images, "empty.png"), nil, 0o644) }, syscall.EINVAL},
		{"bytes that are no image", func() error { return os.WriteFile(filepath.Join(images, "text.jpg"), []byte("plain text"), 0o644) }, syscall.EINVAL},
		{"over the size limit", func() error { return os.WriteFile(filepath.Join(images, "big.png"), big, 0o644) }, syscall.EFBIG},
		{"overwrite an image", func() error { return os.WriteFile(filepath.Join(images, "first.png"), testenv.PNG(t, 4), 0o644) }, syscall.EEXIST},
		{"name taken on the server", func() error { return os.WriteFile(filepath.Join(images, "taken.png"), testenv.PNG(t, 5), 0o644) }, syscall.EEXIST},
		{"rename an image", func() error {
			return os.Rename(filepath.Join(images, "first.png"), filepath.Join(images, "second.png"))
		}, syscall.EPERM},
		{"scratch renamed over an image", func() error {
			if err := os.WriteFile(filepath.Join(images, ".tmp.png"), testenv.PNG(t, 6), 0o644); err != nil {
				return err
			}
			return os.Rename(filepath.Join(images, ".tmp.png"), filepath.Join(images, "first.png"))
		}, syscall.EEXIST},
		{"unlink without --allow-delete", func() error { return os.Remove(filepath.Join(images, "first.png")) }, syscall.EPERM},
		{"truncate an image", func() error { return os.Truncate(filepath.Join(images, "first.png"), 0) }, syscall.EPERM},
		{"chmod an image", func() error { return os.Chmod(filepath.Join(images, "first.png"), 0o600) }, syscall.EPERM},
		{"file next to images/", func() error { return os.WriteFile(filepath.Join(tm.Dir, "ref", "x.png"), testenv.PNG(t, 7), 0o644) }, syscall.EPERM},
		{"write dataset.json", func() error { return os.WriteFile(filepath.Join(tm.Dir, "ref", "dataset.json"), []byte("{}"), 0o644) }, syscall.EPERM},
		{"rmdir images/", func() error { return os.Remove(images) }, syscall.EPERM},
		{"symlink", func() error { return os.Symlink("first.png", filepath.Join(images, "link.png")) }, syscall.EPERM},
	}
	for _, tc := range tests {
		if err := tc.op(); !errnoIs(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	os.Remove(filepath.Join(images, ".tmp.png"))
	entries, err := os.ReadDir(images)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "first.png taken.png" {
		t.Errorf("images/ lists %q after the refusals, want %q", got, "first.png taken.png")
	}
	if got := keysOf(serverImages(t, tm.API, "ref")); strings.Join(got, " ") != "/first.png /taken.png" {
		t.Errorf("server holds %v, want first.png and taken.png only", got)
	}
	if staged, _ := os.ReadDir(filepath.Join(cacheDir, "staging")); len(staged) != 0 {
		t.Errorf("staging area holds %d files after the refusals, want none", len(staged))
	}
}

// TestToolsWriteImages writes images with rsync, Python's open(…, "wb") and
// PIL's save, through hidden temp files and renames as the tools do.
func TestToolsWriteImages(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	testenv.EmptyDataset(t, srv, "tools")
	tm := testenv.NewMount(t, srv, testenv.Options{Writable: true})
	images := filepath.Join(tm.Dir, "tools", "images")
	src := t.TempDir()
	want := map[string][]byte{}
	for i := range 6 {
		name := fmt.Sprintf("r%d.png", i)
		if i%2 == 1 {
			name = "nested/" + name
		}
		want["rs/"+name] = testenv.PNG(t, 100+i)
		os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(src, name), want["rs/"+name], 0o644)
	}
	run(t, testkit.RequireTool(t, "rsync"), "-a", src+"/", filepath.Join(images, "rs")+"/")
	py := pythonWithPIL(t)
	want["py/open.png"] = testenv.PNG(t, 200)
	os.WriteFile(filepath.Join(src, "open.png"), want["py/open.png"], 0o644)
	if err := os.Mkdir(filepath.Join(images, "py"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, py, "-c", `
import sys
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as f:
    f.write(data)
from PIL import Image
img = Image.new("RGB", (32, 24), (200, 10, 30))
img.save(sys.argv[3])
img.save(sys.argv[4], quality=90)
`, filepath.Join(src, "open.png"), filepath.Join(images, "py", "open.png"), filepath.Join(images, "py", "pil.png"), filepath.Join(images, "py", "pil.jpg"))
	for _, name := range []string{"py/pil.png", "py/pil.jpg"} {
		b, err := os.ReadFile(filepath.Join(images, name))
		if err != nil {
			t.Fatalf("read %s back: %v", name, err)
		}
		want[name] = b
	}
	got := serverImages(t, tm.API, "tools")
	for name, b := range want {
		dir, file := filepath.Split(name)
		img, ok := got[strings.TrimSuffix(dir, "/")+"/"+file]
		if !ok {
			t.Errorf("%s is not on the server (it holds %v)", name, keysOf(got))
			continue
		}
		if s := serverBytes(t, tm.API, "tools", img.DirectoryPath, file); !bytes.Equal(s, b) {
			t.Errorf("%s: server bytes differ from what was written", name)
		}
		if name == "py/pil.png" && (img.Width != 32 || img.Height != 24) {
			t.Errorf("%s: registered %dx%d, want 32x24", name, img.Width, img.Height)
		}
		if name == "py/pil.jpg" && img.ContentType != "image/jpeg" {
			t.Errorf("%s: content type %q, want image/jpeg", name, img.ContentType)
		}
	}
	if len(got) != len(want) {
		t.Errorf("server holds %d images, want %d: %v", len(got), len(want), keysOf(got))
	}
	out := run(t, "find", images, "-name", ".*")
	if strings.TrimSpace(out) != "" {
		t.Errorf("temp files left in the mount: %q", out)
	}
}

// TestScratchFiles checks hidden files: staged and listed, never uploaded;
// renamed to an image name they upload, and the rename reports it.
func TestScratchFiles(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	testenv.EmptyDataset(t, srv, "scr")
	cacheDir := t.TempDir()
	tm := testenv.NewMount(t, srv, testenv.Options{CacheDir: cacheDir, Writable: true})
	images := filepath.Join(tm.Dir, "scr", "images")
	scratch := filepath.Join(images, ".partial.png")
	b := testenv.PNG(t, 9)
	if err := os.WriteFile(scratch, b, 0o600); err != nil {
		t.Fatalf("write a scratch file: %v", err)
	}
	if got, err := os.ReadFile(scratch); err != nil || !bytes.Equal(got, b) {
		t.Errorf("read the scratch file back: %v", err)
	}
	if st, err := os.Stat(scratch); err != nil || st.Mode().Perm() != 0o600 || st.Size() != int64(len(b)) {
		t.Errorf("stat scratch: %v %v, want mode 0600 and %d bytes", st, err, len(b))
	}
	if n := len(serverImages(t, tm.API, "scr")); n != 0 {
		t.Errorf("a scratch file reached the server: %d images", n)
	}
	if err := os.Rename(scratch, filepath.Join(images, "final.png")); err != nil {
		t.Fatalf("rename scratch to an image name: %v", err)
	}
	if _, ok := serverImages(t, tm.API, "scr")["/final.png"]; !ok {
		t.Errorf("final.png not uploaded by the rename")
	}
	if got, err := os.ReadFile(filepath.Join(images, "final.png")); err != nil || !bytes.Equal(got, b) {
		t.Errorf("read final.png: %v", err)
	}
	os.WriteFile(filepath.Join(images, ".drop.png"), b, 0o644)
	if err := os.Remove(filepath.Join(images, ".drop.png")); err != nil {
		t.Errorf("unlink a scratch file: %v", err)
	}
	if err := os.Rename(filepath.Join(images, "final.png"), filepath.Join(images, ".back.png")); !errnoIs(err, syscall.EPERM) {
		t.Errorf("rename an uploaded image to a scratch name: got %v, want EPERM", err)
	}
	entries, _ := os.ReadDir(filepath.Join(cacheDir, "staging"))
	if len(entries) != 0 {
		t.Errorf("staging area holds %d files after every file was sent or dropped", len(entries))
	}
}

// TestBudgetAndRolesRefuseUploads checks EAGAIN when the client's hourly
// budget is spent (the file stays staged and listed, and a later close
// sends it), and EACCES for keys whose role cannot upload.
func TestBudgetAndRolesRefuseUploads(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	testenv.EmptyDataset(t, srv, "bud")
	ctx := context.Background()
	budget := 4
	tm := testenv.NewMount(t, srv, testenv.Options{Writable: true, Client: func(o *client.Options) { o.RequestsPerHour = budget }})
	images := filepath.Join(tm.Dir, "bud", "images")
	if _, err := os.ReadDir(images); err != nil {
		t.Fatal(err)
	}
	var err error
	var failed string
	for i := range budget {
		failed = filepath.Join(images, fmt.Sprintf("b%d.png", i))
		if err = os.WriteFile(failed, testenv.PNG(t, i), 0o644); err != nil {
			break
		}
	}
	if !errnoIs(err, syscall.EAGAIN) {
		t.Fatalf("uploads past the budget: got %v, want EAGAIN", err)
	}
	if _, err := os.Stat(failed); err != nil {
		t.Errorf("a file refused for the budget should stay listed, staged for a later attempt: %v", err)
	}
	// Closing it again tries again (and meets the spent budget again).
	fh, err := os.OpenFile(failed, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("reopen the staged file: %v", err)
	}
	if err := fh.Close(); !errnoIs(err, syscall.EAGAIN) {
		t.Errorf("close of the staged file, budget still spent: got %v, want EAGAIN", err)
	}

	for _, role := range []string{"viewer", "annotator"} {
		key, err := srv.CreateKey(ctx, srv.DefaultOrg(), role)
		if err != nil {
			t.Fatal(err)
		}
		rm := testenv.NewMount(t, srv, testenv.Options{Key: key, Writable: true})
		err = os.WriteFile(filepath.Join(rm.Dir, "bud", "images", role+".png"), testenv.PNG(t, 50), 0o644)
		if !errnoIs(err, syscall.EACCES) {
			t.Errorf("upload with a %s key: got %v, want EACCES", role, err)
		}
	}
}

// TestReadOnlyMount checks --read-only: every change is EROFS.
func TestReadOnlyMount(t *testing.T) {
	srv := demoServer(t, quickExports, 4)
	tm := testenv.NewMount(t, srv, testenv.Options{Writable: true, AllowDelete: true, FS: func(o *fs.Options) { o.ReadOnly = true }})
	ds := filepath.Join(tm.Dir, demoName)
	var doc, img string
	filepath.WalkDir(ds, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") && strings.Contains(p, "annotations") && doc == "" {
			doc = p
		}
		if err == nil && !d.IsDir() && strings.Contains(p, "/images/") && img == "" {
			img = p
		}
		return nil
	})
	for name, op := range map[string]func() error{
		"create":       func() error { return os.WriteFile(filepath.Join(ds, "images", "n.png"), testenv.PNG(t, 1), 0o644) },
		"mkdir":        func() error { return os.Mkdir(filepath.Join(ds, "images", "d"), 0o755) },
		"write doc":    func() error { return os.WriteFile(doc, []byte("{}"), 0o644) },
		"unlink":       func() error { return os.Remove(img) },
		"chmod doc":    func() error { return os.Chmod(doc, 0o600) },
		"new dataset":  func() error { return os.Mkdir(filepath.Join(tm.Dir, "new"), 0o755) },
		"rename image": func() error { return os.Rename(img, img+".x") },
	} {
		if err := op(); !errnoIs(err, syscall.EROFS) {
			t.Errorf("%s on a read-only mount: got %v, want EROFS", name, err)
		}
	}
	if st, err := os.Stat(doc); err != nil || st.Mode().Perm() != 0o444 {
		t.Errorf("document mode on a read-only mount: %v %v, want 0444", st, err)
	}
}

// pythonWithPIL returns a Python that imports PIL.
func pythonWithPIL(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import PIL").Run() == nil {
			return py
		}
	}
	testkit.Unavailable(t, testkit.FUSEEnv, "no python3 with PIL (python3-pil)")
	return ""
}

// TestParallelClosesShareBulkRequests closes many new files at once: the
// files that close while a request is in flight go together through the
// bulk routes, so the uploads cost fewer requests than files.
func TestParallelClosesShareBulkRequests(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{APILatency: 20 * time.Millisecond})
	testenv.EmptyDataset(t, srv, "par")
	var mu sync.Mutex
	routes := map[string]int{}
	tm := testenv.NewMount(t, srv, testenv.Options{Writable: true, Client: func(o *client.Options) {
		o.OnRequest = func(ev client.RequestEvent) {
			mu.Lock()
			routes[ev.Route]++
			mu.Unlock()
		}
	}})
	images := filepath.Join(tm.Dir, "par", "images")
	if _, err := os.ReadDir(images); err != nil {
		t.Fatal(err)
	}
	const n, writers = 48, 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				errs <- os.WriteFile(filepath.Join(images, fmt.Sprintf("p%02d.png", i)), testenv.PNG(t, i), 0o644)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("parallel write: %v", err)
		}
	}
	if got := len(serverImages(t, tm.API, "par")); got != n {
		t.Errorf("server holds %d images, want %d", got, n)
	}
	mu.Lock()
	defer mu.Unlock()
	urls := routes[client.RouteUploadURL] + routes[client.RouteBulkUploadURLs]
	regs := routes[client.RouteRegisterImage] + routes[client.RouteBulkRegisterImages]
	t.Logf("%d files: %d upload-URL requests (%d bulk), %d register requests (%d bulk), %d PUTs",
		n, urls, routes[client.RouteBulkUploadURLs], regs, routes[client.RouteBulkRegisterImages], routes[client.RouteStoragePut])
	if routes[client.RouteBulkRegisterImages] == 0 || routes[client.RouteBulkUploadURLs] == 0 || urls >= n || regs >= n {
		t.Errorf("%d parallel closes cost %d upload-URL and %d register requests; want fewer than %d each, through the bulk routes", n, urls, regs, n)
	}
	if routes[client.RouteStoragePut] != n {
		t.Errorf("%d PUTs for %d files", routes[client.RouteStoragePut], n)
	}
}
