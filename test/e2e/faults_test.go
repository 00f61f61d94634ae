package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	pfs "github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// TestStorm503 reads every file of the synthetic dataset while 30% of API
// requests answer 503: retries must hide every one of them.
func TestStorm503(t *testing.T) {
	t.Parallel() // mostly waiting: for retry backoff and timeouts
	tmpl := synthetic(t)
	srv := serverFrom(t, tmpl, devserver.Options{})
	tm := mount(t, srv, testenv.Options{Workers: 64})
	srv.SetFaults(devserver.Faults{FailRate: 0.3})
	srv.ResetStats()
	start := time.Now()
	tl := readTree(t, filepath.Join(tm.Dir, synthName), tmpl.want, 16)
	st := srv.Stats()
	logFigures(t, fmt.Sprintf("503 storm (walk %v)", time.Since(start).Round(time.Millisecond)), tl, st, tm)
	if tl.failed != 0 {
		t.Errorf("reads failed under a 503 storm: got %d failures (%v), want 0", tl.failed, tl.errnos)
	}
	if st.Injected503 == 0 {
		t.Errorf("the storm injected no 503: got 0, want some")
	}
}

// attemptLog records every API attempt a client sends: when it started,
// when its answer came, its status and its Retry-After.
type attemptLog struct {
	mu       sync.Mutex
	attempts []attemptRec
	next     http.RoundTripper
}

type attemptRec struct {
	url        string
	start, end time.Time
	status     int
	retryAfter time.Duration
}

func (l *attemptLog) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := l.next.RoundTrip(req)
	rec := attemptRec{url: req.URL.String(), start: start, end: time.Now()}
	if err == nil {
		rec.status = resp.StatusCode
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			rec.retryAfter = time.Duration(s) * time.Second
		}
	}
	l.mu.Lock()
	l.attempts = append(l.attempts, rec)
	l.mu.Unlock()
	return resp, err
}

// early returns the attempts that started while an earlier 429 said to
// wait, allowing slack for attempts already past the client's check.
func (l *attemptLog) early(slack time.Duration) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, a := range l.attempts {
		if a.status != http.StatusTooManyRequests || a.retryAfter == 0 {
			continue
		}
		until := a.end.Add(a.retryAfter)
		for _, b := range l.attempts {
			if b.start.After(a.end.Add(slack)) && b.start.Before(until) {
				out = append(out, fmt.Sprintf("%s sent %v after a 429 (on %s) that said to wait %v",
					b.url, b.start.Sub(a.end).Round(time.Millisecond), a.url, a.retryAfter))
			}
		}
	}
	return out
}

func (l *attemptLog) count(status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.attempts {
		if a.status == status {
			n++
		}
	}
	return n
}

// smallDataset seeds n synthetic images in srv and fetches their sources.
func smallDataset(t *testing.T, srv *devserver.Server, name string, n int) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	if err := srv.SeedSynthetic(ctx, srv.DefaultOrg(), name, n, 1); err != nil {
		t.Fatalf("SeedSynthetic: %v", err)
	}
	api := testenv.Client(t, srv, srv.AdminKey())
	return testenv.Files(testenv.MustSources(t, api, name))
}

