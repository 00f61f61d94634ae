package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/control"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

func TestHelperArgs(t *testing.T) {
	flags := mountFlags(true)
	tests := []struct {
		name string
		argv []string
		want []string // nil: an error containing wantErr
		err  string
	}{
		{"mount(8) direct", []string{"/sbin/mount.fuse.pictofs", "pictofs", "/mnt/p", "-o", "rw,nodev,nosuid,cache_dir=/var/cache/p,cache_size=20GiB,allow_other,_netdev,noauto,user"},
			[]string{"pictofs", "mount", "--daemon", "--cache-dir=/var/cache/p", "--cache-size=20GiB", "--allow-other", "/mnt/p"}, ""},
		{"mount.fuse3 defaults", []string{"pictofs", "src", "/mnt/p", "-o", "rw,dev,suid"},
			[]string{"pictofs", "mount", "--daemon", "/mnt/p"}, ""},
		{"API URL as source, ro, key file", []string{"mount.fuse.pictofs", "https://api.example.test", "/mnt/p", "-o", "ro,api_key_file=/etc/pictofs/key,passthrough=false,x-systemd.automount"},
			[]string{"pictofs", "mount", "--daemon", "--api-url=https://api.example.test", "--read-only", "--api-key-file=/etc/pictofs/key", "--passthrough=false", "/mnt/p"}, ""},
		{"unknown option", []string{"mount.fuse.pictofs", "p", "/mnt/p", "-o", "cache_dir=/c,bogus=1"}, nil, `unknown mount option "bogus"`},
		{"sloppy ignores unknown", []string{"mount.fuse.pictofs", "p", "/mnt/p", "-s", "-o", "bogus=1"}, []string{"pictofs", "mount", "--daemon", "/mnt/p"}, ""},
		{"key in fstab refused", []string{"mount.fuse.pictofs", "p", "/mnt/p", "-o", "api_key=pk_live_x"}, nil, "api_key_file"},
		{"value missing", []string{"mount.fuse.pictofs", "p", "/mnt/p", "-o", "cache_dir"}, nil, "needs a value"},
		{"one path only", []string{"mount.fuse.pictofs", "/mnt/p"}, nil, "SOURCE MOUNTPOINT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := helperArgs(tt.argv, flags)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("helperArgs(%q): got %q, %v; want an error containing %q", tt.argv, got, err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("helperArgs(%q):\n got %q, %v\nwant %q", tt.argv, got, err, tt.want)
			}
		})
	}
}

func TestIsHelperCall(t *testing.T) {
	app := newApp()
	tests := []struct {
		argv []string
		want bool
	}{
		{[]string{"/sbin/mount.fuse.pictofs", "src", "/mnt"}, true},
		{[]string{"/usr/local/bin/pictofs", "src", "/mnt", "-o", "rw"}, true},
		{[]string{"pictofs", "mount", "/mnt", "-o", "rw"}, false},
		{[]string{"pictofs", "mount", "--cache-dir", "/c", "/mnt"}, false},
		{[]string{"pictofs", "src", "/mnt"}, false},
		{[]string{"pictofs", "status"}, false},
	}
	for _, tt := range tests {
		if got := isHelperCall(tt.argv, app); got != tt.want {
			t.Errorf("isHelperCall(%q): got %v, want %v", tt.argv, got, tt.want)
		}
	}
}

func TestExpandPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	wd, _ := os.Getwd()
	tests := []struct{ in, want, err string }{
		{"~", home, ""},
		{"~/cache", filepath.Join(home, "cache"), ""},
		{"rel/dir", filepath.Join(wd, "rel/dir"), ""},
		{"./a/../b", filepath.Join(wd, "b"), ""},
		{"/abs/../abs2", "/abs2", ""},
		{"~no-such-user-xyz/c", "", "~no-such-user-xyz/c: cannot expand ~no-such-user-xyz: no such user"},
		{" ", "", "is empty"},
	}
	for _, tt := range tests {
		got, err := expandPath(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("expandPath(%q): got %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("expandPath(%q): got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestMountConfigCheck: every bad flag gets one line that names the flag
// and the value.
func TestMountConfigCheck(t *testing.T) {
	good := func() mountConfig {
		return mountConfig{Mountpoint: "/mnt/p", CacheDir: "/c", CacheSize: "1GiB", CacheMinFree: 0.05, PrefetchWorkers: 8,
			ListTTL: time.Minute, AnnotationTTL: time.Minute, UID: -1, GID: -1, Log: logConfig{Level: "info", Format: "text"}}
	}
	tests := []struct {
		name   string
		change func(*mountConfig)
		err    string
	}{
		{"valid", func(*mountConfig) {}, ""},
		{"cache size", func(c *mountConfig) { c.CacheSize = "lots" }, `--cache-size "lots"`},
		{"zero cache", func(c *mountConfig) { c.CacheSize = "0" }, "must be above zero"},
		{"min free", func(c *mountConfig) { c.CacheMinFree = 1 }, "--cache-min-free: free share 1: must be below 1"},
		{"negative min free", func(c *mountConfig) { c.CacheMinFree = -0.1 }, "--cache-min-free -0.1: want a share in [0, 1)"},
		{"workers", func(c *mountConfig) { c.PrefetchWorkers = 0 }, "--prefetch-workers 0: want 1 to 1024"},
		{"too many workers", func(c *mountConfig) { c.PrefetchWorkers = 1025 }, "--prefetch-workers: 1025 workers: want 1 to 1024"},
		{"status", func(c *mountConfig) { c.StatusFilter = "done" }, `--status: status "done": want one of new, annotate, review, complete`},
		{"list ttl", func(c *mountConfig) { c.ListTTL = -time.Second }, "--list-ttl: list TTL -1s"},
		{"uid", func(c *mountConfig) { c.UID = -2 }, "--uid -2"},
		{"log format", func(c *mountConfig) { c.Log.Format = "xml" }, `--log-format "xml"`},
		{"log level", func(c *mountConfig) { c.Log.Level = "loud" }, `--log-level "loud"`},
		{"metrics addr", func(c *mountConfig) { c.MetricsAddr = "9567" }, `--metrics-addr "9567"`},
		{"key twice", func(c *mountConfig) { c.API.Key, c.API.KeyFile = "k", "/f" }, "give one, not both"},
		{"budget", func(c *mountConfig) { c.API.RequestsPerHour = -1 }, "--requests-per-hour: requests per hour -1"},
		{"grace", func(c *mountConfig) { c.ShutdownGrace = -time.Second }, "--shutdown-grace -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.change(&c)
			err := c.check()
			if tt.err == "" {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want one line containing %q", err, tt.err)
			}
		})
	}
	c := good()
	c.MetricsAddr, c.PprofAddr = ":9567", "0.0.0.0:6060"
	if err := c.check(); err != nil || c.MetricsAddr != "127.0.0.1:9567" || c.PprofAddr != "0.0.0.0:6060" {
		t.Errorf("addresses: got %q, %q, %v; want a bare port on loopback and an explicit host kept", c.MetricsAddr, c.PprofAddr, err)
	}
}

// waitGone waits for a process that is not the test's child to exit.
func waitGone(t *testing.T, pid int, limit time.Duration) {
	t.Helper()
	testkit.WaitFor(t, "daemon "+strconv.Itoa(pid)+" to exit", limit, func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(b), ") Z ")
	})
}

// statusOf asks the daemon of mnt for its status.
func statusOf(t *testing.T, e *opsEnv, mnt string) control.Status {
	t.Helper()
	st, err := fetchStatus(t.Context(), control.SocketPath(filepath.Join(e.home, "run", "pictofs"), mnt))
	if err != nil {
		t.Fatalf("status of %s: %v", mnt, err)
	}
	return st
}

// TestDaemonMode: --daemon returns once the mount serves (relative mount
// point, ~ in --cache-dir), and fails with the reason when it cannot mount.
func TestDaemonMode(t *testing.T) {
	e := newOpsEnv(t)
	mnt := filepath.Join(e.home, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ok, _ := fs.IsMountpoint(mnt); ok {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})

	bad := e.command(t, "mount", "--daemon", "--cache-dir=~/cache", "mnt")
	bad.Env = append(bad.Env, "PICTOGRAPH_API_KEY=pk_live_wrong_key_123")
	out, err := bad.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "rejected") {
		t.Errorf("--daemon with a wrong key: got %v\n%s\nwant a failure saying the key was rejected", err, out)
	}
	if ok, _ := fs.IsMountpoint(mnt); ok {
		t.Fatalf("a failed --daemon left %s mounted", mnt)
	}

	out, err = e.command(t, "mount", "--daemon", "--cache-dir=~/cache", "mnt").CombinedOutput()
	if err != nil {
		t.Fatalf("pictofs mount --daemon: %v\n%s", err, out)
	}
	if ok, _ := fs.IsMountpoint(mnt); !ok {
		t.Fatalf("pictofs mount --daemon returned before %s was mounted", mnt)
	}
	if _, err := os.ReadFile(imagePath(mnt, 5)); err != nil {
		t.Errorf("read through the daemon's mount: %v", err)
	}
	st := statusOf(t, e, mnt)
	if want := filepath.Join(e.home, "cache"); st.Cache.Dir != want {
		t.Errorf("cache dir: got %q, want %q (~ expanded)", st.Cache.Dir, want)
	}
	if out, err := e.command(t, "unmount", "mnt").CombinedOutput(); err != nil {
		t.Fatalf("pictofs unmount mnt: %v\n%s", err, out)
	}
	waitGone(t, st.PID, exitBound)
}

