package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/pictofs/pictofs/catalog"
)

// Mounted is a live mount.
type Mounted struct {
	server *fuse.Server
	fs     *fsys
	dir    string
	// conn is the kernel's id of the FUSE connection (the minor number of
	// the mount's device), the name of its directory under fusectl.
	conn uint32
}

// Stats are counters of a live mount.
type Stats struct {
	catalog.Stats
	// DaemonReads counts reads of cached blobs served by this process;
	// with passthrough the kernel serves them and this stays near zero.
	DaemonReads int64
	// Passthrough reports whether the kernel granted FUSE passthrough.
	Passthrough bool
}

// Mount checks mountpoint, mounts the filesystem there and serves it in the
// background until Unmount. It returns once the kernel has the mount.
func Mount(ctx context.Context, mountpoint string, opts Options) (*Mounted, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mount point %s: %w", mountpoint, err)
	}
	if err := CheckMountpoint(abs); err != nil {
		return nil, err
	}
	f := newFsys(opts)
	root := &rootNode{fs: f}
	fsOpts := &gofs.Options{
		EntryTimeout:    &f.listTTL,
		AttrTimeout:     &f.listTTL,
		NegativeTimeout: &opts.NegativeTTL,
		UID:             opts.UID,
		GID:             opts.GID,
		RootStableAttr:  &gofs.StableAttr{Ino: 1},
		Logger:          log.New(slogWriter{opts.Logger}, "", 0),
		MountOptions: fuse.MountOptions{
			AllowOther:    opts.AllowOther,
			FsName:        opts.FSName,
			Name:          "pictofs",
			DirectMount:   os.Geteuid() == 0,
			MaxWrite:      1 << 20,
			MaxReadAhead:  1 << 20,
			MaxBackground: 64,
			// Every getxattr (security.selinux, ACLs on each ls -l) would be
			// a round trip answered "no data"; ENOSYS stops them for good.
			DisableXAttrs: true,
			Debug:         opts.DebugFUSE,
			// O_TRUNC arrives with OPEN instead of as a SETATTR after it.
			ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC,
			Logger:            log.New(slogWriter{opts.Logger}, "", 0),
		},
	}
	if opts.ReadOnly {
		fsOpts.MountOptions.Options = append(fsOpts.MountOptions.Options, "ro")
	}
	raw := gofs.NewNodeFS(root, fsOpts)
	if opts.ObserveOp != nil {
		raw = &observedFS{RawFileSystem: raw, observe: opts.ObserveOp}
	}
	server, err := fuse.NewServer(raw, abs, &fsOpts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", abs, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", abs, err)
	}
	m := &Mounted{server: server, fs: f, dir: abs}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err == nil {
		m.conn = unix.Minor(st.Dev)
	}
	return m, nil
}

// Dir is the absolute mount point.
func (m *Mounted) Dir() string { return m.dir }

// Passthrough reports whether the kernel granted FUSE passthrough.
func (m *Mounted) Passthrough() bool {
	return m.server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0 && !m.fs.opts.DisablePassthrough
}

// Stats returns the mount's counters.
func (m *Mounted) Stats() Stats {
	return Stats{Stats: m.fs.cat.Stats(), DaemonReads: m.fs.daemonReads.Load(), Passthrough: m.Passthrough()}
}

// Wait blocks until the filesystem is unmounted (by Unmount or from outside).
func (m *Mounted) Wait() {
	m.server.Wait()
}

// Unmount detaches the filesystem. It fails with ErrBusy while files are
// open unless lazy is set, in which case the kernel detaches it at once and
// finishes when the last file closes. The serve loop then ends and Wait
// returns.
func (m *Mounted) Unmount(lazy bool) error {
	return Unmount(m.dir, lazy)
}