// TestRateLimit429 runs a walk against a server whose hourly budget is
// spent every few seconds: the mount must wait as each Retry-After says,
// never send while told to wait, and still read every byte. A client-side
// budget must never be exceeded, and a Retry-After beyond two minutes must
// fail fast instead of hanging. Bulk annotations are off: with them the walk
// costs a handful of requests and never meets a budget; here each document
// costs one, so the budgets bite.
func TestRateLimit429(t *testing.T) {
	t.Parallel() // mostly waiting: for windows, URL lifetimes, backoff
	perImage := func(o *catalog.Options) { o.Bulk.Disable = true }
	t.Run("server budget", func(t *testing.T) {
		dir := t.TempDir()
		seed := testenv.StartServer(t, devserver.Options{DataDir: dir})
		want := smallDataset(t, seed, "limited", 120)
		seed.Close()
		srv := testenv.StartServer(t, devserver.Options{DataDir: dir, RequestsPerHour: 20, RateWindow: 2 * time.Second})
		log := &attemptLog{next: http.DefaultTransport}
		tm := mount(t, srv, testenv.Options{Catalog: perImage, Client: func(o *client.Options) {
			o.HTTPClient = &http.Client{Transport: log}
		}})
		srv.ResetStats()
		start := time.Now()
		tl := readTree(t, filepath.Join(tm.Dir, "limited"), want, 8)
		st := srv.Stats()
		logFigures(t, fmt.Sprintf("429 server budget (walk %v)", time.Since(start).Round(time.Millisecond)), tl, st, tm)
		t.Logf("client attempts %d, of which 429 %d", tm.API.APIRequests(), log.count(http.StatusTooManyRequests))
		if tl.failed != 0 {
			t.Errorf("reads failed under a 429 budget: got %d (%v), want 0", tl.failed, tl.errnos)
		}
		if st.Status429 == 0 {
			t.Errorf("the budget was never hit: got 0 429s, want some")
		}
		if early := log.early(250 * time.Millisecond); len(early) > 0 {
			t.Errorf("got %d attempts sent while a Retry-After said to wait, want 0; first: %s", len(early), early[0])
		}
	})
	t.Run("client budget", func(t *testing.T) {
		srv := testenv.StartServer(t, devserver.Options{})
		want := smallDataset(t, srv, "budget", 120)
		const budget = 25
		tm := mount(t, srv, testenv.Options{Catalog: perImage, Client: func(o *client.Options) {
			o.RequestsPerHour = budget
		}})
		srv.ResetStats()
		root := filepath.Join(tm.Dir, "budget")
		tl := readTree(t, filepath.Join(root, "images"), under(want, "images"), 8)
		if tl.failed != 0 {
			t.Errorf("image reads failed: got %d (%v), want 0: signed-URL fetches are not API requests", tl.failed, tl.errnos)
		}
		docs := under(want, "annotations")
		for _, rel := range keys(docs) {
			tl.check(t, filepath.Join(root, "annotations", rel), docs[rel], true)
		}
		st := srv.Stats()
		logFigures(t, "client budget", tl, st, tm)
		if got := tm.API.APIRequests(); got > budget {
			t.Errorf("client sent %d API requests, want at most its budget %d", got, budget)
		}
		if st.APIRequests > budget {
			t.Errorf("server saw %d API requests, want at most the client's budget %d", st.APIRequests, budget)
		}
		for errno, n := range tl.errnos {
			if errno != syscall.EAGAIN.Error() {
				t.Errorf("%d reads failed with %q, want only EAGAIN once the budget is spent", n, errno)
			}
		}
		if tl.failed == 0 {
			t.Errorf("no read failed: the walk needed fewer than %d requests and tested nothing", budget)
		}
		if tl.slowest > 10*time.Second {
			t.Errorf("slowest read took %v; a spent budget must fail fast", tl.slowest)
		}
	})
	t.Run("retry-after beyond two minutes", func(t *testing.T) {
		dir := t.TempDir()
		seed := testenv.StartServer(t, devserver.Options{DataDir: dir})
		want := smallDataset(t, seed, "hour", 40)
		seed.Close()
		srv := testenv.StartServer(t, devserver.Options{DataDir: dir, RequestsPerHour: 10})
		tm := mount(t, srv, testenv.Options{Catalog: perImage})
		root := filepath.Join(tm.Dir, "hour")
		tl := newTally()
		start := time.Now()
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if w, ok := want[rel]; ok {
				tl.check(t, p, w, true)
			}
			return nil
		})
		took := time.Since(start)
		logFigures(t, fmt.Sprintf("hour-long Retry-After (walk %v)", took.Round(time.Millisecond)), tl, srv.Stats(), tm)
		if err != nil && !errors.Is(err, syscall.EAGAIN) {
			t.Errorf("walk: got %v, want success or EAGAIN", err)
		}
		if tl.errnos[syscall.EIO.Error()] > 0 {
			t.Errorf("got %d EIO, want EAGAIN for a spent hourly plan", tl.errnos[syscall.EIO.Error()])
		}
		if tl.failed == 0 && err == nil {
			t.Errorf("nothing failed with a budget of 10 requests an hour: got 0 failures, want some EAGAIN")
		}
		if took > 30*time.Second {
			t.Errorf("walk took %v; a Retry-After of an hour must fail fast, not wait", took)
		}
	})
}

