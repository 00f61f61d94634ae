package testenv

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
	"github.com/pictofs/pictofs/prefetch"
)

// Server is what a mount needs to know of the server it mounts: a
// *devserver.Server, or one running in a child process.
type Server interface {
	APIURL() string
	AdminKey() string
	DefaultOrg() string
}

// Options tweak a test's catalog or mount; the zero value mounts the
// server's default organization with its admin key, read-only but for the
// dataset directories (no staging area), over a fresh 1 GiB cache.
type Options struct {
	// Key is the API key; default Server.AdminKey.
	Key string
	// Org is the organization Key belongs to, which names the cache's
	// namespace as `pictofs mount` names it (API host/organization id);
	// default Server.DefaultOrg.
	Org string
	// CacheDir is the cache directory; default a new temporary one.
	CacheDir string
	// CacheSize is the cache's cap in bytes; default 1 GiB.
	CacheSize int64
	// MinFree is the share of the cache's filesystem kept free; default
	// 0.01.
	MinFree float64
	// Workers and ReadaheadShare are the prefetcher's; default prefetch's.
	Workers        int
	ReadaheadShare float64
	// Writable stages new files and documents in CacheDir/staging, as
	// `pictofs mount` does unless --read-only; AllowDelete is
	// --allow-delete.
	Writable    bool
	AllowDelete bool
	// Logger is every part's logger; default testkit.Logger().
	Logger *slog.Logger
	// Client, Catalog and FS, if set, change each part's options last,
	// just before it is made.
	Client  func(*client.Options)
	Catalog func(*catalog.Options)
	FS      func(*fs.Options)
}

// Stack is a catalog over the real client, cache and prefetcher: all of a
// mount but FUSE.
type Stack struct {
	API        *client.Client
	Cache      *blobcache.Cache
	Prefetcher *prefetch.Prefetcher
	Catalog    *catalog.Catalog

	closeOnce sync.Once
}

// OpenStack opens a catalog of srv as o says, closed at cleanup.
func OpenStack(t testing.TB, srv Server, o Options) *Stack {
	t.Helper()
	s := openStack(t, srv, &o)
	t.Cleanup(s.Close)
	return s
}

// openStack fills in o's defaults and opens its stack.
func openStack(t testing.TB, srv Server, o *Options) *Stack {
	t.Helper()
	if o.Key == "" {
		o.Key = srv.AdminKey()
	}
	if o.Org == "" {
		o.Org = srv.DefaultOrg()
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(t.TempDir(), "cache")
	}
	if o.CacheSize == 0 {
		o.CacheSize = 1 << 30
	}
	if o.MinFree == 0 {
		o.MinFree = 0.01
	}
	if o.Logger == nil {
		o.Logger = testkit.Logger()
	}
	base, err := url.Parse(srv.APIURL())
	if err != nil {
		t.Fatalf("API URL %q: %v", srv.APIURL(), err)
	}
	copts := client.Options{BaseURL: srv.APIURL(), APIKey: o.Key, Logger: o.Logger}
	if o.Client != nil {
		o.Client(&copts)
	}
	api, err := client.New(copts)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	cache, err := blobcache.Open(blobcache.Options{Dir: o.CacheDir, MaxBytes: o.CacheSize, MinFreeRatio: o.MinFree, Logger: o.Logger})
	if err != nil {
		t.Fatalf("blobcache.Open: %v", err)
	}
	pf, err := prefetch.New(prefetch.Options{Cache: cache, Workers: o.Workers, ReadaheadShare: o.ReadaheadShare,
		Retryable: catalog.RetryableFetch, Logger: o.Logger})
	if err != nil {
		cache.Close()
		t.Fatalf("prefetch.New: %v", err)
	}
	catOpts := catalog.Options{
		API:        api,
		Cache:      cache,
		Prefetcher: pf,
		Namespace:  base.Host + "/" + o.Org,
		Logger:     o.Logger,
	}
	if o.Writable {
		catOpts.Writes = catalog.WriteOptions{StagingDir: filepath.Join(o.CacheDir, "staging"), AllowDelete: o.AllowDelete}
	}
	if o.Catalog != nil {
		o.Catalog(&catOpts)
	}
	cat, err := catalog.New(context.Background(), catOpts)
	if err != nil {
		pf.Close()
		cache.Close()
		t.Fatalf("catalog.New: %v", err)
	}
	return &Stack{API: api, Cache: cache, Prefetcher: pf, Catalog: cat}
}

// Close closes the catalog, the prefetcher and the cache, once.
func (s *Stack) Close() {
	s.closeOnce.Do(func() {
		s.Catalog.Close(context.Background())
		s.Prefetcher.Close()
		s.Cache.Close()
	})
}

// Mount is a mounted Stack.
type Mount struct {
	*Stack
	Dir string      // the mount point
	FS  *fs.Mounted // the mount

	t           testing.TB
	unmountOnce sync.Once
}

// NewMount mounts srv as o says in a new temporary directory, in the style
// of go-fuse's testMount helper, and unmounts it at cleanup unless the test
// did. It skips or fails the test where FUSE is missing (testkit.RequireFUSE).
func NewMount(t testing.TB, srv Server, o Options) *Mount {
	t.Helper()
	testkit.RequireFUSE(t)
	s := openStack(t, srv, &o)
	opts := fs.Options{Catalog: s.Catalog, Logger: o.Logger}
	if o.FS != nil {
		o.FS(&opts)
	}
	dir := t.TempDir()
	m, err := fs.Mount(context.Background(), dir, opts)
	if err != nil {
		s.Close()
		t.Fatalf("fs.Mount: %v", err)
	}
	tm := &Mount{Stack: s, Dir: dir, FS: m, t: t}
	t.Cleanup(tm.Unmount)
	return tm
}

// Unmount unmounts (failing the test if the mount is busy, then detaching
// it), waits for the server loop and closes the stack. It runs once, when
// the test or its cleanup asks first.
func (m *Mount) Unmount() {
	m.unmountOnce.Do(func() {
		if err := m.FS.Unmount(false); err != nil {
			m.t.Errorf("unmount %s: %v", m.Dir, err)
			if err := m.FS.Unmount(true); err != nil {
				m.t.Errorf("lazy unmount %s: %v", m.Dir, err)
			}
		}
		m.FS.Wait()
		m.Stack.Close()
	})
}
