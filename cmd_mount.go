package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/metrics"
	"github.com/pictofs/pictofs/prefetch"
	"github.com/pictofs/pictofs/sharedcache"
)

// keyCheckTimeout bounds the request that checks the key before mounting.
const keyCheckTimeout = 20 * time.Second

// catalogCloseTimeout bounds the clean-up requests at exit (deleting the
// exports the mount made).
const catalogCloseTimeout = 5 * time.Second

// sharedFlushTimeout bounds the wait at exit for publishes to the shared
// cache to land.
const sharedFlushTimeout = 5 * time.Second

// sharedCachePasswordEnv holds the shared cache's password when the URL
// has none (a flag would show it in the process list).
const sharedCachePasswordEnv = "PICTOFS_SHARED_CACHE_PASSWORD"

// noWaitIfZero turns a flag's 0 ("no wait") into the negative duration that
// Options structs read as "none", since their zero means "the default".
func noWaitIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount your organization's datasets at MOUNTPOINT (serves in the foreground unless --daemon; Ctrl-C unmounts)",
		ArgsUsage: "MOUNTPOINT",
		Flags:     mountFlags(true),
		Action: func(cc *cli.Context) error {
			mnt, err := oneArg(cc, "MOUNTPOINT")
			if err != nil {
				return err
			}
			cfg := mountConfigFrom(cc, mnt)
			if err := cfg.check(); err != nil {
				return err
			}
			if cfg.Daemon {
				return startDaemon(cfg)
			}
			return runMount(cc.Context, cfg, nil)
		},
	}
}

// runMount mounts the organization's datasets as cfg says and serves them
// until a signal or an outside unmount. ready, if set, runs once the mount
// is up. cfg must have passed check.
func runMount(ctx context.Context, cfg mountConfig, ready func(*fs.Mounted)) error {
	red := &redactor{}
	logger, closeLog, err := openLogger(cfg.Log, red)
	if err != nil {
		return err
	}
	defer closeLog()
	if err := fs.CheckMountpoint(cfg.Mountpoint); err != nil {
		return err
	}
	red.addSharedCachePassword(cfg.SharedCache)
	met := metrics.New()
	api, keySource, err := newAPIClient(cfg.API, logger, red, met)
	if err != nil {
		return err
	}
	d, err := startMount(ctx, mountSetup{cfg: cfg, log: logger, api: api, keySource: keySource, metrics: met})
	if err != nil {
		return err
	}
	defer d.close()
	if ready != nil {
		ready(d.m)
	}
	return d.serveUntilStopped(ctx)
}

// newAPIClient resolves the key and the base URL (flag, key file,
// environment, config file) and builds the client, reporting its requests
// to met. keySource says where the key came from, for error messages.
func newAPIClient(cfg apiConfig, logger *slog.Logger, red *redactor, met *metrics.Metrics) (api *client.Client, keySource string, err error) {
	key := cfg.Key
	if cfg.KeyFile != "" {
		b, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("--api-key-file %s: %w", cfg.KeyFile, unwrapPathError(err))
		}
		if key = strings.TrimSpace(string(b)); key == "" {
			return nil, "", fmt.Errorf("--api-key-file %s: the file is empty", cfg.KeyFile)
		}
	}
	rc, err := client.ResolveConfig(client.ConfigSources{FlagAPIKey: key, FlagBaseURL: cfg.URL})
	if err != nil {
		return nil, "", err
	}
	if cfg.KeyFile != "" {
		rc.KeySource = cfg.KeyFile
	}
	red.add(rc.APIKey)
	opts := rc.Options()
	opts.UserAgent = "pictofs/" + version
	opts.RequestsPerHour = cfg.RequestsPerHour
	opts.Logger = logger
	observeClient(&opts, met)
	api, err = client.New(opts)
	if err != nil {
		return nil, "", err
	}
	return api, rc.KeySource, nil
}

// mountSetup is what startMount needs besides the config.
type mountSetup struct {
	cfg       mountConfig
	log       *slog.Logger
	api       *client.Client
	keySource string // where the key came from, for the rejection message
	metrics   *metrics.Metrics
}

