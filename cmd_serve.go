package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/units"
)

// serveEnv names the environment variable of a serve flag.
func serveEnv(flag string) []string {
	return []string{"PICTOFS_SERVE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

func defaultServeDataDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "pictofs", "devserver")
}

func serveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data", Value: defaultServeDataDir(), Usage: "data directory (SQLite metadata, blobs, key file; relative paths and ~ are fine); state survives restarts", EnvVars: serveEnv("data")},
		&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8321", Usage: "API listen address", EnvVars: serveEnv("addr")},
		&cli.StringFlag{Name: "storage-addr", Value: "127.0.0.1:8322", Usage: "listen address of the signed-URL storage host", EnvVars: serveEnv("storage-addr")},
		&cli.BoolFlag{Name: "demo", Usage: "seed the shapes-demo dataset (once per data directory)", EnvVars: serveEnv("demo")},
		&cli.IntFlag{Name: "demo-images", Value: 500, Usage: "images in shapes-demo", EnvVars: serveEnv("demo-images")},
		&cli.StringSliceFlag{Name: "import", Usage: "load a folder of images as a dataset, `NAME=DIR` (repeatable; skipped if NAME exists; DIR may be relative or start with ~)", EnvVars: serveEnv("import")},
		&cli.StringFlag{Name: "admin-key", Usage: "admin key of the first organization (default: random on first start)", EnvVars: serveEnv("admin-key")},
		&cli.StringFlag{Name: "member-key", Usage: "member key of the first organization (default: random on first start)", EnvVars: serveEnv("member-key")},
		&cli.IntFlag{Name: "requests-per-hour", Value: 100000, Usage: "API request budget per key and hour (then 429 + Retry-After)", EnvVars: serveEnv("requests-per-hour")},
		&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed of the generated demo images", EnvVars: serveEnv("seed")},
		&cli.DurationFlag{Name: "url-ttl", Value: time.Hour, Usage: "lifetime of signed storage URLs", EnvVars: serveEnv("url-ttl")},
		&cli.DurationFlag{Name: "api-latency", Usage: "fault injection: delay before every API response", EnvVars: serveEnv("api-latency")},
		&cli.DurationFlag{Name: "storage-latency", Usage: "fault injection: time to first byte of storage responses", EnvVars: serveEnv("storage-latency")},
		&cli.StringFlag{Name: "storage-bandwidth", Value: "0", Usage: "fault injection: bytes/s per storage connection, e.g. 2MiB (0 = unlimited)", EnvVars: serveEnv("storage-bandwidth")},
		&cli.Float64Flag{Name: "fail-rate", Usage: "fault injection: share of API requests answered 503 (0..1)", EnvVars: serveEnv("fail-rate")},
		&cli.Float64Flag{Name: "truncate-rate", Usage: "fault injection: share of storage bodies cut short (0..1)", EnvVars: serveEnv("truncate-rate")},
		&cli.IntFlag{Name: "max-datasets", Usage: "plan's dataset cap per organization, then 402 (0 = unlimited)", EnvVars: serveEnv("max-datasets")},
		&cli.DurationFlag{Name: "export-delay", Value: 3 * time.Second, Usage: "how long an export build takes: pending, then processing, then completed (0 = at once)", EnvVars: serveEnv("export-delay")},
		&cli.Float64Flag{Name: "export-fail-rate", Usage: "fault injection: share of export builds that fail with an error_message (0..1)", EnvVars: serveEnv("export-fail-rate")},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug (one line per request), info, warn or error", EnvVars: serveEnv("log-level")},
	}
}

// serveImport is one --import NAME=DIR.
type serveImport struct{ name, dir string }

func parseImports(specs []string) ([]serveImport, error) {
	var out []serveImport
	for _, spec := range specs {
		name, dir, ok := strings.Cut(spec, "=")
		if !ok || name == "" || dir == "" {
			return nil, fmt.Errorf("--import %q: want NAME=DIR", spec)
		}
		if strings.ContainsAny(name, "/\x00") {
			return nil, fmt.Errorf("--import %q: a dataset name must not contain '/'", spec)
		}
		abs, err := expandPath(dir)
		if err != nil {
			return nil, fmt.Errorf("--import %s: %w", spec, err)
		}
		st, err := os.Stat(abs)
		switch {
		case err != nil:
			return nil, fmt.Errorf("--import %s: %s: %w", spec, abs, unwrapPathError(err))
		case !st.IsDir():
			return nil, fmt.Errorf("--import %s: %s: not a directory", spec, abs)
		}
		out = append(out, serveImport{name: name, dir: abs})
	}
	return out, nil
}

