package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
)

func demoCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.IntFlag{Name: "demo-images", Value: 500, Usage: "images in the generated shapes-demo dataset", EnvVars: []string{"PICTOFS_DEMO_IMAGES"}},
	}, mountFlags(false)...)
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
			logger, err := newLogger(cc.String("log-level"))
			if err != nil {
				return err
			}
			if n := cc.Int("demo-images"); n < 1 {
				return fmt.Errorf("--demo-images must be at least 1, got %d", n)
			}
			if err := fs.CheckMountpoint(mnt); err != nil {
				return err
			}
			tmp, err := os.MkdirTemp("", "pictofs-demo-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			if !cc.IsSet("cache-dir") {
				if err := cc.Set("cache-dir", filepath.Join(tmp, "cache")); err != nil {
					return err
				}
			}
			srv, err := devserver.New(cc.Context, devserver.Options{DataDir: filepath.Join(tmp, "server"), Logger: logger})
			if err != nil {
				return err
			}
			defer srv.Close()
			if err := srv.Start(); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "pictofs demo: generating %d images…\n", cc.Int("demo-images"))
			if _, err := srv.SeedDemo(cc.Context, srv.DefaultOrg(), "shapes-demo", cc.Int("demo-images")); err != nil {
				return err
			}
			api, err := client.New(client.Options{BaseURL: srv.APIURL(), APIKey: srv.AdminKey(), UserAgent: "pictofs/" + version, Logger: logger})
			if err != nil {
				return err
			}
			return runMount(cc, logger, api, "the demo server", mnt, func(m *fs.Mounted) {
				d := m.Dir()
				fmt.Printf(`pictofs demo is mounted at %[1]s (local API %[2]s).

Try, in another terminal:
  ls %[1]s/shapes-demo
  ls -l %[1]s/shapes-demo/images/train | head
  cat %[1]s/shapes-demo/annotations/train/$(ls %[1]s/shapes-demo/annotations/train | head -1)
  python3 examples/pytorch_loader.py %[1]s/shapes-demo
  mkdir %[1]s/my-new-dataset && rmdir %[1]s/my-new-dataset

Press Ctrl-C to unmount and clean up.
`, d, srv.APIURL())
			})
		},
	}
}