// TestSignedURLExpiry walks for about three URL lifetimes with a short
// readahead window, so that signed URLs expire under in-flight reads: no read
// may fail, and the listing must be refreshed once per expiry, not once per
// failed fetch.
func TestSignedURLExpiry(t *testing.T) {
	t.Parallel() // mostly waiting: for windows, URL lifetimes, backoff
	tmpl := synthetic(t)
	const ttl = 5 * time.Second
	srv := serverFrom(t, tmpl, devserver.Options{URLTTL: ttl})
	tm := mount(t, srv, testenv.Options{CacheSize: 64 << 20, ReadaheadShare: 0.004})
	root := filepath.Join(tm.Dir, synthName, "images")
	want := under(tmpl.want, "images")
	images := testenv.ListTree(t, root, want)
	srv.ResetStats()
	before := tm.FS.Stats().URLRefreshes
	start := time.Now()
	const walk = 15 * time.Second
	tl := readFiles(t, root, images, want, 8, walk/time.Duration(len(images)/8))
	took := time.Since(start)
	st := srv.Stats()
	refreshes := tm.FS.Stats().URLRefreshes - before
	expired := st.StorageGets - int64(tl.files)
	logFigures(t, fmt.Sprintf("URL expiry (walk %v, URL lifetime %v)", took.Round(time.Millisecond), ttl), tl, st, tm)
	t.Logf("storage GETs answered 403 (expired): %d; listings fetched during the walk: %d", expired, refreshes)
	if tl.failed != 0 {
		t.Errorf("reads failed while URLs expired: got %d (%v), want 0", tl.failed, tl.errnos)
	}
	if took < 2*ttl {
		t.Fatalf("walk took %v, want longer than two URL lifetimes (%v) to test expiry", took, 2*ttl)
	}
	if expired == 0 {
		t.Errorf("no fetch met an expired URL: got 0 403s, want some")
	}
	if maxRefreshes := int64(took/ttl) + 2; refreshes > maxRefreshes || st.DownloadListings > maxRefreshes {
		t.Errorf("got %d refreshes (%d listings at the server) in %v, want at most %d: one per URL lifetime",
			refreshes, st.DownloadListings, took.Round(time.Millisecond), maxRefreshes)
	}
	if refreshes != st.DownloadListings {
		t.Errorf("mount counted %d refreshes, server answered %d listings; want equal", refreshes, st.DownloadListings)
	}
}

// TestTruncatedBodies reads every file while a fifth of storage bodies are
// cut short after a full Content-Length: each must be detected, retried and
// never cached or served short. A remount over the same cache then reads
// everything with no storage request at all.
func TestTruncatedBodies(t *testing.T) {
	tmpl := synthetic(t)
	srv := serverFrom(t, tmpl, devserver.Options{TruncateRate: 0.2})
	cacheDir := filepath.Join(t.TempDir(), "cache")
	tm := mount(t, srv, testenv.Options{CacheDir: cacheDir})
	srv.ResetStats()
	tl := readTree(t, filepath.Join(tm.Dir, synthName), tmpl.want, 16)
	st := srv.Stats()
	logFigures(t, "truncated bodies", tl, st, tm)
	if tl.failed != 0 {
		t.Errorf("reads failed with truncated bodies: got %d (%v), want 0", tl.failed, tl.errnos)
	}
	if st.Truncated == 0 {
		t.Errorf("no body was truncated: got 0, want some")
	}
	tm.Unmount()
	checkCacheFiles(t, cacheDir)

	srv.SetFaults(devserver.Faults{})
	srv.ResetStats()
	again := mount(t, srv, testenv.Options{CacheDir: cacheDir})
	tl = readTree(t, filepath.Join(again.Dir, synthName), tmpl.want, 16)
	st = srv.Stats()
	logFigures(t, "remount over the cache", tl, st, again)
	if tl.failed != 0 {
		t.Errorf("reads failed from the cache: got %d (%v), want 0", tl.failed, tl.errnos)
	}
	if st.StorageGets != 0 {
		t.Errorf("remount fetched %d blobs, want 0: every blob must have been cached complete", st.StorageGets)
	}
}

// checkCacheFiles checks that every blob file in a cache directory holds
// exactly the size its name records, and that no staging file is left.
func checkCacheFiles(t *testing.T, dir string) {
	t.Helper()
	blobs, staged := 0, 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(rel, "tmp"+string(filepath.Separator)) {
			if !strings.HasSuffix(rel, ".lock") {
				staged++
				t.Errorf("staging file left behind: %s", rel)
			}
			return nil
		}
		parts := strings.Split(d.Name(), "-")
		if len(parts) != 3 || filepath.Dir(rel) == "." {
			return nil // not a blob: the cache's own records
		}
		size, _ := strconv.ParseInt(parts[1], 10, 64)
		info, err := d.Info()
		if err == nil && info.Size() != size {
			t.Errorf("cache file %s holds %d bytes, its name says %d", rel, info.Size(), size)
		}
		blobs++
		return nil
	})
	t.Logf("cache %s: %d blobs, %d staging files", dir, blobs, staged)
}

