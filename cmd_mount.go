package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/units"
	"github.com/pictofs/pictofs/prefetch"
)

// mountFlags are the flags of `pictofs mount` (and, minus the API ones, of
// `pictofs demo`). Every flag has a PICTOFS_… environment variable.
func mountFlags(withAPI bool) []cli.Flag {
	var flags []cli.Flag
	if withAPI {
		flags = append(flags,
			&cli.StringFlag{Name: "api-url", Usage: "Pictograph API base URL (else PICTOGRAPH_BASE_URL, ~/.pictograph/config.toml, https://api.pictograph.io)", EnvVars: []string{"PICTOFS_API_URL"}},
			&cli.StringFlag{Name: "api-key", Usage: "API key (else PICTOGRAPH_API_KEY, then ~/.pictograph/config.toml); prefer the env var or the file, which keep the key out of the process list", EnvVars: []string{"PICTOFS_API_KEY"}},
			&cli.IntFlag{Name: "requests-per-hour", Usage: "API requests this mount may spend per hour (0 = no client-side cap); set it to your plan's limit", EnvVars: []string{"PICTOFS_REQUESTS_PER_HOUR"}},
		)
	}
	return append(flags,
		&cli.StringFlag{Name: "cache-dir", DefaultText: "<user cache dir>/pictofs", Usage: "disk cache directory", EnvVars: []string{"PICTOFS_CACHE_DIR"}},
		&cli.StringFlag{Name: "cache-size", Value: "10GiB", Usage: "disk cache cap (e.g. 500MiB, 20GiB)", EnvVars: []string{"PICTOFS_CACHE_SIZE"}},
		&cli.Float64Flag{Name: "cache-min-free", Value: 0.05, Usage: "share of the cache's filesystem always left free", EnvVars: []string{"PICTOFS_CACHE_MIN_FREE"}},
		&cli.IntFlag{Name: "prefetch-workers", Value: 64, Usage: "parallel downloads for directory readahead (small files are latency-bound: many in flight pay off)", EnvVars: []string{"PICTOFS_PREFETCH_WORKERS"}},
		&cli.StringFlag{Name: "status", Usage: "show only images with this status (new, annotate, review, complete)", EnvVars: []string{"PICTOFS_STATUS"}},
		&cli.DurationFlag{Name: "list-ttl", Value: 5 * time.Minute, Usage: "how long dataset and image listings are trusted", EnvVars: []string{"PICTOFS_LIST_TTL"}},
		&cli.DurationFlag{Name: "annotation-ttl", Value: 10 * time.Minute, Usage: "how long an annotation document, or a dataset's bulk export of them, is served before it is fetched again", EnvVars: []string{"PICTOFS_ANNOTATION_TTL"}},
		&cli.BoolFlag{Name: "bulk-annotations", Value: true, Usage: "serve annotation documents from one annotations-only export per dataset (a few API requests) instead of one request each; --bulk-annotations=false turns it off", EnvVars: []string{"PICTOFS_BULK_ANNOTATIONS"}},
		&cli.DurationFlag{Name: "export-wait", Value: 5 * time.Second, Usage: "how long a document read waits for its dataset's export to finish building before it costs a per-image request (0: no wait)", EnvVars: []string{"PICTOFS_EXPORT_WAIT"}},
		&cli.DurationFlag{Name: "wait-timeout", Value: 30 * time.Second, Usage: "longest a listing, stat or document open waits on the API (rate limits, retries, a slow server) before it fails with ETIMEDOUT or EAGAIN", EnvVars: []string{"PICTOFS_WAIT_TIMEOUT"}},
		&cli.BoolFlag{Name: "read-only", Usage: "refuse every change with EROFS (by default new images upload on close, annotation documents save on close, and nothing on the server can be lost: images are never overwritten and removing needs --allow-delete)", EnvVars: []string{"PICTOFS_READ_ONLY"}},
		&cli.BoolFlag{Name: "allow-delete", Usage: "let rm archive images and clear annotation documents, and rmdir remove folders that held images (without it they fail with EPERM); rmdir of a dataset that holds any image fails either way", EnvVars: []string{"PICTOFS_ALLOW_DELETE"}},
		&cli.StringFlag{Name: "max-upload-size", Value: "100MiB", Usage: "largest file written through the mount; a bigger one fails with EFBIG", EnvVars: []string{"PICTOFS_MAX_UPLOAD_SIZE"}},
		&cli.BoolFlag{Name: "allow-other", Usage: "let other users access the mount", EnvVars: []string{"PICTOFS_ALLOW_OTHER"}},
		&cli.IntFlag{Name: "uid", Value: -1, DefaultText: "the mounting user", Usage: "owner of every file", EnvVars: []string{"PICTOFS_UID"}},
		&cli.IntFlag{Name: "gid", Value: -1, DefaultText: "the mounting user's group", Usage: "group of every file", EnvVars: []string{"PICTOFS_GID"}},
		&cli.BoolFlag{Name: "passthrough", Value: true, Usage: "serve cached files through FUSE passthrough where the kernel allows (root, Linux ≥ 6.9)", EnvVars: []string{"PICTOFS_PASSTHROUGH"}},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"PICTOFS_LOG_LEVEL"}},
		&cli.BoolFlag{Name: "debug-fuse", Usage: "log every FUSE request", EnvVars: []string{"PICTOFS_DEBUG_FUSE"}},
	)
}

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount your organization's datasets at MOUNTPOINT (serves in the foreground; Ctrl-C unmounts)",
		ArgsUsage: "MOUNTPOINT",
		Flags:     mountFlags(true),
		Action: func(cc *cli.Context) error {
			mnt, err := oneArg(cc, "MOUNTPOINT")
			if err != nil {
				return err
			}
			logger, err := newLogger(cc.String("log-level"))
			if err != nil {
				return err
			}
			if err := fs.CheckMountpoint(mnt); err != nil {
				return err
			}
			cfg, err := client.ResolveConfig(client.ConfigSources{FlagAPIKey: cc.String("api-key"), FlagBaseURL: cc.String("api-url")})
			if err != nil {
				return err
			}
			api, err := client.New(client.Options{
				BaseURL:         cfg.BaseURL,
				APIKey:          cfg.APIKey,
				Timeout:         cfg.Timeout,
				MaxRetries:      cfg.MaxRetries,
				UserAgent:       "pictofs/" + version,
				RequestsPerHour: cc.Int("requests-per-hour"),
				Logger:          logger,
			})
			if err != nil {
				return err
			}
			return runMount(cc, logger, api, cfg.KeySource, mnt, nil)
		},
	}
}

