package fs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/fusetest"
	"github.com/pictofs/pictofs/prefetch"
)

// requireFUSE skips or fails a mount test where FUSE is missing; see
// fusetest.Require.
func requireFUSE(t *testing.T) { fusetest.Require(t) }

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer starts a devserver in a temp dir, closed at cleanup.
func startServer(t *testing.T, opts devserver.Options) *devserver.Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	opts.Logger = testLogger(t)
	srv, err := devserver.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("devserver.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("devserver Start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func newClient(t *testing.T, srv *devserver.Server, key string) *client.Client {
	t.Helper()
	api, err := client.New(client.Options{BaseURL: srv.APIURL(), APIKey: key, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	return api
}

// mountConfig tweaks a test mount.
type mountConfig struct {
	key       string
	cacheDir  string
	cacheSize int64
	workers   int
	client    func(*client.Options)
	catalog   func(*catalog.Options)
	tweak     func(*fs.Options)
}

// testMount is a mounted devserver with its parts.
type testMount struct {
	dir   string
	api   *client.Client
	cache *blobcache.Cache
	pf    *prefetch.Prefetcher
	cat   *catalog.Catalog
	m     *fs.Mounted
	// unmounted is set by the first unmount, explicit or at cleanup.
	unmounted bool
}

// mount mounts srv in a temp dir and unmounts at cleanup, in the style of
// go-fuse's testMount helper.
func mount(t *testing.T, srv *devserver.Server, cfg mountConfig) *testMount {
	t.Helper()
	requireFUSE(t)
	if cfg.key == "" {
		cfg.key = srv.AdminKey()
	}
	if cfg.cacheDir == "" {
		cfg.cacheDir = t.TempDir()
	}
	if cfg.cacheSize == 0 {
		cfg.cacheSize = 1 << 30
	}
	clopts := client.Options{BaseURL: srv.APIURL(), APIKey: cfg.key, Logger: testLogger(t)}
	if cfg.client != nil {
		cfg.client(&clopts)
	}
	api, err := client.New(clopts)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	cache, err := blobcache.Open(blobcache.Options{Dir: cfg.cacheDir, MaxBytes: cfg.cacheSize, MinFreeRatio: 0.01, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("blobcache.Open: %v", err)
	}
	pf, err := prefetch.New(prefetch.Options{Cache: cache, Workers: cfg.workers, Retryable: catalog.RetryableFetch, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	copts := catalog.Options{
		API:        api,
		Cache:      cache,
		Prefetcher: pf,
		Namespace:  srv.APIURL() + "/" + srv.DefaultOrg(),
		Logger:     testLogger(t),
	}
	if cfg.catalog != nil {
		cfg.catalog(&copts)
	}
	cat, err := catalog.New(context.Background(), copts)
	if err != nil {
		t.Fatalf("catalog.New: %v", err)
	}
	opts := fs.Options{Catalog: cat, Logger: testLogger(t)}
	if cfg.tweak != nil {
		cfg.tweak(&opts)
	}
	dir := t.TempDir()
	m, err := fs.Mount(context.Background(), dir, opts)
	if err != nil {
		cat.Close(context.Background())
		pf.Close()
		cache.Close()
		t.Fatalf("fs.Mount: %v", err)
	}
	tm := &testMount{dir: dir, api: api, cache: cache, pf: pf, cat: cat, m: m}
	t.Cleanup(tm.unmount(t))
	return tm
}

func (tm *testMount) unmount(t *testing.T) func() {
	return func() {
		if tm.unmounted {
			return
		}
		tm.unmounted = true
		if err := tm.m.Unmount(false); err != nil {
			t.Errorf("unmount: %v", err)
			tm.m.Unmount(true)
		}
		tm.m.Wait()
		tm.cat.Close(context.Background())
		tm.pf.Close()
		tm.cache.Close()
	}
}

// source is what the server holds for one image, fetched over a path that
// shares nothing with the mount (the authenticated byte route, no cache).
type source struct {
	img   client.Image
	bytes []byte
	doc   []byte // the annotation document, re-indented
}

// sources fetches every image of a dataset with its document.
func sources(t *testing.T, api *client.Client, dataset string) []source {
	t.Helper()
	ctx := context.Background()
	var out []source
	_, err := api.EachDatasetImage(ctx, dataset, 0, func(page []client.Image) error {
		for _, img := range page {
			rc, _, err := api.OpenImage(ctx, dataset, img.DirectoryPath, img.Filename, 0, -1)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			raw, err := api.AnnotationFile(ctx, img.ID)
			if err != nil {
				return err
			}
			var doc bytes.Buffer
			if err := json.Indent(&doc, bytes.TrimSpace(raw), "", "  "); err != nil {
				return err
			}
			out = append(out, source{img: img, bytes: b, doc: doc.Bytes()})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("fetch sources of %s: %v", dataset, err)
	}
	return out
}

// relPath is where an image with a plain name appears under images/.
func relPath(img client.Image) string {
	return filepath.Join(filepath.FromSlash(trimSlashes(img.DirectoryPath)), img.Filename)
}

func trimSlashes(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
