package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// opsDataset is the dataset every ops test mounts: opsImages synthetic
// images in two folders, dir-000 and dir-001.
const (
	opsDataset = "ds"
	opsImages  = 24
)

// built is the pictofs binary, built once for the tests that run it as a
// user would (signals, exit codes, mount(8)).
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// pictofsBin builds the binary on first use.
func pictofsBin(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "pictofs-ops-bin-")
		if built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "pictofs")
		out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// opsEnv is a devserver with the ops dataset, and the environment a pictofs
// process runs with: its own HOME and XDG_RUNTIME_DIR (so control sockets
// and ~ are the test's), the server's URL and admin key.
type opsEnv struct {
	srv  *devserver.Server
	home string
	key  string
	env  []string
}

func newOpsEnv(t *testing.T) *opsEnv {
	t.Helper()
	testkit.RequireFUSE(t)
	srv := testenv.StartServer(t, devserver.Options{})
	if err := srv.SeedSynthetic(context.Background(), srv.DefaultOrg(), opsDataset, opsImages, 2); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	e := &opsEnv{srv: srv, home: home, key: srv.AdminKey()}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PICTOGRAPH_") && !strings.HasPrefix(kv, "PICTOFS_") &&
			!strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			e.env = append(e.env, kv)
		}
	}
	e.env = append(e.env, "HOME="+home, "XDG_RUNTIME_DIR="+filepath.Join(home, "run"),
		"PICTOGRAPH_API_KEY="+e.key, "PICTOGRAPH_BASE_URL="+srv.APIURL())
	return e
}

// imagePath is image i of the ops dataset under a mount point.
func imagePath(mnt string, i int) string {
	return filepath.Join(mnt, opsDataset, "images", fmt.Sprintf("dir-%03d", i%2), devserver.SyntheticFilename(i))
}

// command is a pictofs command in the test's environment.
func (e *opsEnv) command(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(pictofsBin(t), args...)
	cmd.Env = e.env
	cmd.Dir = e.home
	return cmd
}

// daemon is a running `pictofs mount` process.
type daemon struct {
	cmd   *exec.Cmd
	mnt   string
	cache string
	log   *lineLog
	done  chan struct{} // closed when the process has exited
	err   error         // its exit error, once done
}

// startMount runs `pictofs mount … MOUNTPOINT` with JSON logs, waits for its
// "mounted" event, and at cleanup kills it if needed, detaches what it left
// and checks that its log never held the key.
func (e *opsEnv) startMount(t *testing.T, args ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	full := append([]string{"mount", "--cache-dir", filepath.Join(dir, "cache"), "--log-format", "json"}, args...)
	d := &daemon{cmd: e.command(t, append(full, mnt)...), mnt: mnt, cache: filepath.Join(dir, "cache"), log: newLineLog(), done: make(chan struct{})}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.log.consume(stderr)
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			d.cmd.Process.Kill()
			<-d.done
		}
		if mounted, _ := fs.IsMountpoint(mnt); mounted {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		if strings.Contains(d.log.String(), e.key) {
			t.Errorf("the daemon's log holds the API key")
		}
	})
	if _, ok := d.log.waitFor(`"msg":"mounted"`, 30*time.Second, d.done); !ok {
		t.Fatalf("pictofs mount did not report being mounted:\n%s", d.log.String())
	}
	return d
}

// signal sends sig to the daemon.
func (d *daemon) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits up to limit for the daemon to exit and returns how long
// it took; it fails the test when it does not.
func (d *daemon) waitExit(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-d.done:
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("the daemon did not exit within %v of the signal; log:\n%s", limit, d.log.String())
		return 0
	}
}

// lineLog collects a process's output lines and lets tests wait for one.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
}

// waitFor waits until a line contains substr, the process ends (done), or
// timeout passes.
func (l *lineLog) waitFor(substr string, timeout time.Duration, done <-chan struct{}) (string, bool) {
	deadline := time.After(timeout)
	for seen := 0; ; {
		l.mu.Lock()
		for ; seen < len(l.lines); seen++ {
			if strings.Contains(l.lines[seen], substr) {
				line := l.lines[seen]
				l.mu.Unlock()
				return line, true
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-done:
			done = nil // read what is left, then give up at the deadline or now
			l.mu.Lock()
			n := len(l.lines)
			l.mu.Unlock()
			if seen >= n {
				return "", false
			}
		case <-deadline:
			return "", false
		}
	}
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// events are the JSON log lines, decoded.
func (l *lineLog) events(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range l.lines {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("log line is not JSON: %v: %s", err, line)
			continue
		}
		out = append(out, ev)
	}
	return out
}

// checkNoPartialBlobs fails when the cache directory holds a staging file
// or a blob whose size differs from the size its name records.
func checkNoPartialBlobs(t *testing.T, cacheDir string) {
	t.Helper()
	filepath.WalkDir(cacheDir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(cacheDir, p)
		if strings.HasPrefix(rel, "tmp"+string(filepath.Separator)) && !strings.HasSuffix(rel, ".lock") {
			t.Errorf("the cache holds a staging file after shutdown: %s", rel)
			return nil
		}
		parts := strings.Split(e.Name(), "-")
		if len(parts) != 3 || len(filepath.Dir(rel)) != 2 {
			return nil
		}
		info, err := e.Info()
		if err == nil && fmt.Sprint(info.Size()) != parts[1] {
			t.Errorf("blob %s holds %d bytes, its name says %s", rel, info.Size(), parts[1])
		}
		return nil
	})
}
