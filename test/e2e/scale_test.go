package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// scaleImages is the size of the scale test's dataset: PICTOFS_SCALE_IMAGES,
// default 100000 (a million takes about two minutes to seed and one and a
// half to list on two cores, over the CI budget).
func scaleImages(t *testing.T) int {
	t.Helper()
	v := os.Getenv("PICTOFS_SCALE_IMAGES")
	if v == "" {
		return 100000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1000 {
		t.Fatalf("PICTOFS_SCALE_IMAGES=%q: want a number of images >= 1000", v)
	}
	return n
}

// The daemon's peak RSS allowed by TestScale: about 10% above what it uses.
// Measured (peak after the parallel readers, two cores): 28-29 MiB at 1,000
// images, 49-51 MiB at 10,000, 144-150 MiB at 100,000, 356 MiB at 300,000;
// that is about 42 MiB plus 1.07 KiB per image, a little above the design's
// target of 1 KiB per listed image.
const (
	rssPerImage = 1126     // bytes, 1.1 KiB
	rssPool     = 56 << 20 // 163 MiB in all at 100,000 images
)

// vmHWM returns the peak resident set size of a process, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestScale lists a dataset of PICTOFS_SCALE_IMAGES images through a
// `pictofs mount` process: `ls images | wc -l` must count them all, the
// listing must cost exactly its pages, the daemon's peak RSS must stay
// within rssPerImage per image plus rssPool, and 64 parallel readers spread
// over the whole dataset must read correct bytes.
func TestScale(t *testing.T) {
	n := scaleImages(t)
	start := time.Now()
	s := startServerProc(t, "-data", t.TempDir(), "-dataset", "scale", "-synthetic", strconv.Itoa(n))
	seeded := time.Since(start)

	const readers, perReader = 64, 8
	ctx := context.Background()
	src := testenv.Client(t, s, s.AdminKey())
	sample := make(map[string][]byte, readers*perReader)
	for k := range readers * perReader {
		i := k * (n / (readers * perReader))
		name := devserver.SyntheticFilename(i)
		rc, _, err := src.OpenImage(ctx, "scale", "/", name, 0, -1)
		if err != nil {
			t.Fatalf("source of %s: %v", name, err)
		}
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		sample[name] = b.Bytes()
	}

	mnt := t.TempDir()
	env := append(baseEnv(t), "PICTOGRAPH_API_KEY="+s.AdminKey())
	p := mountProc(t, env, mnt, "--api-url", s.APIURL(), "--cache-dir", filepath.Join(t.TempDir(), "cache"))
	s.resetStats(t)
	images := filepath.Join(mnt, "scale", "images")
	start = time.Now()
	out, err := exec.Command("sh", "-c", "ls "+images+" | wc -l").CombinedOutput()
	listed := time.Since(start)
	if err != nil {
		t.Fatalf("ls | wc -l: %v\n%s", err, out)
	}
	count, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	afterList := s.stats(t)
	hwmList := vmHWM(t, p.cmd.Process.Pid)
	pages := int64((n + 9999) / 10000)

	tl := newTally()
	var wg sync.WaitGroup
	names := keys(sample)
	start = time.Now()
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; i < len(names); i += readers {
				tl.check(t, filepath.Join(images, names[i]), sample[names[i]], false)
			}
		}()
	}
	wg.Wait()
	read := time.Since(start)
	st := s.stats(t)
	hwm := vmHWM(t, p.cmd.Process.Pid)
	budget := int64(n)*rssPerImage + rssPool

	t.Logf("scale: %d images seeded in %v; ls | wc -l = %d in %v with %d API requests (%d listing pages, %d download listings, %d image byte requests); "+
		"peak RSS after ls %d MiB (%d B/image), after %d readers %d MiB, budget %d MiB",
		n, seeded.Round(time.Millisecond), count, listed.Round(time.Millisecond), afterList.APIRequests, pages,
		afterList.DownloadListings, afterList.ImageByteRequests, hwmList>>20, hwmList/int64(n), readers, hwm>>20, budget>>20)
	logFigures(t, fmt.Sprintf("scale, %d parallel readers (%v)", readers, read.Round(time.Millisecond)), tl, st, nil)
	if count != n {
		t.Errorf("ls images | wc -l: got %d, want %d", count, n)
	}
	if want := pages + afterList.DownloadListings; afterList.APIRequests != want {
		t.Errorf("listing cost %d API requests, want %d: %d pages of 10000 and %d download listings",
			afterList.APIRequests, want, pages, afterList.DownloadListings)
	}
	if afterList.ImageByteRequests != 0 {
		t.Errorf("listing fetched %d images over the API byte route, want 0: readahead must not spend the plan", afterList.ImageByteRequests)
	}
	if hwm > budget {
		t.Errorf("peak RSS %d MiB, want at most %d MiB (%d B per image plus %d MiB)", hwm>>20, budget>>20, rssPerImage, rssPool>>20)
	}
	if tl.failed != 0 || tl.files != len(sample) {
		t.Errorf("parallel readers: read %d, failed %d (%v), want %d read", tl.files, tl.failed, tl.errnos, len(sample))
	}
	if extra := st.ImageByteRequests - afterList.ImageByteRequests; extra > int64(len(sample)) {
		t.Errorf("reads of %d images cost %d byte requests, want at most one each", len(sample), extra)
	}
	if st.AnnotationFiles != 0 {
		t.Errorf("listing and reading images fetched %d annotation documents, want 0 (each costs an API request)", st.AnnotationFiles)
	}
}

