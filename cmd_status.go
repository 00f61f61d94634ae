package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/pictofs/pictofs/internal/control"
)

// statusTimeout bounds the wait for one daemon's answer.
const statusTimeout = 5 * time.Second

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show the pictofs mounts running on this machine: datasets, cache use, API requests this hour, prefetch activity",
		ArgsUsage: "[MOUNTPOINT]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the daemons' answers as JSON, one object per line"},
		},
		Action: func(cc *cli.Context) error {
			if cc.NArg() > 1 {
				return fmt.Errorf("status takes at most one argument, MOUNTPOINT (see 'pictofs status --help')")
			}
			dir := control.Dir()
			var sockets []string
			if cc.NArg() == 1 {
				mnt, err := expandPath(cc.Args().First())
				if err != nil {
					return fmt.Errorf("mount point %w", err)
				}
				sock := control.SocketPath(dir, mnt)
				if _, err := os.Stat(sock); err != nil {
					return fmt.Errorf("no pictofs daemon of this user serves %s (no control socket %s)", mnt, sock)
				}
				sockets = []string{sock}
			} else {
				var err error
				if sockets, err = control.Sockets(dir); err != nil {
					return fmt.Errorf("control socket directory %s: %w", dir, err)
				}
			}
			shown := 0
			for _, sock := range sockets {
				st, err := fetchStatus(cc.Context, sock)
				if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
					os.Remove(sock) // its daemon is gone
					if cc.NArg() == 1 {
						return fmt.Errorf("the pictofs daemon of %s is gone (its control socket did not answer)", cc.Args().First())
					}
					continue
				}
				if err != nil {
					return err
				}
				if cc.Bool("json") {
					json.NewEncoder(os.Stdout).Encode(st)
				} else {
					printStatus(os.Stdout, st)
				}
				shown++
			}
			if shown == 0 && !cc.Bool("json") {
				fmt.Println("no pictofs mounts of this user are running")
			}
			return nil
		},
	}
}

// fetchStatus asks the daemon behind a control socket for its status.
func fetchStatus(ctx context.Context, sock string) (control.Status, error) {
	var st control.Status
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := control.Call(ctx, sock, http.MethodGet, control.StatusPath, nil)
	if err != nil {
		return st, fmt.Errorf("control socket %s: %w", sock, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("control socket %s: bad answer: %w", sock, err)
	}
	return st, nil
}

func printStatus(w io.Writer, st control.Status) {
	fmt.Fprintf(w, "%s  (pid %d, pictofs %s, up %v)\n", st.Mountpoint, st.PID, st.Version, time.Since(st.Started).Round(time.Second))
	fmt.Fprintf(w, "  api:         %s, organization %s\n", st.API, st.Organization)
	datasets := "(none listed yet)"
	if len(st.Datasets) > 0 {
		datasets = strings.Join(st.Datasets, ", ")
	}
	fmt.Fprintf(w, "  datasets:    %s\n", datasets)
	pct := 0.0
	if st.Cache.Cap > 0 {
		pct = 100 * float64(st.Cache.Bytes) / float64(st.Cache.Cap)
	}
	fmt.Fprintf(w, "  cache:       %s of %s (%.1f%%), %d blobs, %d hits, %d misses, %d evictions  [%s]\n",
		humanize.IBytes(uint64(st.Cache.Bytes)), humanize.IBytes(uint64(st.Cache.Cap)), pct,
		st.Cache.Blobs, st.Cache.Hits, st.Cache.Misses, st.Cache.Evictions, st.Cache.Dir)
	budget := "no budget set (--requests-per-hour)"
	if st.Requests.Budget > 0 {
		budget = fmt.Sprintf("of a budget of %d, %d left", st.Requests.Budget, st.Requests.BudgetLeft)
	}
	fmt.Fprintf(w, "  requests:    %d API requests in the last hour, %s; %d API and %d storage requests since mounting\n",
		st.Requests.LastHour, budget, st.Requests.API, st.Requests.Storage)
	fmt.Fprintf(w, "  prefetch:    %d queued, %d in flight, %d fetched, %d failed\n",
		st.Prefetch.Queued, st.Prefetch.InFlight, st.Prefetch.Fetched, st.Prefetch.Failed)
	pt := "off"
	if st.Passthrough {
		pt = "on"
	}
	fmt.Fprintf(w, "  passthrough: %s\n", pt)
}
