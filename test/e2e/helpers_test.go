package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	pfs "github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// synthName is the dataset of the shared template: synthImages small PNGs
// and JPEGs, half of them annotated (devserver.SeedSynthetic).
const (
	synthName   = "synthetic"
	synthImages = 2000
)

// shared holds what the tests of this package share: a scratch directory
// removed at exit, the built binaries and the template dataset.
var shared struct {
	dir string

	binOnce sync.Once
	bin     string // pictofs
	server  string // e2eserver
	binErr  error

	tmplOnce sync.Once
	tmpl     *template
	tmplErr  error

	mu     sync.Mutex
	mounts map[string]string // mount point → type ("fuse", "tmpfs") made by a test
}

func TestMain(m *testing.M) {
	if path := os.Getenv(childReadEnv); path != "" {
		os.Exit(childRead(path))
	}
	dir, err := os.MkdirTemp("", "pictofs-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	shared.dir = dir
	shared.mounts = map[string]string{}
	code := m.Run()
	if left := leftoverMounts(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: tests left these mounted (now detached): %v\n", left)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// childReadEnv makes the test binary run childRead on the path it names
// instead of the tests.
const childReadEnv = "PICTOFS_E2E_CHILD_READ"

// childRead reads path in a process of its own, for readReader. It catches
// SIGUSR1, so that the signal interrupts its system calls rather than
// killing it (Go's os.Open restarts an open that fails with EINTR). It
// prints the id of the thread that opens path, then "sha256 <hex>" of the
// bytes it read or "errno <n> <error>", and returns the exit code.
func childRead(path string) int {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGUSR1)
	runtime.LockOSThread()
	fmt.Println(syscall.Gettid())
	b, err := os.ReadFile(path)
	if err != nil {
		var errno syscall.Errno
		errors.As(err, &errno)
		fmt.Printf("errno %d %v\n", errno, err)
		return 1
	}
	fmt.Printf("sha256 %x\n", sha256.Sum256(b))
	return 0
}

// reader is a child process reading one file of a mount (childRead). A
// read timed by a test runs there rather than in the test process: every
// child process the tests start sends that one a SIGCHLD when it exits,
// which interrupts a FUSE request in flight on whichever thread takes it,
// and the open then starts over.
type reader struct {
	cmd   *exec.Cmd
	out   *bufio.Reader
	tid   int // the thread that opens the file
	start time.Time
}

// startReader starts a reader of path and waits for its thread id.
func startReader(t *testing.T, path string) *reader {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childReadEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{cmd: cmd, out: bufio.NewReader(stdout), start: time.Now()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := r.out.ReadString('\n')
	if r.tid, _ = strconv.Atoi(strings.TrimSpace(line)); err != nil || r.tid == 0 {
		t.Fatalf("reader process: got %q, %v; want its thread id", line, err)
	}
	return r
}

// result waits for the reader to exit and returns the SHA-256 of what it
// read, or the errno of its failure, and how long it ran.
func (r *reader) result(t *testing.T) (sum [sha256.Size]byte, errno syscall.Errno, took time.Duration) {
	t.Helper()
	line, _ := r.out.ReadString('\n')
	r.cmd.Wait()
	took = time.Since(r.start)
	kind, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch kind {
	case "sha256":
		if b, err := hex.DecodeString(rest); err == nil && len(b) == sha256.Size {
			copy(sum[:], b)
			return sum, 0, took
		}
	case "errno":
		n, msg, _ := strings.Cut(rest, " ")
		if v, err := strconv.Atoi(n); err == nil && v != 0 {
			return sum, syscall.Errno(v), took
		}
		t.Fatalf("reader process failed without an errno: %s", msg)
	}
	t.Fatalf("reader process said %q", line)
	return sum, 0, took
}

// trackMount records a mount point made by a test, for the final check.
func trackMount(dir, kind string) {
	shared.mu.Lock()
	shared.mounts[dir] = kind
	shared.mu.Unlock()
}

// leftoverMounts detaches and returns every tracked mount still listed in
// /proc/mounts.
func leftoverMounts() []string {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	var left []string
	for dir := range shared.mounts {
		if ok, _ := pfs.IsMountpoint(dir); ok {
			left = append(left, dir)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	}
	sort.Strings(left)
	return left
}

// ---- servers ----

// template is a closed devserver data directory holding the synthetic
// dataset, and the bytes of every file a mount of it must show, fetched
// once through a separate client (the authenticated byte route and the
// annotation route, no cache).
type template struct {
	dataDir string
	want    map[string][]byte // path under the dataset directory → bytes
}

// synthetic returns the shared template, building it on first use.
func synthetic(t *testing.T) *template {
	t.Helper()
	shared.tmplOnce.Do(func() {
		_, server := binaries(t)
		start := time.Now()
		shared.tmpl, shared.tmplErr = buildTemplate(server)
		t.Logf("template dataset of %d images built in %v", synthImages, time.Since(start).Round(time.Millisecond))
	})
	if shared.tmplErr != nil {
		t.Fatalf("template dataset: %v", shared.tmplErr)
	}
	return shared.tmpl
}

// buildTemplate seeds the template with e2eserver (SQLite under the race
// detector would take most of the time budget), fetches the sources from
// it, and stops it cleanly.
func buildTemplate(server string) (*template, error) {
	dir := filepath.Join(shared.dir, "template")
	cmd := exec.Command(server, "-data", dir, "-dataset", synthName,
		"-synthetic", strconv.Itoa(synthImages), "-dirs", "4")
	var stderr testkit.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var info struct{ API, Admin_Key string }
	if err := json.NewDecoder(stdout).Decode(&info); err != nil {
		return nil, fmt.Errorf("e2eserver: %v\n%s", err, stderr.String())
	}
	api, err := client.New(client.Options{BaseURL: info.API, APIKey: info.Admin_Key, Logger: testkit.Logger()})
	if err != nil {
		return nil, err
	}
	srcs, err := testenv.Sources(context.Background(), api, synthName)
	if err != nil {
		return nil, err
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("e2eserver exit: %v\n%s", err, stderr.String())
	}
	return &template{dataDir: dir, want: testenv.Files(srcs)}, nil
}

// serverFrom starts a devserver on a private copy of the template's data
// directory (blobs hard-linked), closed at cleanup.
func serverFrom(t *testing.T, tmpl *template, opts devserver.Options) *devserver.Server {
	t.Helper()
	opts.DataDir = t.TempDir()
	if err := copyDataDir(tmpl.dataDir, opts.DataDir); err != nil {
		t.Fatalf("copy template: %v", err)
	}
	return testenv.StartServer(t, opts)
}

// copyDataDir copies a closed devserver data directory: the database and
// key files are copied, the immutable blobs hard-linked.
func copyDataDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o700)
		case strings.HasPrefix(rel, "blobs"+string(filepath.Separator)):
			return os.Link(p, out)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o600)
	})
}

