// Command pictofs mounts Pictograph datasets as a local filesystem and serves
// a local Pictograph-compatible API for demos and tests.
//
// main is the only place that reads flags, environment variables and config
// files: each command turns them into one config struct (mountConfig,
// demoConfig), validates it in one function, and hands it to a run function
// that wires the packages. It also recognises being called by mount(8) as a
// mount helper (helper.go).
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
			statusCommand(),
			warmCommand(),
			demoCommand(),
			serveCommand(),
			daemonChild(),
		},
	}
}

func main() {
	app := newApp()
	args := os.Args
	if isHelperCall(args, app) {
		var fake bool
		var err error
		args, fake, err = helperArgs(args, mountFlags(true))
		if err != nil {
			fmt.Fprintln(os.Stderr, "pictofs:", err)
			os.Exit(1)
		}
		if fake {
			return
		}
	}
	// An Action's cli.Exit never comes back here: urfave/cli prints it and
	// exits with its code (HandleExitCoder) before Run returns.
	if err := app.Run(args); err != nil {
		fmt.Fprintln(os.Stderr, "pictofs:", err)
		os.Exit(1)
	}
}
