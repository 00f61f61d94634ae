package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/devserver"
	pfs "github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// cacheContents counts the complete blobs and the staging files in a cache
// directory.
func cacheContents(t *testing.T, dir string) (blobs, staged int) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case strings.HasSuffix(rel, ".lock"):
		case strings.HasPrefix(rel, "tmp"+string(filepath.Separator)):
			staged++
		default:
			blobs++
		}
		return nil
	})
	return blobs, staged
}

// TestSigkillDuringPrefetch kills a `pictofs mount` process with SIGKILL
// while its readahead is filling the cache: `pictofs unmount` must clear the
// dead mount, and a new mount over the same cache must serve only complete,
// correct blobs (every file is compared with its source) and fetch exactly
// the ones that were not complete.
func TestSigkillDuringPrefetch(t *testing.T) {
	tmpl := synthetic(t)
	data := t.TempDir()
	if err := copyDataDir(tmpl.dataDir, data); err != nil {
		t.Fatal(err)
	}
	// The second server takes over the first one's addresses: the cache
	// keys name the API host.
	apiAddr, storageAddr := stableAddr(t), stableAddr(t)
	srv := testenv.StartServer(t, devserver.Options{DataDir: data, APIAddr: apiAddr, StorageAddr: storageAddr,
		StorageLatency: 20 * time.Millisecond, StorageBandwidth: 256 << 10})
	bin, _ := binaries(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	mnt := t.TempDir()
	env := append(baseEnv(t), "PICTOGRAPH_API_KEY="+srv.AdminKey())
	p := mountProc(t, env, mnt, "--api-url", srv.APIURL(), "--cache-dir", cacheDir, "--prefetch-workers", "8")
	images := filepath.Join(mnt, synthName, "images")
	dirs, err := os.ReadDir(images)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.ReadDir(filepath.Join(images, d.Name())); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, "readahead to fetch 3 MiB", time.Minute, func() bool { return srv.Stats().StorageBytes >= 3<<20 })
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	blobs, staged := cacheContents(t, cacheDir)
	// A name never looked up must be asked of the daemon, which is gone. (A
	// stat of the mount point itself may be answered from the kernel's
	// attribute cache, filled by whoever stat'ed it last: any process on
	// the machine.)
	_, statErr := os.Lstat(filepath.Join(mnt, fmt.Sprintf("probe-%d", time.Now().UnixNano())))
	if !errors.Is(statErr, syscall.ENOTCONN) {
		t.Errorf("lookup in the dead mount: got %v, want ENOTCONN", statErr)
	}
	out, err := exec.Command(bin, "unmount", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("pictofs unmount of the dead mount: %v\n%s", err, out)
	}
	if ok, _ := pfs.IsMountpoint(mnt); ok {
		t.Fatalf("%s is still mounted after pictofs unmount", mnt)
	}
	if entries, err := os.ReadDir(mnt); err != nil || len(entries) != 0 {
		t.Errorf("mount point after unmount: got %d entries, %v; want an empty directory", len(entries), err)
	}

	// Requests the dead process sent may still be on their way to the
	// server: Close waits for those it has taken in and refuses the rest,
	// so that a new server on the same data and addresses counts only the
	// remount's.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv = testenv.StartServer(t, devserver.Options{DataDir: data, APIAddr: apiAddr, StorageAddr: storageAddr})
	tm := mount(t, srv, testenv.Options{CacheDir: cacheDir})
	want := under(tmpl.want, "images")
	tl := readTree(t, filepath.Join(tm.Dir, synthName, "images"), want, 8)
	st := srv.Stats()
	logFigures(t, fmt.Sprintf("remount after SIGKILL (cache held %d complete blobs and %d staging files at the kill)", blobs, staged), tl, st, tm)
	if tl.failed != 0 {
		t.Errorf("reads failed after the crash: got %d (%v), want 0", tl.failed, tl.errnos)
	}
	if blobs == 0 {
		t.Errorf("the cache held no blob at the kill: the readahead was not under way")
	}
	if want := int64(len(want) - blobs); st.StorageGets != want {
		t.Errorf("remount fetched %d blobs, want %d: the %d complete ones reused, the rest fetched", st.StorageGets, want, blobs)
	}
	tm.Unmount()
	if _, left := cacheContents(t, cacheDir); left != 0 {
		t.Errorf("staging files left after the remount: got %d, want 0 (the dead instance's are removed)", left)
	}
}

