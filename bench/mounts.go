package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Peers at their best for read-mostly small files, as their documentation
// recommends (and bench-notes.md lists); the report prints them.
var (
	rcloneFlags = []string{"--read-only", "--no-modtime", "--vfs-fast-fingerprint", "--vfs-cache-mode", "full",
		"--transfers", "32", "--checkers", "32"}
	s3fsFlags = []string{"-o", "ro,parallel_count=32,multireq_max=32,enable_noobj_cache,notsup_compat_dir,stat_cache_expire=3600"}
)

// floorDescription says what the FUSE floor is, for the report.
const floorDescription = "go-fuse v2 fs.NewLoopbackRoot over the local copy (bench/loopback): passthrough reads, " +
	"DirectMount, DisableXAttrs, entry/attr/negative timeouts 1h; read warm (page cache dropped)"

// pictofsMountFlags are the flags every pictofs mount of the run gets.
func (h *harness) pictofsMountFlags() []string {
	return []string{"--cache-size", h.cfg.cacheSize, "--prefetch-workers", strconv.Itoa(h.cfg.prefetchWorkers)}
}

// mountPictofs mounts pictofs with the given cache directory, through the
// API proxy; the dataset is at <mount>/<dataset>. extra are more mount
// flags.
func (h *harness) mountPictofs(ctx context.Context, cache string, passthrough bool, extra ...string) (*mounted, error) {
	n := h.next()
	mnt, err := freshDir(h.work, "mnt-pictofs-")
	if err != nil {
		return nil, err
	}
	args := append([]string{h.bin, "mount", "--api-url", h.proxy.url, "--cache-dir", cache}, h.pictofsMountFlags()...)
	args = append(args, "--passthrough="+strconv.FormatBool(passthrough))
	args = append(append(args, extra...), mnt)
	before := h.proxy.snapshot()
	p, err := startProc("pictofs mount", filepath.Join(h.logs, fmt.Sprintf("pictofs-mount-%02d.log", n)),
		[]string{"PICTOGRAPH_API_KEY=" + h.key}, []string{"PICTOGRAPH_BASE_URL", "PICTOFS_API_KEY"}, args...)
	if err != nil {
		return nil, err
	}
	return h.waitMount(ctx, &mounted{kind: kindPictofs, dir: mnt, p: p, bin: h.bin, before: before, counter: h.proxy.snapshot})
}

// mountFloor mounts the FUSE floor over the reference copy.
func (h *harness) mountFloor(ctx context.Context) (*mounted, error) {
	n := h.next()
	mnt, err := freshDir(h.work, "mnt-floor-")
	if err != nil {
		return nil, err
	}
	p, err := startProc("loopback", filepath.Join(h.logs, fmt.Sprintf("floor-%02d.log", n)), nil, nil, h.loopback, h.ref, mnt)
	if err != nil {
		return nil, err
	}
	return h.waitMount(ctx, &mounted{kind: kindFloor, dir: mnt, p: p})
}

func (h *harness) waitMount(ctx context.Context, m *mounted) (*mounted, error) {
	h.cl.push("unmount "+m.dir, m.unmount)
	if err := waitMounted(ctx, m, time.Minute); err != nil {
		return nil, errors.Join(err, m.unmount())
	}
	return m, nil
}

// mountPeer mounts rclone or s3fs over the S3 bucket with a fresh cache.
func (h *harness) mountPeer(ctx context.Context, kind mountKind) (*mounted, error) {
	n := h.next()
	mnt, err := freshDir(h.work, "mnt-"+string(kind)+"-")
	if err != nil {
		return nil, err
	}
	cache, err := freshDir(h.work, "cache-"+string(kind)+"-")
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(h.logs, fmt.Sprintf("%s-%02d.log", kind, n))
	unset := []string{"AWS_CA_BUNDLE"}
	var p *proc
	switch kind {
	case kindRclone:
		conf := filepath.Join(h.work, "rclone.conf")
		if err := os.WriteFile(conf, nil, 0o600); err != nil {
			return nil, fmt.Errorf("rclone config: %w", err)
		}
		env := []string{"RCLONE_CONFIG=" + conf, "RCLONE_S3_PROVIDER=Other", "RCLONE_S3_ENDPOINT=" + h.s3.url,
			"RCLONE_S3_ACCESS_KEY_ID=bench", "RCLONE_S3_SECRET_ACCESS_KEY=benchsecret", "RCLONE_S3_REGION=us-east-1"}
		args := append([]string{"rclone", "mount", ":s3:" + s3Bucket, mnt, "--cache-dir", cache}, rcloneFlags...)
		p, err = startProc("rclone mount", logPath, env, unset, args...)
	case kindS3fs:
		pw := filepath.Join(h.work, "s3fs.passwd")
		if err := os.WriteFile(pw, []byte("bench:benchsecret\n"), 0o600); err != nil {
			return nil, fmt.Errorf("s3fs passwd: %w", err)
		}
		args := append([]string{"s3fs", s3Bucket, mnt, "-f", "-o", "url=" + h.s3.url, "-o", "use_path_request_style",
			"-o", "passwd_file=" + pw, "-o", "use_cache=" + cache}, s3fsFlags...)
		p, err = startProc("s3fs", logPath, nil, unset, args...)
	}
	if err != nil {
		return nil, err
	}
	return h.waitMount(ctx, &mounted{kind: kind, dir: mnt, p: p})
}

// passthroughRe matches the mount's log line in text (passthrough=true) or
// JSON ("passthrough":true) form.
var passthroughRe = regexp.MustCompile(`\bpassthrough"?[=:]\s*(true|false)\b`)

// passthroughOffered is what the daemon logged on mount: whether the kernel
// offered FUSE passthrough (pictofs and the floor log "passthrough=…");
// nil if it logged nothing.
func passthroughOffered(m *mounted) *bool {
	b, err := os.ReadFile(m.p.logPath)
	if err != nil {
		return nil
	}
	return passthroughInLog(b)
}

func passthroughInLog(b []byte) *bool {
	sm := passthroughRe.FindSubmatch(b)
	if sm == nil {
		return nil
	}
	v := string(sm[1]) == "true"
	return &v
}

// diskReadBytes is read_bytes of /proc/PID/io: the bytes the process made
// the kernel read from storage, -1 if unknown.
func diskReadBytes(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "read_bytes:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// daemonEpoch runs an epoch of wl over root on mount m with the page cache
// dropped first, and records it with the daemon's disk reads during it.
func (h *harness) daemonEpoch(ctx context.Context, m *mounted, wl, sys, root string) (epochResult, int64, error) {
	h.drop()
	before := diskReadBytes(m.p.pid())
	res, err := h.epoch(ctx, wl, sys, root)
	after := diskReadBytes(m.p.pid())
	read := int64(-1)
	if before >= 0 && after >= 0 {
		read = after - before
	}
	return res, read, err
}