// stableAddr returns a free loopback address for a server that a test
// stops and starts again on the same address. Its port lies outside the
// kernel's ephemeral range (net.ipv4.ip_local_port_range): a port from that
// range, once its server is down, can be handed to any outgoing connection
// on the machine, and stays taken through that connection's TIME_WAIT
// (60 s), so the restart would fail with EADDRINUSE. Ports outside the range
// are given only to those who ask for them by number.
func stableAddr(t *testing.T) string {
	t.Helper()
	lo, hi := 32768, 60999 // the kernel's default range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &lo, &hi)
	}
	// Below the range, above the well-known and commonly configured ports;
	// or above the range.
	var candidates [][2]int
	if lo > 20000 {
		candidates = append(candidates, [2]int{20000, lo - 1})
	}
	if hi < 65000 {
		candidates = append(candidates, [2]int{hi + 1, 65535})
	}
	if len(candidates) == 0 {
		t.Fatalf("the ephemeral port range %d-%d leaves no port outside it for a server to restart on", lo, hi)
	}
	for range 100 {
		r := candidates[rand.IntN(len(candidates))]
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r[0]+rand.IntN(r[1]-r[0]+1)))
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatalf("no free port outside the ephemeral range %d-%d after 100 tries", lo, hi)
	return ""
}

// ---- mounts ----

// mount mounts srv through testenv and records the mount point for the
// final check of TestMain.
func mount(t *testing.T, srv testenv.Server, o testenv.Options) *testenv.Mount {
	t.Helper()
	m := testenv.NewMount(t, srv, o)
	trackMount(m.Dir, "fuse")
	return m
}