// mountDaemon is one running mount and everything it owns.
type mountDaemon struct {
	cfg      mountConfig
	log      *slog.Logger
	api      *client.Client
	org      *client.Organization
	metrics  *metrics.Metrics
	cache    *blobcache.Cache
	pf       *prefetch.Prefetcher
	tier     *sharedcache.Tier // nil without --shared-cache
	cat      *catalog.Catalog
	m        *fs.Mounted
	started  time.Time
	services []func() // stops the control socket and the HTTP listeners
}

// startMount checks the key, opens the cache, mounts, and starts the control
// socket and the metrics and profile listeners. The caller closes the
// daemon once it stops serving.
func startMount(ctx context.Context, s mountSetup) (_ *mountDaemon, err error) {
	d, err := openCatalog(ctx, s)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	uid, gid := os.Getuid(), os.Getgid()
	if s.cfg.UID >= 0 {
		uid = s.cfg.UID
	}
	if s.cfg.GID >= 0 {
		gid = s.cfg.GID
	}
	d.m, err = fs.Mount(ctx, s.cfg.Mountpoint, fs.Options{
		Catalog:            d.cat,
		UID:                uint32(uid),
		GID:                uint32(gid),
		ReadOnly:           s.cfg.ReadOnly,
		AllowOther:         s.cfg.AllowOther,
		DisablePassthrough: !s.cfg.Passthrough,
		DebugFUSE:          s.cfg.DebugFUSE,
		FSName:             "pictofs:" + s.api.BaseURL().Host,
		Logger:             s.log,
		ObserveOp:          s.metrics.ObserveOp,
	})
	if err != nil {
		return nil, err
	}
	d.metrics.Watch(metrics.Sources{Cache: d.cache.Stats, CacheCap: d.cache.MaxBytes(), Prefetch: d.pf.Stats, BudgetLeft: d.budgetLeft})
	if err := d.startServices(); err != nil {
		return nil, err
	}
	// Images an earlier mount staged and could not upload (it was killed):
	// upload them now, or say where they are kept.
	d.cat.StartRecovery()
	s.log.Info("mounted", logKeyMountpoint, d.m.Dir(), "api", s.api.BaseURL().Host, "organization", d.org.Name,
		"cache", s.cfg.CacheDir, "cache_cap", s.cfg.CacheBytes, "passthrough", d.m.Passthrough(), "pid", os.Getpid())
	return d, nil
}