// deadServerBound is how soon after the server dies a read waiting for it
// must fail: one round of the client's retries (1 + 2 + 4 s, ±25%), which
// the mount does not repeat for a server that never answered.
const deadServerBound = 10 * time.Second

// TestServerKilledMidWalk kills the server process (SIGKILL) while parallel
// readers and cat processes are reading: reads in flight must fail with EIO
// within deadServerBound, no reader may hang in D state, the mount must stay
// up, and once a server is back on the same data and addresses every file
// reads correctly.
func TestServerKilledMidWalk(t *testing.T) {
	t.Parallel() // mostly waiting: for windows, URL lifetimes, backoff
	tmpl := synthetic(t)
	data := t.TempDir()
	if err := copyDataDir(tmpl.dataDir, data); err != nil {
		t.Fatal(err)
	}
	args := []string{"-data", data, "-addr", stableAddr(t), "-storage-addr", stableAddr(t), "-admin-addr", stableAddr(t),
		"-storage-latency", "30ms"}
	s1 := startServerProc(t, args...)
	tm := mount(t, s1, testenv.Options{Workers: 4})
	root := filepath.Join(tm.Dir, synthName)
	rels := testenv.ListTree(t, root, tmpl.want)
	// The walk reads the annotation documents first (the listing's lookups
	// fetched them all), then the images.
	documents := 0
	for _, rel := range rels {
		if strings.HasPrefix(rel, "annotations"+string(filepath.Separator)) {
			documents++
		}
	}

	type failure struct {
		start, at time.Time
		err       error
	}
	var (
		mu       sync.Mutex
		failures []failure
	)
	tl := newTally()
	var wg sync.WaitGroup
	for r := range 8 {
		wg.Go(func() {
			for i := r; i < len(rels); i += 8 {
				start := time.Now()
				if err := tl.check(t, filepath.Join(root, rels[i]), tmpl.want[rels[i]], true); err != nil {
					mu.Lock()
					failures = append(failures, failure{start, time.Now(), err})
					mu.Unlock()
					return
				}
			}
		})
	}
	testkit.WaitFor(t, "the readers to be reading images", time.Minute, func() bool { return tl.read() >= documents+64 })
	var cats []*exec.Cmd
	for _, rel := range rels[len(rels)-3:] {
		cmd := exec.Command("cat", filepath.Join(root, rel))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cats = append(cats, cmd)
	}
	testkit.WaitFor(t, "the cat processes to wait in the mount", 30*time.Second, func() bool {
		for _, cmd := range cats {
			if !waitingInOpenOrRead(cmd.Process.Pid) {
				return false
			}
		}
		return true
	})
	killedAt := time.Now()
	if err := s1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s1.done

	catDone := make(chan time.Duration, len(cats))
	running := make([]atomic.Bool, len(cats))
	for i, cmd := range cats {
		running[i].Store(true)
		go func() {
			cmd.Wait()
			running[i].Store(false)
			catDone <- time.Since(killedAt)
		}()
	}
	var dState time.Duration
	var catWait time.Duration
	deadline := time.After(3 * deadServerBound)
	for left := len(cats); left > 0; {
		select {
		case d := <-catDone:
			catWait = max(catWait, d)
			left--
		case <-time.After(50 * time.Millisecond):
			for i, cmd := range cats {
				if running[i].Load() && procState(cmd.Process.Pid) == "D" {
					dState += 50 * time.Millisecond
				}
			}
		case <-deadline:
			t.Fatalf("cat of a file still reading %v after the server was killed", 3*deadServerBound)
		}
	}
	wg.Wait()
	var waits []time.Duration
	errnos := map[string]int{}
	for _, f := range failures {
		// How long the read waited for the dead server: from the kill, or
		// from its start if it started after.
		waits = append(waits, f.at.Sub(later(f.start, killedAt)).Round(time.Millisecond))
		var errno syscall.Errno
		if errors.As(f.err, &errno) {
			errnos[errno.Error()]++
		} else {
			errnos[f.err.Error()]++
		}
	}
	slices.Sort(waits)
	t.Logf("server killed: %s; readers failed %d %v after waiting %v for the dead server; cat processes exited within %v; "+
		"D-state samples %v; mount API requests %d, URL refreshes %d",
		tl, len(failures), errnos, waits, catWait.Round(time.Millisecond), dState,
		tm.API.APIRequests(), tm.FS.Stats().URLRefreshes)
	if len(failures) == 0 {
		t.Errorf("no read failed while the server was down: got 0, want the reads in flight to fail")
	} else if slowest := waits[len(waits)-1]; slowest > deadServerBound {
		t.Errorf("readers waited up to %v for the dead server before failing, want at most %v", slowest, deadServerBound)
	}
	if catWait > deadServerBound {
		t.Errorf("cat processes exited up to %v after the kill, want within %v", catWait.Round(time.Millisecond), deadServerBound)
	}
	if n := len(failures); errnos[syscall.EIO.Error()] != n {
		t.Errorf("readers failed with %v, want EIO for all %d", errnos, n)
	}
	if dState > time.Second {
		t.Errorf("cat processes spent %v in D state, want none", dState)
	}
	if ok, _ := pfs.IsMountpoint(tm.Dir); !ok {
		t.Fatalf("mount %s is gone after the server died", tm.Dir)
	}
	if _, err := os.ReadDir(root); err != nil {
		t.Errorf("listing the mount while the server is down: %v", err)
	}

	s2 := startServerProc(t, args...)
	start := time.Now()
	after := readFiles(t, root, rels, tmpl.want, 8, 0)
	logFigures(t, fmt.Sprintf("after restart (walk %v)", time.Since(start).Round(time.Millisecond)), after, s2.stats(t), tm)
	if after.failed != 0 {
		t.Errorf("reads failed after the server came back: got %d (%v), want 0", after.failed, after.errnos)
	}
}