// runMount checks the key, opens the cache, mounts, and serves until a
// signal or an outside unmount. ready, if set, runs once the mount is up.
func runMount(cc *cli.Context, logger *slog.Logger, api *client.Client, keySource, mnt string, ready func(*fs.Mounted)) error {
	ctx, stop := context.WithCancel(cc.Context)
	defer stop()
	if os.Getenv("GOGC") == "" {
		// Listings are long-lived and allocation is bursty: collect at 1.5×
		// the live heap instead of 2× to keep the daemon's peak RSS low.
		debug.SetGCPercent(50)
	}
	checkCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	org, err := api.Me(checkCtx)
	cancel()
	switch {
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden):
		return fmt.Errorf("the API key (from %s) was rejected by %s: %w", keySource, api.BaseURL().Host, err)
	case err != nil:
		return fmt.Errorf("cannot reach the Pictograph API at %s: %w", api.BaseURL().Redacted(), err)
	}
	opts, err := cacheOptions(cc, logger)
	if err != nil {
		return err
	}
	writes, err := writeOptions(cc, opts.Dir)
	if err != nil {
		return err
	}
	cache, err := blobcache.Open(opts)
	if err != nil {
		return fmt.Errorf("open cache %s: %w", opts.Dir, err)
	}
	defer cache.Close()
	pf := prefetch.New(prefetch.Options{Cache: cache, Workers: cc.Int("prefetch-workers"), Retryable: catalog.RetryableFetch, Logger: logger})
	defer pf.Close()
	cat, err := catalog.New(ctx, catalog.Options{
		API:           api,
		Cache:         cache,
		Prefetcher:    pf,
		Namespace:     api.BaseURL().Host + "/" + org.ID,
		StatusFilter:  cc.String("status"),
		ListTTL:       cc.Duration("list-ttl"),
		AnnotationTTL: cc.Duration("annotation-ttl"),
		WaitTimeout:   cc.Duration("wait-timeout"),
		Bulk: catalog.BulkOptions{
			Disable: !cc.Bool("bulk-annotations"),
			Wait:    noWaitIfZero(cc.Duration("export-wait")),
		},
		Writes: writes,
		Logger: logger,
	})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cat.Close(ctx)
	}()

	uid, gid := os.Getuid(), os.Getgid()
	if v := cc.Int("uid"); v >= 0 {
		uid = v
	}
	if v := cc.Int("gid"); v >= 0 {
		gid = v
	}
	m, err := fs.Mount(ctx, mnt, fs.Options{
		Catalog:            cat,
		UID:                uint32(uid),
		GID:                uint32(gid),
		AllowOther:         cc.Bool("allow-other"),
		DisablePassthrough: !cc.Bool("passthrough"),
		ReadOnly:           cc.Bool("read-only"),
		DebugFUSE:          cc.Bool("debug-fuse"),
		FSName:             "pictofs:" + api.BaseURL().Host,
		Logger:             logger,
	})
	if err != nil {
		return err
	}
	logger.Info("mounted", "mountpoint", m.Dir(), "api", api.BaseURL().Host, "organization", org.Name, "cache", opts.Dir, "passthrough", m.Passthrough())
	if ready != nil {
		ready(m)
	}
	// Images an earlier mount staged and could not upload (it was killed):
	// upload them now, or say where they are kept.
	cat.StartRecovery()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() {
		m.Wait()
		close(done)
	}()
	asked := 0
	for {
		select {
		case <-done:
			logger.Info("unmounted", "mountpoint", m.Dir(), "api_requests", api.APIRequests(), "storage_requests", api.StorageRequests())
			return nil
		case <-sigs:
			asked++
			err := m.Unmount(asked > 1)
			if errors.Is(err, fs.ErrBusy) {
				fmt.Fprintf(os.Stderr, "pictofs: %s is busy: files on it are still open. Close them, press Ctrl-C again to detach lazily, or run 'pictofs unmount --lazy %s'.\n", m.Dir(), m.Dir())
				continue
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "pictofs: %v\n", err)
			}
		}
	}
}

