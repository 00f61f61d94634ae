package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
)

// writable mounts srv with a staging area (and AllowDelete if asked), as
// `pictofs mount` does by default.
func writable(t *testing.T, srv *devserver.Server, cfg mountConfig, allowDelete bool) *testMount {
	t.Helper()
	if cfg.cacheDir == "" {
		cfg.cacheDir = t.TempDir()
	}
	prev := cfg.catalog
	cfg.catalog = func(o *catalog.Options) {
		o.Writes = catalog.WriteOptions{StagingDir: filepath.Join(cfg.cacheDir, "staging"), AllowDelete: allowDelete}
		if prev != nil {
			prev(o)
		}
	}
	return mount(t, srv, cfg)
}

// pngBytes is a small PNG, distinct for each seed.
func pngBytes(t testing.TB, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8+seed%5, 6))
	for i := range img.Pix {
		img.Pix[i] = byte(seed*31 + i)
	}
	img.Set(0, 0, color.RGBA{byte(seed), byte(seed >> 8), 1, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

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

func newDataset(t *testing.T, srv *devserver.Server, name string) {
	t.Helper()
	if _, err := srv.CreateDataset(context.Background(), srv.DefaultOrg(), client.CreateDatasetRequest{
		Name: name, Classes: []client.Class{{Name: "cat", Type: "bbox"}, {Name: "dog", Type: "bbox"}},
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCopyUploadsImages(t *testing.T) {
	srv := startServer(t, devserver.Options{})
	newDataset(t, srv, "up")
	tm := writable(t, srv, mountConfig{}, false)
	src := t.TempDir()
	want := map[string][]byte{}
	for i := range 5 {
		name := fmt.Sprintf("img%d.png", i)
		if i >= 3 {
			name = filepath.Join("sub", "deeper", name)
		}
		b := pngBytes(t, i)
		want[filepath.ToSlash(name)] = b
		os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755)
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	images := filepath.Join(tm.dir, "up", "images")
	run(t, "cp", "-r", src+"/.", images)

	got := serverImages(t, tm.api, "up")
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
		if s := serverBytes(t, tm.api, "up", dir, file); !bytes.Equal(s, b) {
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
	if out := run(t, "ls", filepath.Join(tm.dir, "up", "annotations", "sub", "deeper")); !strings.Contains(out, "img3.png.json") {
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

var _ = exec.Command
var _ = fs.Options{}