// TestInterruptedOpen interrupts a process waiting in the open of an
// uncached image with signals: each one interrupts the FUSE request, and the
// process restarts the open, as programs that catch signals do. The download
// must go on through the interruptions, each restarted open joining it: one
// storage GET, and the right bytes.
func TestInterruptedOpen(t *testing.T) {
	t.Parallel() // mostly waiting: for storage latency
	srv := testenv.StartServer(t, devserver.Options{StorageLatency: 3 * time.Second})
	want := smallDataset(t, srv, "signals", 2)
	tm := mount(t, srv, testenv.Options{})
	rel := filepath.Join("images", devserver.SyntheticFilename(0))
	srv.ResetStats()

	r := startReader(t, filepath.Join(tm.Dir, "signals", rel))
	pid := r.cmd.Process.Pid
	testkit.WaitFor(t, "the image's storage GET", 30*time.Second, func() bool { return srv.Stats().StorageGets >= 1 })
	const interruptions = 3
	for i := range uint64(interruptions) {
		testkit.WaitFor(t, "the reader to wait in its open", 10*time.Second, func() bool { return threadInSyscall(pid, r.tid, syscall.SYS_OPENAT) })
		if err := syscall.Tgkill(pid, r.tid, syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, fmt.Sprintf("restarted open %d to join the download", i+1), 10*time.Second, func() bool { return tm.Prefetcher.Stats().Joined >= i+1 })
	}
	sum, errno, _ := r.result(t)
	if errno != 0 || sum != sha256.Sum256(want[rel]) {
		t.Errorf("reader process: got errno %v and SHA-256 %x, want the image's bytes", errno, sum)
	}
	if got := srv.Stats().StorageGets; got != 1 {
		t.Errorf("an open interrupted %d times cost %d storage GETs, want 1: the download must not start over", interruptions, got)
	}
}

// threadInSyscall reports whether thread tid of process pid is asleep in
// system call nr.
func threadInSyscall(pid, tid int, nr uintptr) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
	if err != nil {
		return false
	}
	got, _, _ := strings.Cut(string(b), " ")
	return got == strconv.FormatUint(uint64(nr), 10)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// waitingInOpenOrRead reports whether process pid is asleep in an open or a
