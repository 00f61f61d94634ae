package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/internal/units"
	"github.com/pictofs/pictofs/prefetch"
)

// Defaults of the mount flags that more than one place needs.
const (
	defaultShutdownGrace = 10 * time.Second
	defaultCacheSize     = "10GiB"
	defaultMaxUploadSize = "100MiB"
)

// mountConfig is everything `pictofs mount` is told, from flags and the
// environment (and, for `pictofs demo` and the mount helper, the same
// flags). mountConfigFrom builds it and check validates it; nothing after
// that reads a flag. It is also what a --daemon parent hands its child, as
// JSON over a pipe, so every field is exported and paths are absolute.
type mountConfig struct {
	Mountpoint string

	API apiConfig

	CacheDir        string
	CacheSize       string // as given; CacheBytes after check
	CacheBytes      int64
	CacheMinFree    float64
	PrefetchWorkers int

	StatusFilter    string
	ListTTL         time.Duration
	AnnotationTTL   time.Duration
	BulkAnnotations bool
	ExportWait      time.Duration
	WaitTimeout     time.Duration
	ReadOnly        bool
	AllowDelete     bool
	MaxUploadSize   string // as given; MaxUploadBytes after check
	MaxUploadBytes  int64
	AllowOther      bool
	UID, GID        int // -1: the mounting user's
	Passthrough     bool
	DebugFUSE       bool

	Log           logConfig
	MetricsAddr   string
	PprofAddr     string
	ShutdownGrace time.Duration

	// SharedCache is the URL of a shared cache tier (redis:// or
	// rediss://); its password comes from the URL or from the environment
	// (PICTOFS_SHARED_CACHE_PASSWORD), never from a flag.
	SharedCache         string
	SharedCacheMaxBlob  string // as given; SharedCacheMaxBytes after check
	SharedCacheMaxBytes int64
	Daemon              bool
}

// apiConfig is where the API is and which key to use. Key is resolved
// later (flag, key file, environment, config file) by client.ResolveConfig.
type apiConfig struct {
	URL             string
	Key             string
	KeyFile         string
	RequestsPerHour int
}

// logConfig selects the log level, format and destination.
type logConfig struct {
	Level  string // debug, info, warn, error
	Format string // text or json
	File   string // "" = stderr
}