// Abort ends the mount now, whatever is open or in flight on it. It
// detaches the mount point lazily (open files do not hold it), cancels the
// mount's listings, loads and fetches (catalog.Abort), so every open waiting
// for one fails at once; nothing partial enters the cache, since blobcache
// publishes a blob only when complete.
// Where fusectl is mounted (/sys/fs/fuse/connections) it also aborts the
// kernel connection: requests not yet answered fail with ENOTCONN and Wait
// returns. Without fusectl the connection ends when its last open file
// closes or the process exits. The catalog must not be used after Abort;
// calling Abort again does nothing more.
func (m *Mounted) Abort() {
	if mounted, _ := IsMountpoint(m.dir); mounted {
		if err := Unmount(m.dir, true); err != nil {
			m.fs.log.Warn("detaching the mount failed", "mountpoint", m.dir, "err", err)
		}
	}
	m.fs.cat.Abort()
	if m.conn == 0 {
		return
	}
	err := os.WriteFile(fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", m.conn), []byte("1"), 0)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		m.fs.log.Debug("aborting the FUSE connection failed", "connection", m.conn, "err", err)
	}
}

// Datasets returns the entry names of the datasets the mount lists now
// (none before the first listing of its root), sorted.
func (m *Mounted) Datasets() []string { return m.fs.cat.ListedNames() }

// CheckMountpoint returns a clear error unless path is an existing, empty
// directory that is not already a mount point, and /dev/fuse exists.
func CheckMountpoint(path string) error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("/dev/fuse is missing: FUSE is not available on this machine (load the fuse module, or give the container --device /dev/fuse)")
	}
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, syscall.ENOTCONN) {
			return fmt.Errorf("mount point %s is a dead mount (transport endpoint is not connected): run 'pictofs unmount %s' first", path, path)
		}
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mount point %s does not exist: create it with 'mkdir -p %s'", path, path)
		}
		return fmt.Errorf("mount point %s: %w", path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("mount point %s is not a directory", path)
	}
	if mounted, err := IsMountpoint(path); err == nil && mounted {
		return fmt.Errorf("mount point %s is already mounted: unmount it first ('pictofs unmount %s')", path, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", path, err)
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("mount point %s is not empty: mounting would hide its files; use an empty directory", path)
	}
	return nil
}

// IsMountpoint reports whether path is listed in /proc/self/mounts.
func IsMountpoint(path string) (bool, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, err
	}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && unescapeMountPath(fields[1]) == abs {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMountPath undoes the octal escapes of /proc/self/mounts.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, ch := range s[i+1 : i+4] {
				if ch < '0' || ch > '7' {
					ok = false
					break
				}
				v = v*8 + byte(ch-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ErrBusy is returned by Unmount when files on the mount are still open.
var ErrBusy = errors.New("mount is busy")

// Unmount detaches the pictofs mount at path, including one whose daemon
// died ("transport endpoint is not connected"). Without lazy it fails with
// ErrBusy while files are open; with lazy the kernel detaches it at once.
func Unmount(path string, lazy bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if mounted, err := IsMountpoint(abs); err == nil && !mounted {
		return fmt.Errorf("%s is not mounted", abs)
	}
	flags := 0
	if lazy {
		flags = syscall.MNT_DETACH
	}
	err = syscall.Unmount(abs, flags)
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("unmount %s: files are still open (%w); close them, or run 'pictofs unmount --lazy %s'", abs, ErrBusy, abs)
	}
	if errors.Is(err, syscall.EPERM) {
		args := []string{"-u"}
		if lazy {
			args = append(args, "-z")
		}
		for _, bin := range []string{"fusermount3", "fusermount"} {
			if p, lookErr := exec.LookPath(bin); lookErr == nil {
				out, runErr := exec.Command(p, append(args, abs)...).CombinedOutput()
				if runErr == nil {
					return nil
				}
				msg := strings.TrimSpace(string(out))
				if strings.Contains(msg, "busy") {
					return fmt.Errorf("unmount %s: files are still open (%w); close them, or run 'pictofs unmount --lazy %s'", abs, ErrBusy, abs)
				}
				return fmt.Errorf("unmount %s: %s: %s", abs, bin, msg)
			}
		}
	}
	return fmt.Errorf("unmount %s: %w", abs, err)
}

// slogWriter adapts go-fuse's log.Logger output to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)), "component", "go-fuse")
	return len(p), nil
}
