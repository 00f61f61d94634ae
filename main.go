// Command pictofs mounts Pictograph datasets as a local filesystem and serves
// a local Pictograph-compatible API for demos and tests.
//
// main is the only place that reads flags, environment variables and config
// files; it turns them into each package's Options and wires the packages.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func newApp() *cli.App {
	return &cli.App{
		Name:    "pictofs",
		Usage:   "mount Pictograph datasets as a local filesystem",
		Version: version,
		Commands: []*cli.Command{
			mountCommand(),
			unmountCommand(),
			demoCommand(),
			serveCommand(),
		},
	}
}

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "pictofs:", err)
		os.Exit(1)
	}
}