// mountFlags are the flags of `pictofs mount` (withAPI) and of `pictofs
// demo`. Every flag has a PICTOFS_… environment variable.
func mountFlags(withAPI bool) []cli.Flag {
	var flags []cli.Flag
	if withAPI {
		flags = append(flags,
			&cli.StringFlag{Name: "api-url", Usage: "Pictograph API base URL (else PICTOGRAPH_BASE_URL, ~/.pictograph/config.toml, https://api.pictograph.io)", EnvVars: []string{"PICTOFS_API_URL"}},
			&cli.StringFlag{Name: "api-key", Usage: "API key (or --api-key-file, not both; else PICTOGRAPH_API_KEY, then ~/.pictograph/config.toml); prefer a file or the env var, which keep the key out of the process list", EnvVars: []string{"PICTOFS_API_KEY"}},
			&cli.StringFlag{Name: "api-key-file", Usage: "read the API key from this file (for fstab and systemd: keep it 0600)", EnvVars: []string{"PICTOFS_API_KEY_FILE"}},
			&cli.IntFlag{Name: "requests-per-hour", Usage: "API requests this mount may spend per hour (0 = no client-side cap); set it to your plan's limit", EnvVars: []string{"PICTOFS_REQUESTS_PER_HOUR"}},
			&cli.BoolFlag{Name: "daemon", Usage: "return once the mount is ready and serve in the background (fails with the reason when it cannot mount)", EnvVars: []string{"PICTOFS_DAEMON"}},
		)
	}
	return append(flags,
		&cli.StringFlag{Name: "cache-dir", DefaultText: "$XDG_CACHE_HOME/pictofs, else ~/.cache/pictofs", Usage: "disk cache directory (relative paths and ~ are fine)", EnvVars: []string{"PICTOFS_CACHE_DIR"}},
		&cli.StringFlag{Name: "cache-size", Value: defaultCacheSize, Usage: "disk cache cap (e.g. 500MiB, 20GiB)", EnvVars: []string{"PICTOFS_CACHE_SIZE"}},
		&cli.Float64Flag{Name: "cache-min-free", Value: 0.05, Usage: "share of the cache's filesystem always left free, in [0, 1)", EnvVars: []string{"PICTOFS_CACHE_MIN_FREE"}},
		&cli.IntFlag{Name: "prefetch-workers", Value: 64, Usage: fmt.Sprintf("parallel downloads for directory readahead, 1 to %d (small files are latency-bound: many in flight pay off)", prefetch.MaxWorkers), EnvVars: []string{"PICTOFS_PREFETCH_WORKERS"}},
		&cli.StringFlag{Name: "status", Usage: "show only images with this status (new, annotate, review, complete)", EnvVars: []string{"PICTOFS_STATUS"}},
		&cli.DurationFlag{Name: "list-ttl", Value: 5 * time.Minute, Usage: "how long dataset and image listings are trusted", EnvVars: []string{"PICTOFS_LIST_TTL"}},
		&cli.DurationFlag{Name: "annotation-ttl", Value: 10 * time.Minute, Usage: "how long an annotation document, or a dataset's bulk export of them, is served before it is fetched again", EnvVars: []string{"PICTOFS_ANNOTATION_TTL"}},
		&cli.BoolFlag{Name: "bulk-annotations", Value: true, Usage: "serve annotation documents from one annotations-only export per dataset (a few API requests) instead of one request each; --bulk-annotations=false turns it off", EnvVars: []string{"PICTOFS_BULK_ANNOTATIONS"}},
		&cli.DurationFlag{Name: "export-wait", Value: 5 * time.Second, Usage: "how long a document read waits for its dataset's export to finish building before it costs a per-image request (0: no wait)", EnvVars: []string{"PICTOFS_EXPORT_WAIT"}},
		&cli.DurationFlag{Name: "wait-timeout", Value: 30 * time.Second, Usage: "longest a listing, stat or document open waits on the API (rate limits, retries, a slow server) before it fails with ETIMEDOUT or EAGAIN", EnvVars: []string{"PICTOFS_WAIT_TIMEOUT"}},
		&cli.BoolFlag{Name: "read-only", Usage: "refuse every change with EROFS, mkdir, rmdir and mv of datasets too (without it, the default, new files under images/ upload on close and annotation documents save on close; nothing on the server can be lost: images are never overwritten and removing needs --allow-delete)", EnvVars: []string{"PICTOFS_READ_ONLY"}},
		&cli.BoolFlag{Name: "allow-delete", Usage: "let rm archive images and clear annotation documents, and rmdir remove folders that held images (without it they fail with EPERM); rmdir of a dataset that holds any image, archived or not, fails either way", EnvVars: []string{"PICTOFS_ALLOW_DELETE"}},
		&cli.StringFlag{Name: "max-upload-size", Value: defaultMaxUploadSize, Usage: "largest file written through the mount; writing past it fails with EFBIG", EnvVars: []string{"PICTOFS_MAX_UPLOAD_SIZE"}},
		&cli.BoolFlag{Name: "allow-other", Usage: "let other users access the mount", EnvVars: []string{"PICTOFS_ALLOW_OTHER"}},
		&cli.IntFlag{Name: "uid", Value: -1, DefaultText: "the mounting user", Usage: "owner of every file", EnvVars: []string{"PICTOFS_UID"}},
		&cli.IntFlag{Name: "gid", Value: -1, DefaultText: "the mounting user's group", Usage: "group of every file", EnvVars: []string{"PICTOFS_GID"}},
		&cli.BoolFlag{Name: "passthrough", Value: true, Usage: "serve cached files through FUSE passthrough where the kernel allows (root, Linux ≥ 6.9)", EnvVars: []string{"PICTOFS_PASSTHROUGH"}},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"PICTOFS_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json (one object per line, stable keys)", EnvVars: []string{"PICTOFS_LOG_FORMAT"}},
		&cli.StringFlag{Name: "log-file", Usage: "append logs to this file instead of stderr (a --daemon mount logs nowhere without it)", EnvVars: []string{"PICTOFS_LOG_FILE"}},
		&cli.BoolFlag{Name: "debug-fuse", Usage: "log every FUSE request", EnvVars: []string{"PICTOFS_DEBUG_FUSE"}},
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9567; a bare :PORT listens on loopback only)", EnvVars: []string{"PICTOFS_METRICS_ADDR"}},
		&cli.StringFlag{Name: "pprof-addr", Usage: "serve Go profiles at http://ADDR/debug/pprof/ (off by default; a bare :PORT listens on loopback only)", EnvVars: []string{"PICTOFS_PPROF_ADDR"}},
		&cli.StringFlag{Name: "shared-cache", Usage: "a cache tier shared with other machines' mounts: redis://[:PASSWORD@]HOST:PORT/DB, or rediss:// for TLS (password also from PICTOFS_SHARED_CACHE_PASSWORD)", EnvVars: []string{"PICTOFS_SHARED_CACHE"}},
		&cli.StringFlag{Name: "shared-cache-max-blob", Value: "8MiB", Usage: "images larger than this are not published to the shared cache", EnvVars: []string{"PICTOFS_SHARED_CACHE_MAX_BLOB"}},
		&cli.DurationFlag{Name: "shutdown-grace", Value: defaultShutdownGrace, Usage: "after SIGTERM, how long a busy mount may take to become idle before it is detached and in-flight requests are cancelled", EnvVars: []string{"PICTOFS_SHUTDOWN_GRACE"}},
	)
}