// serveOptions turns the flags into devserver.Options, checking each.
func serveOptions(cc *cli.Context) (devserver.Options, error) {
	opts := devserver.Options{
		DataDir: cc.String("data"), APIAddr: cc.String("addr"), StorageAddr: cc.String("storage-addr"),
		URLTTL: cc.Duration("url-ttl"), APILatency: cc.Duration("api-latency"),
		StorageLatency: cc.Duration("storage-latency"), FailRate: cc.Float64("fail-rate"),
		TruncateRate: cc.Float64("truncate-rate"), RequestsPerHour: cc.Int("requests-per-hour"),
		AdminKey: cc.String("admin-key"), MemberKey: cc.String("member-key"),
		MaxDatasetsPerOrg: cc.Int("max-datasets"), Seed: cc.Int64("seed"),
	}
	if opts.DataDir == "" {
		return opts, errors.New("--data must not be empty")
	}
	data, err := serveDataDir(opts.DataDir)
	if err != nil {
		return opts, err
	}
	opts.DataDir = data
	switch d := cc.Duration("export-delay"); {
	case d < 0:
		return opts, fmt.Errorf("--export-delay %v: must not be negative", d)
	case d == 0:
		opts.ExportDelay = -1 // the devserver's "none"
	default:
		opts.ExportDelay = d
	}
	opts.ExportFailRate = cc.Float64("export-fail-rate")
	if bw := strings.TrimSpace(cc.String("storage-bandwidth")); bw != "" && bw != "0" {
		n, err := units.ParseBytes(bw)
		if err != nil {
			return opts, fmt.Errorf("--storage-bandwidth: %w", err)
		}
		opts.StorageBandwidth = n
	}
	checks := []struct {
		bad  bool
		what string
	}{
		{opts.FailRate < 0 || opts.FailRate > 1, fmt.Sprintf("--fail-rate %v: want a share between 0 and 1", opts.FailRate)},
		{opts.TruncateRate < 0 || opts.TruncateRate > 1, fmt.Sprintf("--truncate-rate %v: want a share between 0 and 1", opts.TruncateRate)},
		{opts.ExportFailRate < 0 || opts.ExportFailRate > 1, fmt.Sprintf("--export-fail-rate %v: want a share between 0 and 1", opts.ExportFailRate)},
		{opts.URLTTL <= 0, fmt.Sprintf("--url-ttl %v: want a positive duration", opts.URLTTL)},
		{opts.APILatency < 0, fmt.Sprintf("--api-latency %v: must not be negative", opts.APILatency)},
		{opts.StorageLatency < 0, fmt.Sprintf("--storage-latency %v: must not be negative", opts.StorageLatency)},
		{opts.RequestsPerHour < 1, fmt.Sprintf("--requests-per-hour %d: want at least 1", opts.RequestsPerHour)},
		{opts.MaxDatasetsPerOrg < 0, fmt.Sprintf("--max-datasets %d: must not be negative", opts.MaxDatasetsPerOrg)},
		{cc.Bool("demo") && cc.Int("demo-images") < 1, fmt.Sprintf("--demo-images %d: want at least 1", cc.Int("demo-images"))},
	}
	for _, c := range checks {
		if c.bad {
			return opts, errors.New(c.what)
		}
	}
	return opts, nil
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run a local Pictograph-compatible API server (for demos and tests; state kept in --data)",
		Flags: serveFlags(),
		Action: func(cc *cli.Context) error {
			if cc.NArg() > 0 {
				return fmt.Errorf("serve takes no arguments, got %q (see 'pictofs serve --help')", cc.Args().First())
			}
			logger, err := newLogger(cc.String("log-level"))
			if err != nil {
				return err
			}
			opts, err := serveOptions(cc)
			if err != nil {
				return err
			}
			imports, err := parseImports(cc.StringSlice("import"))
			if err != nil {
				return err
			}
			opts.Logger = logger
			ctx, stop := signal.NotifyContext(cc.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := devserver.New(ctx, opts)
			if err != nil {
				return err
			}
			defer srv.Close()
			if err := seedServe(ctx, cc.App.ErrWriter, srv, imports, cc.Bool("demo"), cc.Int("demo-images")); err != nil {
				return err
			}
			if err := srv.Start(); err != nil {
				return err
			}
			printServeInfo(cc.App.Writer, srv)
			<-ctx.Done()
			fmt.Fprintln(cc.App.ErrWriter, "pictofs serve: shutting down")
			return srv.Close()
		},
	}
}