// ---- reading and verifying ----

// tally counts what a walk read.
type tally struct {
	mu      sync.Mutex
	files   int
	failed  int
	bytes   int64
	errnos  map[string]int
	slowest time.Duration
	shown   int
}

func newTally() *tally { return &tally{errnos: map[string]int{}} }

func (tl *tally) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return fmt.Sprintf("files read %d, failed %d, bytes verified %d, slowest read %v, errors %v",
		tl.files, tl.failed, tl.bytes, tl.slowest.Round(time.Millisecond), tl.errnos)
}

// read returns the number of files read correctly so far.
func (tl *tally) read() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.files
}

// check reads one file and compares it with want, counting the result.
// It reports mismatches and errors with t.Errorf (the first ten of each
// walk) unless quiet.
func (tl *tally) check(t *testing.T, path string, want []byte, quiet bool) error {
	start := time.Now()
	got, err := os.ReadFile(path)
	d := time.Since(start)
	if err == nil && !bytes.Equal(got, want) {
		err = fmt.Errorf("got %d bytes, want %d bytes equal to the source", len(got), len(want))
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.slowest = max(tl.slowest, d)
	if err == nil {
		tl.files++
		tl.bytes += int64(len(got))
		return nil
	}
	tl.failed++
	var errno syscall.Errno
	if errors.As(err, &errno) {
		tl.errnos[errno.Error()]++
	} else {
		tl.errnos["mismatch"]++
	}
	if !quiet && tl.shown < 10 {
		tl.shown++
		t.Errorf("read %s: %v", path, err)
	}
	return err
}

// readTree lists root, then reads every file of want under it with
// parallel readers and compares it byte for byte.
func readTree(t *testing.T, root string, want map[string][]byte, parallel int) *tally {
	t.Helper()
	rels := testenv.ListTree(t, root, want)
	return readFiles(t, root, rels, want, parallel, 0)
}

// readFiles reads rels under root with parallel readers; with pace > 0 each
// reader starts its k-th file no sooner than k×pace after the start, so the
// walk lasts about len(rels)/parallel×pace.
func readFiles(t *testing.T, root string, rels []string, want map[string][]byte, parallel int, pace time.Duration) *tally {
	t.Helper()
	tl := newTally()
	var wg sync.WaitGroup
	start := time.Now()
	for r := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := 0
			for i := r; i < len(rels); i += parallel {
				if pace > 0 {
					time.Sleep(time.Until(start.Add(time.Duration(k) * pace)))
					k++
				}
				tl.check(t, filepath.Join(root, rels[i]), want[rels[i]], false)
			}
		}()
	}
	wg.Wait()
	return tl
}

// logFigures logs the figures of a scenario.
func logFigures(t *testing.T, label string, tl *tally, st devserver.Stats, tm *testenv.Mount) {
	t.Helper()
	refreshes := int64(-1)
	if tm != nil {
		refreshes = tm.FS.Stats().URLRefreshes
	}
	t.Logf("%s: %s; server: API requests %d (503 injected %d, 429 %d, annotation files %d, image byte requests %d), "+
		"storage GETs %d (truncated %d, %d bytes), download listings %d; mount URL refreshes %d",
		label, tl, st.APIRequests, st.Injected503, st.Status429, st.AnnotationFiles, st.ImageByteRequests,
		st.StorageGets, st.Truncated, st.StorageBytes, st.DownloadListings, refreshes)
}

// ---- processes ----

// httpClient talks to e2eserver's admin listener and to raw API routes.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// binaries builds pictofs and e2eserver (without the race detector) once.
func binaries(t *testing.T) (pictofs, server string) {
	t.Helper()
	shared.binOnce.Do(func() {
		dir := filepath.Join(shared.dir, "bin")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "../..", "./e2eserver")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			shared.binErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		t.Logf("built pictofs and e2eserver in %v", time.Since(start).Round(time.Millisecond))
		shared.bin, shared.server = filepath.Join(dir, "pictofs"), filepath.Join(dir, "e2eserver")
	})
	if shared.binErr != nil {
		t.Fatal(shared.binErr)
	}
	return shared.bin, shared.server
}