// installHelper puts the pictofs binary where mount(8) looks for it, for
// the test's duration. It skips (testenv.Unavailable) when that needs root
// or the place is taken.
func installHelper(t *testing.T, path string) {
	t.Helper()
	testkit.RequireRoot(t, "installing a mount helper")
	if _, err := os.Lstat(path); err == nil {
		testkit.Unavailable(t, testkit.FUSEEnv, path+" exists already; not replacing it")
	}
	if err := os.Symlink(pictofsBin(t), path); err != nil {
		t.Fatalf("install the helper: %v", err)
	}
	t.Cleanup(func() { os.Remove(path) })
}

// TestMountHelper mounts with mount(8), as fstab would: through
// /sbin/mount.fuse.pictofs, and through mount.fuse3 finding pictofs on its
// PATH. Options become flags (ro is honoured), and an unknown option is a
// clear error that mounts nothing.
func TestMountHelper(t *testing.T) {
	testkit.RequireTool(t, "mount")
	e := newOpsEnv(t)
	keyFile := filepath.Join(e.home, "api-key")
	if err := os.WriteFile(keyFile, []byte(e.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, helper string }{
		{"mount.fuse.pictofs", "/sbin/mount.fuse.pictofs"},
		{"mount.fuse3", "/usr/local/bin/pictofs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			installHelper(t, tt.helper)
			dir := t.TempDir()
			mnt := filepath.Join(dir, "mnt")
			os.Mkdir(mnt, 0o755)
			t.Cleanup(func() {
				if ok, _ := fs.IsMountpoint(mnt); ok {
					syscall.Unmount(mnt, syscall.MNT_DETACH)
				}
			})
			mount := func(opts string) *exec.Cmd {
				cmd := exec.Command("mount", "-t", "fuse.pictofs", e.srv.APIURL(), mnt, "-o", opts)
				for _, kv := range e.env { // the key comes from api_key_file, as in fstab
					if !strings.HasPrefix(kv, "PICTOGRAPH_") {
						cmd.Env = append(cmd.Env, kv)
					}
				}
				return cmd
			}
			out, err := mount("bogus_option=1").CombinedOutput()
			if err == nil || !strings.Contains(string(out), `unknown mount option "bogus_option"`) {
				t.Errorf("mount with an unknown option: got %v\n%s\nwant a clear error", err, out)
			}
			if ok, _ := fs.IsMountpoint(mnt); ok {
				t.Fatalf("a refused mount left %s mounted", mnt)
			}

			opts := "ro,noauto,_netdev,nodev,nosuid,cache_dir=" + filepath.Join(dir, "cache") + ",cache_size=64MiB,api_key_file=" + keyFile + ",log_file=" + filepath.Join(dir, "log")
			out, err = mount(opts).CombinedOutput()
			if err != nil {
				log, _ := os.ReadFile(filepath.Join(dir, "log"))
				t.Fatalf("mount -t fuse.pictofs: %v\n%s\nlog:\n%s", err, out, log)
			}
			if ok, _ := fs.IsMountpoint(mnt); !ok {
				t.Fatalf("mount returned before %s was mounted", mnt)
			}
			if _, err := os.ReadFile(imagePath(mnt, 7)); err != nil {
				t.Errorf("read through the helper's mount: %v", err)
			}
			if err := os.Mkdir(filepath.Join(mnt, "new-dataset"), 0o755); !errors.Is(err, syscall.EROFS) {
				t.Errorf("mkdir on a ro mount: got %v, want EROFS", err)
			}
			st := statusOf(t, e, mnt)
			if st.Cache.Cap != 64<<20 {
				t.Errorf("cache cap: got %d, want 64 MiB from cache_size=64MiB", st.Cache.Cap)
			}
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Fatalf("umount: %v\n%s", err, out)
			}
			waitGone(t, st.PID, exitBound)
			if log, _ := os.ReadFile(filepath.Join(dir, "log")); strings.Contains(string(log), e.key) {
				t.Errorf("the helper daemon's log file holds the API key")
			}
		})
	}
}

// TestSystemdUnit checks the README's example unit with systemd-analyze
// verify (with the unit's binary path pointed at the test binary).
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		testkit.Unavailable(t, "PICTOFS_REQUIRE_SYSTEMD", "systemd-analyze is missing")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```ini\n# /etc/systemd/system/(pictofs\\.service)\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no ```ini block starting with # /etc/systemd/system/pictofs.service")
	}
	unit := strings.ReplaceAll(string(m[2]), "/usr/local/bin/pictofs", pictofsBin(t))
	dir := t.TempDir()
	path := filepath.Join(dir, string(m[1]))
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("systemd-analyze", "verify", path)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