// seedServe runs the imports and the demo seeding, skipping datasets that
// already exist so that a restart never duplicates them.
func seedServe(ctx context.Context, w io.Writer, srv *devserver.Server, imports []serveImport, demo bool, demoImages int) error {
	org := srv.DefaultOrg()
	for _, im := range imports {
		if d, err := srv.Dataset(ctx, org, im.name); err == nil {
			fmt.Fprintf(w, "pictofs serve: dataset %q already exists (%d images); not importing %s again\n", im.name, d.ImageCount, im.dir)
			continue
		}
		d, err := srv.ImportDir(ctx, org, im.name, im.dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "pictofs serve: imported %d images from %s as %q\n", d.ImageCount, im.dir, d.Name)
	}
	if !demo {
		return nil
	}
	if d, err := srv.Dataset(ctx, org, devserver.DemoDatasetName); err == nil {
		fmt.Fprintf(w, "pictofs serve: %s already seeded (%d images)\n", d.Name, d.ImageCount)
		return nil
	}
	start := time.Now()
	fmt.Fprintf(w, "pictofs serve: generating %d demo images…\n", demoImages)
	step := max(demoImages/10, 1)
	next := step
	d, err := srv.SeedDemoProgress(ctx, org, devserver.DemoDatasetName, demoImages, func(done int) {
		if done >= next && done < demoImages {
			fmt.Fprintf(w, "pictofs serve:   %d/%d\n", done, demoImages)
			next = (done/step + 1) * step
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "pictofs serve: seeded %s with %d images in %v\n", d.Name, d.ImageCount, time.Since(start).Round(time.Millisecond))
	return nil
}

func printServeInfo(w io.Writer, srv *devserver.Server) {
	fmt.Fprintf(w, `pictofs serve: a local Pictograph API

  API:          %[1]s/api/v1/developer/
  storage:      %[2]s  (signed URLs; never send the API key there)
  organization: %[3]s
  admin key:    %[4]s
  member key:   %[5]s
  key file:     %[6]s

Try:
  curl -H "X-API-Key: %[4]s" %[1]s/api/v1/developer/datasets/
  PICTOGRAPH_BASE_URL=%[1]s PICTOGRAPH_API_KEY=%[4]s pictofs mount ~/pictograph

Ctrl-C stops the server; its state stays in the data directory.
`, srv.APIURL(), srv.StorageURL(), srv.DefaultOrg(), srv.AdminKey(), srv.MemberKey(), srv.KeyFile())
}

// serveDataDir resolves --data and makes sure it is a directory the server
// can write, creating it (0700) if needed; an error names the path and the
// reason in one line.
func serveDataDir(p string) (string, error) {
	abs, err := expandPath(p)
	if err != nil {
		return "", fmt.Errorf("--data %w", err)
	}
	name := abs
	if abs != p {
		name = fmt.Sprintf("%s (%s)", p, abs)
	}
	if st, err := os.Stat(abs); err == nil && !st.IsDir() {
		return "", fmt.Errorf("--data %s: not a directory", name)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("--data %s: cannot create the data directory: %w", name, unwrapPathError(err))
	}
	probe, err := os.CreateTemp(abs, ".write-check-*")
	if err != nil {
		return "", fmt.Errorf("--data %s: cannot write in the data directory: %w", name, unwrapPathError(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	return abs, nil
}