// TestReadaheadSpendsNoAPIRequests lists a dataset that the download
// listings cover only in part: readahead must fetch the covered images over
// their signed URLs and leave the others, which cost an API request each on
// the byte route, to the reads that ask for them.
func TestReadaheadSpendsNoAPIRequests(t *testing.T) {
	srv := testenv.StartServer(t, devserver.Options{DownloadCap: 50})
	want := under(smallDataset(t, srv, "partial", 300), "images")
	ctx := context.Background()
	api := testenv.Client(t, srv, srv.AdminKey())
	covered := map[string]bool{}
	for _, status := range []string{"", "new", "annotate", "review", "complete"} {
		l, err := api.DownloadListing(ctx, "partial", client.DownloadOptions{Mode: "images_only", StatusFilter: status})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			covered[it.ID] = true
		}
	}
	tm := mount(t, srv, testenv.Options{})
	srv.ResetStats()
	root := filepath.Join(tm.Dir, "partial", "images")
	if _, err := os.ReadDir(root); err != nil {
		t.Fatal(err)
	}
	// The listing queues the covered images, all at once; wait for the
	// prefetcher to have fetched that many and to have nothing left to do.
	testkit.WaitFor(t, fmt.Sprintf("readahead of the %d covered images", len(covered)), time.Minute, func() bool {
		st := tm.Prefetcher.Stats()
		return st.Fetched+st.Failed >= uint64(len(covered)) && st.Queued == 0 && st.InFlight == 0
	})
	st := srv.Stats()
	t.Logf("readahead after ls: %d storage GETs, %d image byte requests, %d API requests; %d of %d images covered by signed URLs",
		st.StorageGets, st.ImageByteRequests, st.APIRequests, len(covered), len(want))
	if st.ImageByteRequests != 0 {
		t.Errorf("readahead fetched %d images over the API byte route, want 0", st.ImageByteRequests)
	}
	if st.StorageGets != int64(len(covered)) {
		t.Errorf("readahead fetched %d images over signed URLs, want the %d covered", st.StorageGets, len(covered))
	}
	tl := readTree(t, root, want, 8)
	after := srv.Stats()
	logFigures(t, "reads after readahead", tl, after, tm)
	if tl.failed != 0 {
		t.Errorf("reads failed: got %d (%v), want 0", tl.failed, tl.errnos)
	}
	if got, want := after.ImageByteRequests, int64(len(want)-len(covered)); got != want {
		t.Errorf("reads cost %d byte requests, want %d: one per image the listings do not cover", got, want)
	}
	// A read may queue work for the prefetcher; what it queued is done
	// once the prefetcher is idle.
	testkit.WaitFor(t, "the prefetcher to go idle after the reads", time.Minute, func() bool {
		st := tm.Prefetcher.Stats()
		return st.Queued == 0 && st.InFlight == 0
	})
	if got := srv.Stats().AnnotationFiles; got != 0 {
		t.Errorf("reading only images fetched %d annotation documents, want 0 (each costs an API request)", got)
	}
}