// noWaitIfZero turns a flag's 0 ("no wait") into the negative duration that
// Options structs read as "none", since their zero means "the default".
func noWaitIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func cacheOptions(cc *cli.Context, logger *slog.Logger) (blobcache.Options, error) {
	dir := cc.String("cache-dir")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return blobcache.Options{}, fmt.Errorf("no --cache-dir and no user cache directory: %w", err)
		}
		dir = filepath.Join(base, "pictofs")
	}
	size, err := units.ParseBytes(cc.String("cache-size"))
	if err == nil && size == 0 {
		err = errors.New("must be above zero")
	}
	if err != nil {
		return blobcache.Options{}, fmt.Errorf("--cache-size: %w", err)
	}
	minFree := cc.Float64("cache-min-free")
	if minFree < 0 || minFree >= 1 {
		return blobcache.Options{}, fmt.Errorf("--cache-min-free must be in [0, 1), got %v", minFree)
	}
	if w := cc.Int("prefetch-workers"); w < 1 || w > 1024 {
		return blobcache.Options{}, fmt.Errorf("--prefetch-workers must be between 1 and 1024, got %d", w)
	}
	if minFree == 0 {
		minFree = -1 // blobcache reads 0 as "the default"; the user asked for no floor
	}
	return blobcache.Options{Dir: dir, MaxBytes: size, MinFreeRatio: minFree, Logger: logger}, nil
}

// writeOptions are the catalog's write options from the flags: files are
// staged under the cache directory (in a folder the cache never uses),
// unless the mount is read-only.
func writeOptions(cc *cli.Context, cacheDir string) (catalog.WriteOptions, error) {
	if cc.Bool("read-only") {
		return catalog.WriteOptions{}, nil
	}
	limit, err := units.ParseBytes(cc.String("max-upload-size"))
	if err == nil && limit == 0 {
		err = errors.New("must be above zero")
	}
	if err != nil {
		return catalog.WriteOptions{}, fmt.Errorf("--max-upload-size: %w", err)
	}
	return catalog.WriteOptions{
		StagingDir:   filepath.Join(cacheDir, "staging"),
		AllowDelete:  cc.Bool("allow-delete"),
		MaxFileBytes: limit,
	}, nil
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func oneArg(cc *cli.Context, name string) (string, error) {
	if cc.NArg() != 1 {
		return "", fmt.Errorf("%s needs exactly one argument, %s (see 'pictofs %s --help')", cc.Command.Name, name, cc.Command.Name)
	}
	return cc.Args().First(), nil
}

func unmountCommand() *cli.Command {
	return &cli.Command{
		Name:      "unmount",
		Aliases:   []string{"umount"},
		Usage:     "unmount a pictofs mount, including one whose process died",
		ArgsUsage: "MOUNTPOINT",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"l"}, Usage: "detach now even if files are open; the kernel finishes when they close"},
		},
		Action: func(cc *cli.Context) error {
			mnt, err := oneArg(cc, "MOUNTPOINT")
			if err != nil {
				return err
			}
			return fs.Unmount(mnt, cc.Bool("lazy"))
		},
	}
}
