package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	pfs "github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

const demoName = "shapes-demo"

// demoServer starts a devserver on opts holding the demo dataset of n
// images.
func demoServer(t *testing.T, opts devserver.Options, n int) *devserver.Server {
	t.Helper()
	srv := testenv.StartServer(t, opts)
	if _, err := srv.SeedDemo(context.Background(), srv.DefaultOrg(), demoName, n); err != nil {
		t.Fatalf("SeedDemo: %v", err)
	}
	return srv
}

// checkTree compares a copy of the dataset (mounted or copied out) with the
// sources, byte for byte, and checks that it holds nothing else.
func checkTree(t *testing.T, root string, srcs []testenv.Source) {
	t.Helper()
	testenv.CheckTree(t, root, testenv.Files(srcs))
}

func TestToolsReadEveryByte(t *testing.T) {
	srv := demoServer(t, devserver.Options{}, 60)
	tm := testenv.NewMount(t, srv, testenv.Options{})
	srcs := testenv.MustSources(t, tm.API, demoName)
	ds := filepath.Join(tm.Dir, demoName)

	if got := run(t, "ls", tm.Dir); strings.TrimSpace(got) != demoName {
		t.Errorf("ls %s: got %q, want %q", tm.Dir, got, demoName)
	}
	if got := run(t, "ls", ds); strings.Join(strings.Fields(got), " ") != "annotations dataset.json images" {
		t.Errorf("ls dataset: got %q, want annotations dataset.json images", got)
	}
	run(t, "ls", "-lR", ds)
	checkTree(t, ds, srcs)

	if got := strings.Count(run(t, "find", ds, "-type", "f"), "\n"); got != 2*len(srcs)+1 {
		t.Errorf("find -type f: got %d files, want %d", got, 2*len(srcs)+1)
	}
	var total int64
	for _, s := range srcs {
		total += int64(len(s.Bytes))
	}
	du := strings.Fields(run(t, "du", "-sb", filepath.Join(ds, "images")))
	if du[0] != strconv.FormatInt(total+statSizes(filepath.Join(ds, "images"), true), 10) {
		t.Errorf("du -sb images: got %s, want %d bytes of images plus directories", du[0], total)
	}
	st, err := os.Stat(filepath.Join(ds, testenv.ImagePath(srcs[0].Image)))
	if err != nil || st.Size() != srcs[0].Image.FileSize || st.Mode().Perm() != 0o444 {
		t.Errorf("stat image: got %v %v, want size %d mode 0444", st, err, srcs[0].Image.FileSize)
	}

	out := t.TempDir()
	run(t, "cp", "-r", ds, filepath.Join(out, "cp"))
	checkTree(t, filepath.Join(out, "cp"), srcs)

	tarDir := filepath.Join(out, "tar")
	os.Mkdir(tarDir, 0o755)
	tarFile := filepath.Join(out, "ds.tar")
	run(t, "tar", "-cf", tarFile, "-C", tm.Dir, demoName)
	run(t, "tar", "-xf", tarFile, "-C", tarDir)
	checkTree(t, filepath.Join(tarDir, demoName), srcs)

	if _, err := exec.LookPath("rsync"); err == nil {
		run(t, "rsync", "-a", "--checksum", ds+"/", filepath.Join(out, "rsync")+"/")
		checkTree(t, filepath.Join(out, "rsync"), srcs)
	} else if os.Getenv(testkit.FUSEEnv) != "" {
		t.Errorf("rsync is not installed; .ci/run must install it")
	}

	meta, err := os.ReadFile(filepath.Join(ds, "dataset.json"))
	if err != nil || !bytes.Contains(meta, []byte(`"classes"`)) {
		t.Errorf("dataset.json: got %q, %v; want the Dataset object with classes", meta, err)
	}
}

// statSizes adds up the stat sizes under root: of the directories (what du
// counts for them, 4096 each here) or of the files.
func statSizes(root string, dirs bool) int64 {
	var n int64
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() == dirs {
			if st, err := os.Stat(p); err == nil {
				n += st.Size()
			}
		}
		return nil
	})
	return n
}