// TestSmallFilesystemCache puts the cache on a 64 MiB tmpfs and reads a
// dataset three times larger: eviction must keep every read succeeding, the
// cache cap and the minimum free share must hold at every moment, and no
// ENOSPC may reach a reader.
func TestSmallFilesystemCache(t *testing.T) {
	testkit.RequireRoot(t, "mounting a tmpfs")
	srv := testenv.StartServer(t, devserver.Options{})
	ctx := context.Background()
	if _, err := srv.CreateDataset(ctx, srv.DefaultOrg(), devserver.CreateDatasetRequest{Name: "large"}); err != nil {
		t.Fatal(err)
	}
	const n, size = 200, 1 << 20
	for i := range n {
		data := make([]byte, size-i*512)
		rand.Read(data)
		if _, err := srv.AddImage(ctx, srv.DefaultOrg(), "large", "/", fmt.Sprintf("%03d.jpg", i), "image/jpeg", data, nil); err != nil {
			t.Fatal(err)
		}
	}
	api := testenv.Client(t, srv, srv.AdminKey())
	want := under(testenv.Files(testenv.MustSources(t, api, "large")), "images")
	const fsSize = 64 << 20
	tests := []struct {
		name      string
		cacheSize int64
		minFree   float64
	}{
		{"cap binds", 24 << 20, 0.05},
		{"free share binds", 1 << 30, 0.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsDir := mountTmpfs(t, fsSize)
			cacheDir := filepath.Join(fsDir, "cache")
			tm := mount(t, srv, testenv.Options{CacheDir: cacheDir, CacheSize: tt.cacheSize, MinFree: tt.minFree})
			var maxUsed, minFree atomic.Int64
			minFree.Store(fsSize)
			stop := make(chan struct{})
			sampled := make(chan int)
			go func() {
				samples := 0
				for {
					var st syscall.Statfs_t
					if err := syscall.Statfs(fsDir, &st); err == nil {
						free := int64(st.Bavail) * st.Bsize
						used := int64(st.Blocks-st.Bfree) * st.Bsize
						if used > maxUsed.Load() {
							maxUsed.Store(used)
						}
						if free < minFree.Load() {
							minFree.Store(free)
						}
						samples++
					}
					select {
					case <-stop:
						sampled <- samples
						return
					case <-time.After(2 * time.Millisecond):
					}
				}
			}()
			srv.ResetStats()
			tl := readTree(t, filepath.Join(tm.Dir, "large", "images"), want, 8)
			close(stop)
			samples := <-sampled
			cs := tm.Cache.Stats()
			floor := int64(tt.minFree * fsSize)
			logFigures(t, tt.name, tl, srv.Stats(), tm)
			t.Logf("%s: cache cap %d, floor %d; %d samples: max used %d, min free %d; cache evictions %d, bytes %d",
				tt.name, tt.cacheSize, floor, samples, maxUsed.Load(), minFree.Load(), cs.Evictions, cs.Bytes)
			if tl.failed != 0 {
				t.Errorf("reads failed on a small filesystem: got %d (%v), want 0", tl.failed, tl.errnos)
			}
			if maxUsed.Load() > tt.cacheSize {
				t.Errorf("the cache used %d bytes of the filesystem, want at most its cap %d", maxUsed.Load(), tt.cacheSize)
			}
			if minFree.Load() < floor {
				t.Errorf("free space fell to %d bytes, want at least the floor %d", minFree.Load(), floor)
			}
			if cs.Evictions == 0 {
				t.Errorf("no blob was evicted: got 0, want eviction to make room")
			}
		})
	}
}

// TestTwoMountsShareCache runs two mounts over one cache directory at once,
// reading the same files in opposite orders while fills are cut short and
// both caches evict: neither may ever serve a partial or wrong blob.
func TestTwoMountsShareCache(t *testing.T) {
	tmpl := synthetic(t)
	srv := serverFrom(t, tmpl, devserver.Options{TruncateRate: 0.1, StorageLatency: 2 * time.Millisecond})
	cacheDir := filepath.Join(t.TempDir(), "cache")
	const dir = "dir-001"
	want := under(under(tmpl.want, "images"), dir)
	var mounts [2]*testenv.Mount
	for i := range mounts {
		mounts[i] = mount(t, srv, testenv.Options{CacheDir: cacheDir, CacheSize: 2 << 20})
	}
	rels := keys(want)
	reversed := slices.Clone(rels)
	slices.Reverse(reversed)
	srv.ResetStats()
	var tallies [2]*tally
	var wg sync.WaitGroup
	for i, order := range [][]string{rels, reversed} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			root := filepath.Join(mounts[i].Dir, synthName, "images", dir)
			testenv.ListTree(t, root, want)
			tallies[i] = readFiles(t, root, order, want, 6, 0)
		}()
	}
	wg.Wait()
	st := srv.Stats()
	for i, tl := range tallies {
		cs := mounts[i].Cache.Stats()
		logFigures(t, fmt.Sprintf("shared cache, mount %d (cache evictions %d, removed %d, hits %d)", i+1, cs.Evictions, cs.Removed, cs.Hits), tl, st, mounts[i])
		if tl.failed != 0 {
			t.Errorf("mount %d: reads failed: got %d (%v), want 0", i+1, tl.failed, tl.errnos)
		}
	}
	if st.Truncated == 0 {
		t.Errorf("no fill was cut short: got 0 truncations, want some")
	}
}