// mountConfigFrom reads the flags of a mount or demo command into a
// mountConfig. It only copies; check validates.
func mountConfigFrom(cc *cli.Context, mountpoint string) mountConfig {
	cfg := mountConfig{
		Mountpoint:         mountpoint,
		CacheDir:           cc.String("cache-dir"),
		CacheSize:          cc.String("cache-size"),
		CacheMinFree:       cc.Float64("cache-min-free"),
		PrefetchWorkers:    cc.Int("prefetch-workers"),
		StatusFilter:       cc.String("status"),
		ListTTL:            cc.Duration("list-ttl"),
		AnnotationTTL:      cc.Duration("annotation-ttl"),
		BulkAnnotations:    cc.Bool("bulk-annotations"),
		ExportWait:         cc.Duration("export-wait"),
		WaitTimeout:        cc.Duration("wait-timeout"),
		ReadOnly:           cc.Bool("read-only"),
		AllowDelete:        cc.Bool("allow-delete"),
		MaxUploadSize:      cc.String("max-upload-size"),
		AllowOther:         cc.Bool("allow-other"),
		UID:                cc.Int("uid"),
		GID:                cc.Int("gid"),
		Passthrough:        cc.Bool("passthrough"),
		DebugFUSE:          cc.Bool("debug-fuse"),
		Log:                logConfig{Level: cc.String("log-level"), Format: cc.String("log-format"), File: cc.String("log-file")},
		MetricsAddr:        cc.String("metrics-addr"),
		PprofAddr:          cc.String("pprof-addr"),
		ShutdownGrace:      cc.Duration("shutdown-grace"),
		SharedCache:        cc.String("shared-cache"),
		SharedCacheMaxBlob: cc.String("shared-cache-max-blob"),
	}
	// The API flags are the mount command's; the demo has none, and reads "".
	cfg.API = apiConfig{URL: cc.String("api-url"), Key: cc.String("api-key"), KeyFile: cc.String("api-key-file"), RequestsPerHour: cc.Int("requests-per-hour")}
	cfg.Daemon = cc.Bool("daemon")
	return cfg
}