func TestConcurrentReadersCauseOneDownload(t *testing.T) {
	srv := demoServer(t, devserver.Options{}, 4)
	tm := testenv.NewMount(t, srv, testenv.Options{})
	srcs := testenv.MustSources(t, tm.API, demoName)
	p := filepath.Join(tm.Dir, demoName, testenv.ImagePath(srcs[0].Image))
	srv.ResetStats()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := os.ReadFile(p)
			if err == nil && !bytes.Equal(b, srcs[0].Bytes) {
				err = errors.New("bytes differ from the source")
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent read: %v", err)
	}
	if got := srv.Stats().StorageGets; got != 1 {
		t.Errorf("storage GETs for 64 concurrent readers of one file: got %d, want 1", got)
	}
}

func TestRemountReadsFromCacheWithNoStorageGets(t *testing.T) {
	srv := demoServer(t, devserver.Options{}, 30)
	cacheDir := t.TempDir()
	first := testenv.NewMount(t, srv, testenv.Options{CacheDir: cacheDir})
	srcs := testenv.MustSources(t, first.API, demoName)
	checkTree(t, filepath.Join(first.Dir, demoName), srcs)
	first.Unmount()

	srv.ResetStats()
	second := testenv.NewMount(t, srv, testenv.Options{CacheDir: cacheDir})
	checkTree(t, filepath.Join(second.Dir, demoName), srcs)
	if got := srv.Stats().StorageGets; got != 0 {
		t.Errorf("storage GETs on the second mount over a warm cache: got %d, want 0", got)
	}
	if got := srv.Stats().AnnotationFiles; got != 0 {
		t.Errorf("annotation requests on the second mount within the TTL: got %d, want 0", got)
	}
}

func TestCacheCapHoldsUnderALargerWalk(t *testing.T) {
	srv := demoServer(t, devserver.Options{}, 60)
	cacheDir := t.TempDir()
	api := testenv.Client(t, srv, srv.AdminKey())
	srcs := testenv.MustSources(t, api, demoName)
	var total int64
	for _, s := range srcs {
		total += int64(len(s.Bytes)) + int64(len(s.Doc))
	}
	limit := total / 4
	tm := testenv.NewMount(t, srv, testenv.Options{CacheDir: cacheDir, CacheSize: limit})
	checkTree(t, filepath.Join(tm.Dir, demoName), srcs)
	if got := statSizes(cacheDir, false); got > limit {
		t.Errorf("cache dir holds %d bytes after the walk, want ≤ the cap %d", got, limit)
	}
	if got := tm.Cache.Stats().Bytes; got > limit {
		t.Errorf("cache accounts %d bytes, want ≤ %d", got, limit)
	}
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}