// read system call (here: on the mount, waiting for the server), or has
// exited.
func waitingInOpenOrRead(pid int) bool {
	switch procState(pid) {
	case "Z", "":
		return true
	case "S", "D":
	default:
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	if err != nil {
		return false
	}
	nr, _, _ := strings.Cut(string(b), " ")
	return nr == strconv.Itoa(syscall.SYS_OPENAT) || nr == strconv.Itoa(syscall.SYS_READ)
}

// TestStorageStall holds storage responses longer than the client's read
// timeout: a read must wait a bounded time, then retry or fail, never hang;
// after the stall clears, every read must succeed.
func TestStorageStall(t *testing.T) {
	t.Parallel() // mostly waiting: for retry backoff and timeouts
	const timeout = 2 * time.Second
	const openTimeout = 8 * time.Second
	srv := testenv.StartServer(t, devserver.Options{})
	want := smallDataset(t, srv, "stall", 40)
	// newMount mounts srv; onRequest, if set, sees every attempt of its
	// client.
	newMount := func(t *testing.T, onRequest func(client.RequestEvent)) (*testenv.Mount, string) {
		tm := mount(t, srv, testenv.Options{Workers: 4,
			Client:  func(o *client.Options) { o.Timeout = timeout; o.OnRequest = onRequest },
			Catalog: func(o *catalog.Options) { o.FetchTimeout = openTimeout }})
		return tm, filepath.Join(tm.Dir, "stall")
	}
	image := func(i int) string { return filepath.Join("images", devserver.SyntheticFilename(i)) }

	t.Run("stall then recovery", func(t *testing.T) {
		// The stall clears when the client gives up on the first stalled
		// storage request (its attempt fails with the read timeout), so
		// that the retry finds storage answering again.
		var clear sync.Once
		tm, root := newMount(t, func(ev client.RequestEvent) {
			if ev.Storage && ev.Err != nil {
				clear.Do(func() { srv.SetFaults(devserver.Faults{}) })
			}
		})
		srv.SetFaults(devserver.Faults{StorageStall: time.Hour})
		defer srv.SetFaults(devserver.Faults{})
		srv.ResetStats()
		start := time.Now()
		tl := newTally()
		tl.check(t, filepath.Join(root, image(0)), want[image(0)], false)
		took := time.Since(start)
		logFigures(t, fmt.Sprintf("stall then recovery (read took %v)", took.Round(time.Millisecond)), tl, srv.Stats(), tm)
		if tl.failed != 0 {
			t.Errorf("read failed after the stall cleared: %v", tl.errnos)
		}
		if got := srv.Stats().StorageGets; got < 2 {
			t.Errorf("got %d storage GETs, want a retry after the stalled one", got)
		}
		if took > openTimeout {
			t.Errorf("read took %v, want less than %v", took, openTimeout)
		}
	})
	t.Run("permanent stall", func(t *testing.T) {
		tm, root := newMount(t, nil)
		srv.SetFaults(devserver.Faults{StorageStall: time.Hour})
		srv.ResetStats()
		_, errno, took := startReader(t, filepath.Join(root, image(1))).result(t)
		srv.SetFaults(devserver.Faults{})
		t.Logf("permanent stall: read failed after %v with %v; storage GETs %d, mount API requests %d",
			took.Round(time.Millisecond), errno, srv.Stats().StorageGets, tm.API.APIRequests())
		if errno != syscall.ETIMEDOUT {
			t.Errorf("read under a permanent stall: got %v, want ETIMEDOUT", errno)
		}
		if took > openTimeout+2*time.Second {
			t.Errorf("read took %v, want an error within %v", took, openTimeout+2*time.Second)
		}
		tl := newTally()
		tl.check(t, filepath.Join(root, image(1)), want[image(1)], false)
		if tl.failed != 0 {
			t.Errorf("the same file after the stall cleared: %v, want it read", tl.errnos)
		}
	})
	t.Run("stall mid-body", func(t *testing.T) {
		tm, root := newMount(t, nil)
		// A trickle of 100 B/s sends one 1 KiB chunk, then nothing for ten
		// seconds: a stall after the headers, under readahead.
		srv.SetFaults(devserver.Faults{StorageBandwidth: 100})
		srv.ResetStats()
		if _, err := os.ReadDir(filepath.Join(root, "images")); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, "every readahead worker to be stuck in a trickle", 30*time.Second, func() bool { return srv.Stats().StorageGets >= 4 })
		srv.SetFaults(devserver.Faults{})
		start := time.Now()
		tl := readTree(t, root, want, 4)
		took := time.Since(start)
		logFigures(t, fmt.Sprintf("stall mid-body (walk after the stall cleared %v)", took.Round(time.Millisecond)), tl, srv.Stats(), tm)
		if tl.failed != 0 {
			t.Errorf("reads failed after a mid-body stall cleared: got %d (%v), want 0", tl.failed, tl.errnos)
		}
		if tl.slowest > openTimeout {
			t.Errorf("slowest read took %v after the stall cleared, want under %v", tl.slowest, openTimeout)
		}
	})
}
