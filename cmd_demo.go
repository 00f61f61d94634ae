package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/metrics"
)

// demoConfig is what `pictofs demo` is told.
type demoConfig struct {
	Mount  mountConfig
	Images int
}

// check validates the demo's flags (the mount's through mountConfig.check).
func (c *demoConfig) check() error {
	if c.Images < 1 {
		return fmt.Errorf("--demo-images %d: want at least 1", c.Images)
	}
	return c.Mount.check()
}

// demoExportDelay is the build time of the demo server's exports.
const demoExportDelay = time.Second

func demoCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.IntFlag{Name: "demo-images", Value: 500, Usage: "images in the generated shapes-demo dataset", EnvVars: []string{"PICTOFS_DEMO_IMAGES"}},
	}, mountFlags(false)...)
	for _, f := range flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == "cache-dir" {
			sf.DefaultText = "a temporary directory, removed at exit"
		}
	}
	return &cli.Command{
		Name:      "demo",
		Usage:     "mount a generated demo dataset from an in-process local server: no account needed (Ctrl-C stops and cleans up)",
		ArgsUsage: "MOUNTPOINT",
		Flags:     flags,
		Action: func(cc *cli.Context) error {
			mnt, err := oneArg(cc, "MOUNTPOINT")
			if err != nil {
				return err
			}
			tmp, err := os.MkdirTemp("", "pictofs-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			cfg := demoConfig{Mount: mountConfigFrom(cc, mnt), Images: cc.Int("demo-images")}
			if cfg.Mount.CacheDir == "" {
				cfg.Mount.CacheDir = filepath.Join(tmp, "cache") // the demo leaves nothing behind
			}
			if err := cfg.check(); err != nil {
				return err
			}
			return runDemo(cc.Context, cfg, tmp)
		},
	}
}

// runDemo starts the local server with the demo dataset in dir and mounts
// it until Ctrl-C.
func runDemo(ctx context.Context, cfg demoConfig, dir string) error {
	red := &redactor{}
	logger, closeLog, err := openLogger(cfg.Mount.Log, red)
	if err != nil {
		return err
	}
	defer closeLog()
	if err := fs.CheckMountpoint(cfg.Mount.Mountpoint); err != nil {
		return err
	}
	// Exports build in a second: long enough to show the mount reading
	// around a building export, short enough not to hold up the demo.
	srv, err := devserver.New(ctx, devserver.Options{DataDir: filepath.Join(dir, "server"), ExportDelay: demoExportDelay, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.Start(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pictofs demo: generating %d images…\n", cfg.Images)
	if _, err := srv.SeedDemo(ctx, srv.DefaultOrg(), "shapes-demo", cfg.Images); err != nil {
		return err
	}
	red.add(srv.AdminKey())
	met := metrics.New()
	opts := client.Options{BaseURL: srv.APIURL(), APIKey: srv.AdminKey(), UserAgent: "pictofs/" + version, Logger: logger}
	observeClient(&opts, met)
	api, err := client.New(opts)
	if err != nil {
		return err
	}
	d, err := startMount(ctx, mountSetup{cfg: cfg.Mount, log: logger, api: api, keySource: "the demo server", metrics: met})
	if err != nil {
		return err
	}
	defer d.close()
	fmt.Printf(`pictofs demo is mounted at %[1]s (local API %[2]s).

Try, in another terminal:
  ls %[1]s/shapes-demo
  ls -l %[1]s/shapes-demo/images/train | head
  cat %[1]s/shapes-demo/annotations/train/$(ls %[1]s/shapes-demo/annotations/train | head -1)
  python3 examples/pytorch_loader.py %[1]s/shapes-demo
  pictofs status %[1]s
  mkdir %[1]s/my-new-dataset && rmdir %[1]s/my-new-dataset

Press Ctrl-C to unmount and clean up.
`, d.m.Dir(), srv.APIURL())
	return d.serveUntilStopped(ctx)
}