func TestDatasetDirectories(t *testing.T) {
	srv := demoServer(t, devserver.Options{MaxDatasetsPerOrg: 3}, 2)
	tm := testenv.NewMount(t, srv, testenv.Options{})
	ctx := context.Background()
	p := func(name string) string { return filepath.Join(tm.Dir, name) }

	if err := os.Mkdir(p("fresh"), 0o755); err != nil {
		t.Fatalf("mkdir fresh: %v", err)
	}
	if _, err := tm.API.GetDataset(ctx, "fresh"); err != nil {
		t.Errorf("dataset made by mkdir: GetDataset: %v, want it to exist", err)
	}
	if got := run(t, "ls", tm.Dir); !strings.Contains(got, "fresh") {
		t.Errorf("ls after mkdir: got %q, want it to list fresh", got)
	}
	if err := os.Mkdir(p("fresh"), 0o755); errnoOf(err) != syscall.EEXIST {
		t.Errorf("mkdir of an existing dataset: got %v, want EEXIST", err)
	}
	if err := os.Mkdir(p("third"), 0o755); err != nil {
		t.Fatalf("mkdir third: %v", err)
	}
	if err := os.Mkdir(p("fourth"), 0o755); errnoOf(err) != syscall.EDQUOT {
		t.Errorf("mkdir past the plan's dataset cap: got %v, want EDQUOT", err)
	}
	if err := os.Rename(p("fresh"), p("renamed")); err != nil {
		t.Fatalf("mv fresh renamed: %v", err)
	}
	if _, err := tm.API.GetDataset(ctx, "renamed"); err != nil {
		t.Errorf("after mv: GetDataset(renamed): %v, want it to exist", err)
	}
	if _, err := os.Stat(p("fresh")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after mv: stat old name: got %v, want not exist", err)
	}
	if err := os.Rename(p("renamed"), p("third")); errnoOf(err) != syscall.EEXIST {
		t.Errorf("mv onto an existing dataset: got %v, want EEXIST", err)
	}
	if err := os.Remove(p(demoName)); errnoOf(err) != syscall.ENOTEMPTY {
		t.Errorf("rmdir of a dataset with images: got %v, want ENOTEMPTY", err)
	}
	if err := os.Remove(p("renamed")); err != nil {
		t.Errorf("rmdir of an empty dataset: %v", err)
	}
	if _, err := tm.API.GetDataset(ctx, "renamed"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("after rmdir: GetDataset: got %v, want not found", err)
	}

	img := filepath.Join(p(demoName), "images")
	entries, _ := os.ReadDir(img)
	var file string
	filepath.WalkDir(img, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && file == "" {
			file = path
		}
		return nil
	})
	writes := []struct {
		name string
		op   func() error
	}{
		{"create", func() error { return os.WriteFile(filepath.Join(img, "new.jpg"), []byte("x"), 0o644) }},
		{"write", func() error { return os.WriteFile(file, []byte("x"), 0o644) }},
		{"unlink", func() error { return os.Remove(file) }},
		{"mkdir below", func() error { return os.Mkdir(filepath.Join(img, "sub"), 0o755) }},
		{"rmdir below", func() error { return os.Remove(filepath.Join(img, entries[0].Name())) }},
		{"rename below", func() error { return os.Rename(file, file+".bak") }},
		{"chmod", func() error { return os.Chmod(file, 0o777) }},
		{"truncate", func() error { return os.Truncate(file, 0) }},
	}
	for _, w := range writes {
		if err := w.op(); errnoOf(err) != syscall.EROFS {
			t.Errorf("%s: got %v, want EROFS", w.name, err)
		}
	}

	member := testenv.NewMount(t, srv, testenv.Options{Key: srv.MemberKey()})
	if err := os.Mkdir(filepath.Join(member.Dir, "by-member"), 0o755); err == nil {
		if err := os.Remove(filepath.Join(member.Dir, "by-member")); errnoOf(err) != syscall.EACCES {
			t.Errorf("rmdir with a member key: got %v, want EACCES", err)
		}
	} else if errnoOf(err) != syscall.EDQUOT {
		t.Errorf("mkdir with a member key: %v", err)
	}
}

func TestMountpointChecks(t *testing.T) {
	testkit.RequireFUSE(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("mine"), 0o644)
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "does not exist"},
		{"not a directory", filepath.Join(dir, "keep.txt"), "not a directory"},
		{"not empty", dir, "not empty"},
	}
	for _, tt := range tests {
		err := pfs.CheckMountpoint(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: CheckMountpoint: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	srv := testenv.StartServer(t, devserver.Options{})
	tm := testenv.NewMount(t, srv, testenv.Options{})
	if err := pfs.CheckMountpoint(tm.Dir); err == nil || !strings.Contains(err.Error(), "already mounted") {
		t.Errorf("already mounted: got %v, want an error containing %q", err, "already mounted")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "keep.txt")); string(b) != "mine" {
		t.Errorf("the user's file changed: got %q, want %q", b, "mine")
	}
}

// debianPython is the interpreter that Debian's python3-torch installs into.
const debianPython = "/usr/bin/python3"

func TestPyTorchDataLoader(t *testing.T) {
	if err := exec.Command(debianPython, "-c", "import torch, torchvision, PIL").Run(); err != nil {
		testkit.Unavailable(t, "PICTOFS_REQUIRE_TORCH", fmt.Sprintf("python3-torch, python3-torchvision and python3-pil are needed in %s: %v", debianPython, err))
	}
	srv := demoServer(t, devserver.Options{}, 120)
	tm := testenv.NewMount(t, srv, testenv.Options{})
	out := run(t, debianPython, "../examples/pytorch_loader.py", "--check", "--workers", "4", filepath.Join(tm.Dir, demoName))
	if !strings.Contains(out, "epoch 1: 120 images") {
		t.Errorf("loader output: got %q, want one epoch of 120 images", out)
	}
	t.Log(strings.TrimSpace(out))
}