// check validates every field, expands paths (relative, ~) to absolute ones
// and parses sizes, before anything is mounted or asked of the API; every
// error names the flag and the value. Ranges of other packages' options are
// theirs (their Validate, which their constructors call too): check asks
// them and names the flag; what is main's is paths, sizes as text,
// addresses, log settings and the meaning it gives to flag values.
func (c *mountConfig) check() error {
	var err error
	if c.Mountpoint, err = expandPath(c.Mountpoint); err != nil {
		return fmt.Errorf("mount point %w", err)
	}
	if c.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("no --cache-dir given and no user cache directory: %w", err)
		}
		c.CacheDir = filepath.Join(base, "pictofs")
	} else if c.CacheDir, err = expandPath(c.CacheDir); err != nil {
		return fmt.Errorf("--cache-dir %w", err)
	}
	if c.API.KeyFile != "" {
		if c.API.KeyFile, err = expandPath(c.API.KeyFile); err != nil {
			return fmt.Errorf("--api-key-file %w", err)
		}
	}
	if c.CacheBytes, err = units.ParseBytes(c.CacheSize); err == nil && c.CacheBytes == 0 {
		err = errors.New("must be above zero")
	}
	if err != nil {
		return fmt.Errorf("--cache-size %q: %w", c.CacheSize, err)
	}
	if c.MaxUploadSize == "" {
		c.MaxUploadSize = defaultMaxUploadSize
	}
	if c.MaxUploadBytes, err = units.ParseBytes(c.MaxUploadSize); err == nil && c.MaxUploadBytes == 0 {
		err = errors.New("must be above zero")
	}
	if err != nil {
		return fmt.Errorf("--max-upload-size %q: %w", c.MaxUploadSize, err)
	}
	if c.SharedCacheMaxBlob == "" {
		c.SharedCacheMaxBlob = "8MiB"
	}
	if c.SharedCacheMaxBytes, err = units.ParseBytes(c.SharedCacheMaxBlob); err == nil && c.SharedCacheMaxBytes == 0 {
		err = errors.New("must be above zero")
	}
	if err != nil {
		return fmt.Errorf("--shared-cache-max-blob %q: %w", c.SharedCacheMaxBlob, err)
	}
	if err := c.Log.check(); err != nil {
		return err
	}
	if c.MetricsAddr, err = localAddr(c.MetricsAddr); err != nil {
		return fmt.Errorf("--metrics-addr %w", err)
	}
	if c.PprofAddr, err = localAddr(c.PprofAddr); err != nil {
		return fmt.Errorf("--pprof-addr %w", err)
	}
	// The packages own the ranges of their options; here each answer is
	// tied to the flag it came from.
	owned := []struct {
		flags string
		err   error
	}{
		{"--cache-min-free", blobcache.Options{MinFreeRatio: c.CacheMinFree}.Validate()},
		{"--prefetch-workers", prefetch.Options{Workers: c.PrefetchWorkers}.Validate()},
		{"--requests-per-hour", client.Options{RequestsPerHour: c.API.RequestsPerHour}.Validate()},
		{"--status", catalog.Options{StatusFilter: c.StatusFilter}.Validate()},
		{"--list-ttl", catalog.Options{ListTTL: c.ListTTL}.Validate()},
		{"--annotation-ttl", catalog.Options{AnnotationTTL: c.AnnotationTTL}.Validate()},
		{"--wait-timeout", catalog.Options{WaitTimeout: c.WaitTimeout}.Validate()},
	}
	for _, o := range owned {
		if o.err != nil {
			return fmt.Errorf("%s: %w", o.flags, o.err)
		}
	}
	// What is main's: the meaning it gives to flag values.
	checks := []struct {
		bad  bool
		what string
	}{
		{c.PrefetchWorkers == 0, fmt.Sprintf("--prefetch-workers 0: want 1 to %d", prefetch.MaxWorkers)},
		{c.ExportWait < 0, fmt.Sprintf("--export-wait %v: must not be negative (0: no wait)", c.ExportWait)},
		// blobcache reads a negative share as "keep nothing free"; the flag
		// does not offer that.
		{c.CacheMinFree < 0, fmt.Sprintf("--cache-min-free %v: want a share in [0, 1)", c.CacheMinFree)},
		{c.UID < -1, fmt.Sprintf("--uid %d: want a user id (or -1 for the mounting user)", c.UID)},
		{c.GID < -1, fmt.Sprintf("--gid %d: want a group id (or -1 for the mounting user's group)", c.GID)},
		{c.ShutdownGrace < 0, fmt.Sprintf("--shutdown-grace %v: must not be negative", c.ShutdownGrace)},
		{c.API.Key != "" && c.API.KeyFile != "", "--api-key and --api-key-file: give one, not both"},
	}
	for _, ck := range checks {
		if ck.bad {
			return errors.New(ck.what)
		}
	}
	return nil
}

// check validates the log flags and expands the log file's path; it is
// the one check of the level and format (openLogger trusts its result).
func (l *logConfig) check() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", l.Level)
	}
	if l.Format != "text" && l.Format != "json" {
		return fmt.Errorf("--log-format %q: want text or json", l.Format)
	}
	if l.File != "" {
		var err error
		if l.File, err = expandPath(l.File); err != nil {
			return fmt.Errorf("--log-file %w", err)
		}
	}
	return nil
}

// expandPath makes a path flag absolute: a leading ~ or ~user becomes that
// home directory (shells leave ~ alone after "--flag="), and a relative path
// is taken from the working directory. Its error starts with the path as
// given, so callers prefix the flag's name.
func expandPath(p string) (string, error) {
	if strings.TrimSpace(p) == "" {
		return "", errors.New("is empty")
	}
	orig := p
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("%s: cannot expand ~: %w", orig, err)
		}
		p = filepath.Join(home, strings.TrimPrefix(p, "~"))
	} else if strings.HasPrefix(p, "~") {
		name, rest, _ := strings.Cut(p[1:], "/")
		u, err := user.Lookup(name)
		if err != nil {
			return "", fmt.Errorf("%s: cannot expand ~%s: no such user", orig, name)
		}
		p = filepath.Join(u.HomeDir, rest)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", orig, err)
	}
	return abs, nil
}

// localAddr checks a listen address; a bare ":PORT" becomes loopback only,
// so profiles and metrics are never exposed unless the user names a host.
func localAddr(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q: want HOST:PORT or :PORT (%v)", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// isLoopback reports whether a listen address only accepts local clients.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