// openCatalog checks the key and opens the cache, the prefetcher and the
// catalog: everything of a mount but FUSE (`pictofs warm --dataset` uses it
// alone). The caller closes the daemon.
func openCatalog(ctx context.Context, s mountSetup) (_ *mountDaemon, err error) {
	tuneGC()
	org, err := checkKey(ctx, s.api, s.keySource)
	if err != nil {
		return nil, err
	}
	d := &mountDaemon{cfg: s.cfg, log: s.log, api: s.api, org: org, metrics: s.metrics, started: time.Now()}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	cacheOpts := blobcache.Options{Dir: s.cfg.CacheDir, MaxBytes: s.cfg.CacheBytes, MinFreeRatio: s.cfg.CacheMinFree, Logger: s.log}
	if cacheOpts.MinFreeRatio == 0 {
		cacheOpts.MinFreeRatio = -1 // blobcache reads 0 as "the default"; the user asked for no floor
	}
	if d.cache, err = blobcache.Open(cacheOpts); err != nil {
		return nil, fmt.Errorf("--cache-dir %s: %w", s.cfg.CacheDir, err)
	}
	if d.pf, err = prefetch.New(prefetch.Options{Cache: d.cache, Workers: s.cfg.PrefetchWorkers, Retryable: catalog.RetryableFetch, Logger: s.log}); err != nil {
		return nil, fmt.Errorf("--prefetch-workers %d: %w", s.cfg.PrefetchWorkers, err)
	}
	namespace := s.api.BaseURL().Host + "/" + org.ID
	if s.cfg.SharedCache != "" {
		d.tier, err = sharedcache.New(sharedcache.Options{
			URL:          s.cfg.SharedCache,
			Password:     os.Getenv(sharedCachePasswordEnv),
			Namespace:    namespace,
			MaxBlobBytes: s.cfg.SharedCacheMaxBytes,
			Logger:       s.log,
		})
		if err != nil {
			return nil, fmt.Errorf("--shared-cache: %w", err)
		}
	}
	d.cat, err = catalog.New(ctx, catalog.Options{
		API:           s.api,
		Cache:         d.cache,
		Prefetcher:    d.pf,
		Namespace:     namespace,
		SharedCache:   d.tier,
		StatusFilter:  s.cfg.StatusFilter,
		ListTTL:       s.cfg.ListTTL,
		AnnotationTTL: s.cfg.AnnotationTTL,
		WaitTimeout:   s.cfg.WaitTimeout,
		Bulk:          catalog.BulkOptions{Disable: !s.cfg.BulkAnnotations, Wait: noWaitIfZero(s.cfg.ExportWait)},
		Writes:        writeOptions(s.cfg),
		Logger:        s.log,
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// writeOptions are the catalog's write options: files being written are
// staged in the cache directory (in a folder the cache itself never uses),
// unless the mount is read-only.
func writeOptions(cfg mountConfig) catalog.WriteOptions {
	if cfg.ReadOnly {
		return catalog.WriteOptions{}
	}
	return catalog.WriteOptions{
		StagingDir:   filepath.Join(cfg.CacheDir, "staging"),
		AllowDelete:  cfg.AllowDelete,
		MaxFileBytes: cfg.MaxUploadBytes,
	}
}

// close releases what startMount opened, in reverse order. The mount must
// be gone (unmounted or aborted) unless startMount failed after mounting.
func (d *mountDaemon) close() {
	for i := len(d.services) - 1; i >= 0; i-- {
		d.services[i]()
	}
	if d.m != nil {
		if mounted, _ := fs.IsMountpoint(d.m.Dir()); mounted {
			d.m.Abort()
		}
	}
	if d.cat != nil {
		ctx, cancel := context.WithTimeout(context.Background(), catalogCloseTimeout)
		d.cat.Close(ctx)
		cancel()
	}
	if d.pf != nil {
		d.pf.Close()
	}
	if d.tier != nil {
		// Publishes still queued are what other nodes would fetch again.
		ctx, cancel := context.WithTimeout(context.Background(), sharedFlushTimeout)
		d.tier.Flush(ctx)
		cancel()
		d.tier.Close()
	}
	if d.cache != nil {
		d.cache.Close()
	}
}

// tuneGC collects at 1.5× the live heap instead of 2× unless GOGC says
// otherwise: listings are long-lived and allocation is bursty, and this
// keeps the daemon's peak RSS low.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}

// checkKey asks the API who the key belongs to, so that a wrong key or an
// unreachable API fails before anything is mounted.
func checkKey(ctx context.Context, api *client.Client, keySource string) (*client.Organization, error) {
	ctx, cancel := context.WithTimeout(ctx, keyCheckTimeout)
	defer cancel()
	org, err := api.Me(ctx)
	switch {
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden):
		return nil, fmt.Errorf("the API key (from %s) was rejected by %s: %w", keySource, api.BaseURL().Host, err)
	case err != nil:
		return nil, fmt.Errorf("cannot reach the Pictograph API at %s: %w", api.BaseURL().Redacted(), err)
	}
	return org, nil
}

// budgetLeft is the client's hourly budget left, when there is one.
func (d *mountDaemon) budgetLeft() (left int, limited bool) { return d.api.BudgetLeft() }

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
			arg, err := oneArg(cc, "MOUNTPOINT")
			if err != nil {
				return err
			}
			mnt, err := expandPath(arg)
			if err != nil {
				return fmt.Errorf("mount point %w", err)
			}
			return fs.Unmount(mnt, cc.Bool("lazy"))
		},
	}
}