func TestPassthroughServesCachedReadsInTheKernel(t *testing.T) {
	testkit.RequireRoot(t, "FUSE passthrough (CAP_SYS_ADMIN)")
	srv := demoServer(t, devserver.Options{}, 6)
	tests := []struct {
		name        string
		disable     bool
		wantDaemon  bool
		passthrough bool
	}{
		{"passthrough on", false, false, true},
		{"passthrough off", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := testenv.NewMount(t, srv, testenv.Options{FS: func(o *pfs.Options) { o.DisablePassthrough = tt.disable }})
			if got := tm.FS.Passthrough(); got != tt.passthrough {
				testkit.Unavailable(t, testkit.FUSEEnv, fmt.Sprintf("kernel passthrough: got %v, want %v (kernel without CONFIG_FUSE_PASSTHROUGH?)", got, tt.passthrough))
			}
			srcs := testenv.MustSources(t, tm.API, demoName)
			checkTree(t, filepath.Join(tm.Dir, demoName), srcs)
			reads := tm.FS.Stats().DaemonReads
			if tt.wantDaemon && reads == 0 {
				t.Errorf("daemon reads without passthrough: got 0, want > 0")
			}
			if !tt.wantDaemon && reads != 0 {
				t.Errorf("daemon reads with passthrough: got %d, want 0", reads)
			}
		})
	}
}

func TestImagesBeyondTheDownloadListingUseTheByteRoute(t *testing.T) {
	srv := demoServer(t, devserver.Options{DownloadCap: 10}, 30)
	tm := testenv.NewMount(t, srv, testenv.Options{})
	srcs := testenv.MustSources(t, tm.API, demoName)
	srv.ResetStats()
	checkTree(t, filepath.Join(tm.Dir, demoName), srcs)
	st := srv.Stats()
	// The documents come from one export, whose ZIP is one more storage GET.
	if images := st.StorageGets - st.ExportDownloads; images != 10 || st.ImageByteRequests != 20 {
		t.Errorf("with a download listing capped at 10 of 30 images: got %d signed-URL GETs of images and %d byte-route requests, want 10 and 20",
			images, st.ImageByteRequests)
	}
	if st.DownloadListings > 5 {
		t.Errorf("download listings: got %d, want ≤ 5 (one, plus one per status)", st.DownloadListings)
	}
}

func TestLargeDirectoryListsEveryEntryOnceAndStably(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{})
	const n = 5000
	if _, err := srv.SeedBulk(context.Background(), srv.DefaultOrg(), "big", n); err != nil {
		t.Fatalf("SeedBulk: %v", err)
	}
	tm := testenv.NewMount(t, srv, testenv.Options{})
	srv.ResetStats()
	var first []string
	for pass := range 3 {
		out := run(t, "find", filepath.Join(tm.Dir, "big", "images"), "-type", "f", "-printf", "%i %P\n")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != n {
			t.Fatalf("pass %d: find listed %d files, want %d", pass, len(lines), n)
		}
		seenName, seenIno := map[string]bool{}, map[string]bool{}
		for _, l := range lines {
			ino, name, _ := strings.Cut(l, " ")
			if seenName[name] || seenIno[ino] {
				t.Fatalf("pass %d: %q listed twice or shares inode %s", pass, name, ino)
			}
			seenName[name], seenIno[ino] = true, true
		}
		if pass == 0 {
			first = lines
			continue
		}
		if strings.Join(lines, "\n") != strings.Join(first, "\n") {
			t.Errorf("pass %d: listing or inode numbers changed between listings", pass)
		}
	}
	if got := srv.Stats().APIRequests; got > 3 {
		t.Errorf("API requests for three listings of %d images: got %d, want ≤ 3 (one include_images page and the dataset list)", n, got)
	}
}
