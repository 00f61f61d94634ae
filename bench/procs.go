package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cleanups is a stack of undo functions (unmounts, process stops, temp
// dirs) run in reverse order at exit, whatever the outcome.
type cleanups struct {
	mu  sync.Mutex
	fns []cleanupFn
}

type cleanupFn struct {
	name string
	fn   func() error
}

func (c *cleanups) push(name string, fn func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, cleanupFn{name, fn})
}

// run calls every function, newest first, and reports the ones that failed.
func (c *cleanups) run(logf func(string, ...any)) {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		if err := fns[i].fn(); err != nil {
			logf("cleanup %s: %v", fns[i].name, err)
		}
	}
}

// proc is a child process in its own process group (so a Ctrl-C at the
// terminal reaches only the harness, which then stops it in order), with its
// output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // the Wait result, set before done is closed
}

// startProc starts args[0] with args[1:], stdout and stderr appended to
// logPath, env added to the harness's environment (and unset for names in
// unset).
func startProc(name, logPath string, env, unset []string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = procEnv(env, unset)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func procEnv(env, unset []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, u := range unset {
			drop = drop || name == u
		}
		for _, e := range env {
			n, _, _ := strings.Cut(e, "=")
			drop = drop || name == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the process to exit.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stop asks the process group to stop with SIGTERM, then kills it after
// grace. It is a no-op for an exited process.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	if p.wait(grace) {
		return nil
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	if !p.wait(10 * time.Second) {
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.pid())
	}
	return nil
}

// logTail is the last n lines of the process's log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// peakRSS is VmHWM of the process in bytes, -1 when it cannot be read.
func peakRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb * 1024
		}
	}
	return -1
}

// isMounted reports whether dir is a mount point in /proc/self/mountinfo.
func isMounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return true
		}
	}
	return false
}

func unescapeMountinfo(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// dropCaches writes back dirty pages and drops the page cache, dentries and
// inodes, so the next read comes from disk.
func dropCaches() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop page cache: %w", err)
	}
	return nil
}

// mountKind names a FUSE filesystem the harness mounts.
type mountKind string

const (
	kindPictofs mountKind = "pictofs"
	kindRclone  mountKind = "rclone"
	kindS3fs    mountKind = "s3fs"
	kindFloor   mountKind = "loopback"
)

// mounted is a running FUSE daemon and its mount point.
type mounted struct {
	kind    mountKind
	dir     string
	p       *proc
	bin     string // the pictofs binary, for `pictofs unmount`
	once    sync.Once
	stopErr error
	rss     int64 // VmHWM read just before the unmount, bytes
	// before is the API proxy's count when the mount started and counter
	// reads it again: requests is what the mount spent, mount to exit
	// (pictofs only).
	before   requestCounts
	counter  func() requestCounts
	requests requestCounts
}

// waitMounted waits until dir shows up as a mount point, the daemon exits,
// or timeout passes.
func waitMounted(ctx context.Context, m *mounted, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !isMounted(m.dir) {
		if m.p.exited() {
			return fmt.Errorf("%s mount at %s exited before mounting: %v\n%s", m.kind, m.dir, m.p.err, m.p.logTail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not mount %s within %v:\n%s", m.kind, m.dir, timeout, m.p.logTail(20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// unmount reads the daemon's peak RSS, unmounts (the filesystem's own way,
// then lazily), and waits for the daemon to exit, killing it if it must.
// It is safe to call more than once.
func (m *mounted) unmount() error {
	m.once.Do(func() { m.stopErr = m.doUnmount() })
	return m.stopErr
}

func (m *mounted) doUnmount() error {
	if !m.p.exited() {
		m.rss = peakRSS(m.p.pid())
	}
	var errs []error
	if isMounted(m.dir) {
		var err error
		if m.kind == kindPictofs {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, cerr := exec.CommandContext(ctx, m.bin, "unmount", m.dir).CombinedOutput()
			cancel()
			if cerr != nil {
				err = fmt.Errorf("pictofs unmount: %w: %s", cerr, strings.TrimSpace(string(out)))
			}
		} else {
			err = syscall.Unmount(m.dir, 0)
		}
		if err != nil || !m.p.wait(30*time.Second) {
			errs = append(errs, fmt.Errorf("unmount %s: %v; detaching lazily", m.dir, err))
			if isMounted(m.dir) {
				if lerr := syscall.Unmount(m.dir, syscall.MNT_DETACH); lerr != nil {
					errs = append(errs, fmt.Errorf("lazy unmount %s: %w", m.dir, lerr))
				}
			}
		}
	}
	if !m.p.wait(15 * time.Second) {
		errs = append(errs, fmt.Errorf("%s daemon did not exit after unmount; stopping it", m.kind))
		if err := m.p.stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if m.counter != nil {
		m.requests = m.counter().minus(m.before)
	}
	return errors.Join(errs...)
}

// freshDir makes an empty directory under parent.
func freshDir(parent, pattern string) (string, error) {
	d, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return "", fmt.Errorf("make directory: %w", err)
	}
	return filepath.Clean(d), nil
}