// proc is a child process with its output captured.
type proc struct {
	cmd    *exec.Cmd
	stderr *testkit.Buffer
	done   chan struct{}
	err    error // valid after done
}

// startProc starts a child process, killed at cleanup if still running.
func startProc(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	p := &proc{cmd: cmd, stderr: &testkit.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// serverProc is an e2eserver child process; it is a testenv.Server.
type serverProc struct {
	*proc
	api, admin, adminKey, org string
}

func (s *serverProc) APIURL() string     { return s.api }
func (s *serverProc) AdminKey() string   { return s.adminKey }
func (s *serverProc) DefaultOrg() string { return s.org }

// startServerProc runs e2eserver with args and waits for its JSON line.
func startServerProc(t *testing.T, args ...string) *serverProc {
	t.Helper()
	_, bin := binaries(t)
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &testkit.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start e2eserver: %v", err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	go func() {
		io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err != nil {
		t.Fatalf("e2eserver did not start: %v\n%s", err, p.stderr)
	}
	var info struct{ API, Admin, Admin_Key, Org string }
	if err := json.Unmarshal(line, &info); err != nil {
		t.Fatalf("e2eserver said %q: %v", line, err)
	}
	return &serverProc{proc: p, api: info.API, admin: info.Admin, adminKey: info.Admin_Key, org: info.Org}
}

// stats returns the server's counters.
func (s *serverProc) stats(t *testing.T) devserver.Stats {
	t.Helper()
	var st devserver.Stats
	resp, err := httpClient.Get(s.admin + "/stats")
	if err == nil {
		defer resp.Body.Close()
		err = json.NewDecoder(resp.Body).Decode(&st)
	}
	if err != nil {
		t.Fatalf("e2eserver stats: %v", err)
	}
	return st
}

// resetStats zeroes the server's counters.
func (s *serverProc) resetStats(t *testing.T) {
	t.Helper()
	resp, err := httpClient.Post(s.admin+"/reset", "", nil)
	if err != nil {
		t.Fatalf("e2eserver reset: %v", err)
	}
	resp.Body.Close()
}

// mountProc runs `pictofs mount` with env and args and waits until the mount
// answers; it is stopped and unmounted at cleanup.
func mountProc(t *testing.T, env []string, mnt string, args ...string) *proc {
	t.Helper()
	testkit.RequireFUSE(t)
	bin, _ := binaries(t)
	trackMount(mnt, "fuse")
	p := startProc(t, env, bin, append(append([]string{"mount"}, args...), mnt)...)
	t.Cleanup(func() {
		if ok, _ := pfs.IsMountpoint(mnt); ok {
			if err := pfs.Unmount(mnt, true); err != nil {
				t.Errorf("unmount %s: %v", mnt, err)
			}
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ok, _ := pfs.IsMountpoint(mnt); ok {
			if _, err := os.ReadDir(mnt); err == nil {
				return p
			}
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("pictofs mount did not come up (exited %v: %v)\n%s", p.exited(), p.err, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// baseEnv is the environment of a child pictofs: no config file or key
// from the user running the tests.
func baseEnv(t *testing.T) []string {
	home := t.TempDir()
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "XDG_CACHE_HOME=" + filepath.Join(home, ".cache")}
	return env
}

// procState returns the state letter of /proc/PID/stat (R, S, D, Z…).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// mountOptions returns the options field of mnt's /proc/mounts line.
func mountOptions(t *testing.T, mnt string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[1] == mnt {
			return strings.Split(f[3], ",")
		}
	}
	t.Fatalf("%s is not in /proc/mounts", mnt)
	return nil
}

// mountTmpfs mounts a tmpfs of size bytes at a new directory, unmounted at
// cleanup.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	testkit.RequireRoot(t, "mounting a tmpfs")
	dir := t.TempDir()
	trackMount(dir, "tmpfs")
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Logf("unmount tmpfs %s: %v; detaching", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// under returns the entries of want below dir, keyed relative to it.
func under(want map[string][]byte, dir string) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range want {
		if rel, ok := strings.CutPrefix(k, dir+string(filepath.Separator)); ok {
			out[rel] = v
		}
	}
	return out
}

// keys returns the sorted keys of m.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
