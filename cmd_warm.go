package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/control"
	"github.com/pictofs/pictofs/internal/metrics"
)

// warmLineEvery is how often warm prints a progress line when its output is
// not a terminal.
const warmLineEvery = 5 * time.Second

func warmCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "dataset", Usage: "warm this dataset without a running mount (uses --cache-dir and the API flags)", EnvVars: []string{"PICTOFS_WARM_DATASET"}},
		&cli.StringFlag{Name: "subdir", Usage: "with --dataset: only this folder under images/ (and its annotation documents)"},
		&cli.BoolFlag{Name: "no-progress", Usage: "print plain progress lines even on a terminal"},
	}
	for _, f := range mountFlags(true) {
		if !slices.Contains(mountOnlyFlags, f.Names()[0]) {
			flags = append(flags, f)
		}
	}
	return &cli.Command{
		Name:  "warm",
		Usage: "fill the disk cache with a dataset's images and annotation documents before training",
		Description: `pictofs warm MOUNTPOINT/DATASET[/images][/SUBDIR] …
     asks the daemon serving MOUNTPOINT to warm each path (through its control socket).
   pictofs warm --dataset NAME [--status complete] [--cache-dir DIR] [API flags]
     warms NAME into the cache directory without a mount of your own.

   A progress bar is shown on a terminal, plain lines otherwise, and a summary at the end.
   Exit status 1 when any file failed; 130 when interrupted (Ctrl-C stops cleanly).
   A warm larger than the cache's cap is refused before it starts.`,
		ArgsUsage: "[MOUNTPOINT/DATASET[/SUBDIR] …]",
		Flags:     flags,
		Action: func(cc *cli.Context) error {
			ctx, stop := signal.NotifyContext(cc.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := newWarmOutput(os.Stderr, cc.Bool("no-progress"))
			if name := cc.String("dataset"); name != "" {
				if cc.NArg() > 0 {
					return fmt.Errorf("warm: give either --dataset or paths under a mount, not both")
				}
				cfg := mountConfigFrom(cc, "")
				return warmOffline(ctx, cfg, name, cc.String("subdir"), out)
			}
			if cc.NArg() == 0 {
				return fmt.Errorf("warm needs MOUNTPOINT/DATASET[/SUBDIR] arguments or --dataset NAME (see 'pictofs warm --help')")
			}
			var failed bool
			for _, arg := range cc.Args().Slice() {
				target, err := resolveWarmTarget(arg)
				if err != nil {
					return err
				}
				res, err := warmThroughSocket(ctx, target, out)
				if err := warmExit(ctx, err, res); err != nil {
					if ctx.Err() != nil || !errors.Is(err, errWarmFailed) {
						return err
					}
					failed = true
				}
			}
			if failed {
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}

// mountOnlyFlags are the mount flags that mean nothing to a warm (their
// zero values are valid, so mountConfigFrom may read them).
var mountOnlyFlags = []string{"daemon", "read-only", "allow-delete", "max-upload-size", "allow-other", "debug-fuse", "metrics-addr", "pprof-addr", "shutdown-grace", "uid", "gid", "passthrough"}

// errWarmFailed marks a warm that ran to its end with failed files.
var errWarmFailed = errors.New("some files failed")

// warmExit turns how a warm ended into the command's error: nil when all
// went well, exit 130 when interrupted, errWarmFailed when files failed.
func warmExit(ctx context.Context, err error, res control.WarmResult) error {
	switch {
	case ctx.Err() != nil:
		return cli.Exit("pictofs warm: interrupted", 130)
	case err != nil:
		return err
	case res.Failed > 0:
		return fmt.Errorf("%d of %d files failed: %w", res.Failed, res.TotalFiles, errWarmFailed)
	}
	return nil
}

// warmTarget is a folder of a mount to warm.
type warmTarget struct {
	mountpoint, socket string
	dataset, subdir    string
}

// resolveWarmTarget finds the running mount that serves arg and splits the
// rest of the path into the dataset and the folder under images/.
func resolveWarmTarget(arg string) (warmTarget, error) {
	abs, err := expandPath(arg)
	if err != nil {
		return warmTarget{}, fmt.Errorf("warm %w", err)
	}
	dir := control.Dir()
	for p := abs; ; p = filepath.Dir(p) {
		sock := control.SocketPath(dir, p)
		if _, err := os.Stat(sock); err == nil {
			if mounted, _ := fs.IsMountpoint(p); mounted {
				rel, _ := filepath.Rel(p, abs)
				parts := strings.Split(filepath.ToSlash(rel), "/")
				if rel == "." || parts[0] == "" {
					return warmTarget{}, fmt.Errorf("warm %s: name a dataset under the mount point (e.g. %s)", arg, filepath.Join(arg, "DATASET"))
				}
				t := warmTarget{mountpoint: p, socket: sock, dataset: parts[0]}
				rest := parts[1:]
				if len(rest) > 0 && (rest[0] == "images" || rest[0] == "annotations") {
					rest = rest[1:]
				}
				t.subdir = strings.Join(rest, "/")
				return t, nil
			}
		}
		if p == filepath.Dir(p) {
			return warmTarget{}, fmt.Errorf("warm %s: no running pictofs mount serves this path (start one with 'pictofs mount', or use --dataset)", arg)
		}
	}
}

// warmThroughSocket asks the daemon to warm t and follows its progress.
func warmThroughSocket(ctx context.Context, t warmTarget, out *warmOutput) (control.WarmResult, error) {
	resp, err := control.Call(ctx, t.socket, http.MethodPost, control.WarmPath, control.WarmRequest{Dataset: t.dataset, Subdir: t.subdir})
	var refused *control.RefusedError
	switch {
	case errors.As(err, &refused):
		return control.WarmResult{}, fmt.Errorf("warm %s: %w", t.mountpoint, err)
	case err != nil:
		return control.WarmResult{}, fmt.Errorf("warm %s: the daemon does not answer on %s: %w", t.mountpoint, t.socket, err)
	}
	defer resp.Body.Close()
	name := filepath.Join(t.dataset, t.subdir)
	out.start(name)
	defer out.finish()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var line control.WarmLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return control.WarmResult{}, fmt.Errorf("warm %s: bad answer from the daemon: %w", t.mountpoint, err)
		}
		switch {
		case line.Progress != nil:
			out.progress(*line.Progress)
		case line.Error != "":
			return control.WarmResult{}, fmt.Errorf("warm %s: %s", name, line.Error)
		case line.Result != nil:
			out.summary(*line.Result)
			return *line.Result, nil
		}
	}
	if ctx.Err() != nil {
		out.interrupted()
		return control.WarmResult{}, ctx.Err()
	}
	return control.WarmResult{}, fmt.Errorf("warm %s: the daemon stopped answering: %v", name, sc.Err())
}

// warmOffline warms a dataset into the cache directory without a mount: the
// catalog fetches straight into the cache, as a mount of it would.
func warmOffline(ctx context.Context, cfg mountConfig, dataset, subdir string, out *warmOutput) error {
	cfg.Mountpoint = "/" // no mount: check needs a path, and nothing uses it
	if err := cfg.check(); err != nil {
		return err
	}
	red := &redactor{}
	logger, closeLog, err := openLogger(cfg.Log, red)
	if err != nil {
		return err
	}
	defer closeLog()
	red.addSharedCachePassword(cfg.SharedCache)
	met := metrics.New()
	api, keySource, err := newAPIClient(cfg.API, logger, red, met)
	if err != nil {
		return err
	}
	d, err := openCatalog(ctx, mountSetup{cfg: cfg, log: logger, api: api, keySource: keySource, metrics: met})
	if err != nil {
		return err
	}
	defer d.close()
	name := filepath.Join(dataset, subdir)
	out.start(name)
	res, err := warmCatalog(ctx, d.cat, dataset, subdir, out.progress)
	switch {
	case ctx.Err() != nil:
		out.interrupted()
	case err == nil:
		out.summary(res)
	}
	out.finish()
	return warmExit(ctx, err, res)
}

// warmOutput shows a warm's progress: a progress bar on a terminal, plain
// lines every warmLineEvery otherwise, and a summary.
type warmOutput struct {
	w       io.Writer
	tty     bool
	name    string
	began   time.Time
	bar     *progressbar.ProgressBar
	lastOut time.Time
	last    control.WarmProgress
}

func newWarmOutput(w *os.File, plain bool) *warmOutput {
	return &warmOutput{w: w, tty: !plain && term.IsTerminal(int(w.Fd()))}
}

func (o *warmOutput) start(name string) {
	o.name, o.began, o.bar, o.last = name, time.Now(), nil, control.WarmProgress{}
	o.lastOut = o.began
}

func (o *warmOutput) progress(p control.WarmProgress) {
	o.last = p
	if o.tty {
		if o.bar == nil {
			o.bar = progressbar.NewOptions64(p.TotalBytes,
				progressbar.OptionSetWriter(o.w),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetRenderBlankState(true),
				progressbar.OptionSetDescription(o.describe(p)),
			)
		}
		o.bar.Describe(o.describe(p))
		o.bar.Set64(p.Bytes)
		return
	}
	if p.Files == 0 {
		fmt.Fprintf(o.w, "warm %s: %d files, %s to fetch\n", o.name, p.TotalFiles, humanize.IBytes(uint64(p.TotalBytes)))
		return
	}
	if time.Since(o.lastOut) >= warmLineEvery {
		o.lastOut = time.Now()
		fmt.Fprintf(o.w, "warm %s: %s\n", o.name, o.line(p))
	}
}

func (o *warmOutput) describe(p control.WarmProgress) string {
	d := fmt.Sprintf("%s %d/%d files", o.name, p.Files, p.TotalFiles)
	if p.Failed > 0 {
		d += fmt.Sprintf(", %d failed", p.Failed)
	}
	return d
}

// line is one plain progress line: files, bytes, rate, ETA, failures.
func (o *warmOutput) line(p control.WarmProgress) string {
	el := time.Since(o.began).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.Bytes) / el
	}
	eta := "?"
	if rate > 0 && p.TotalBytes >= p.Bytes {
		eta = (time.Duration(float64(p.TotalBytes-p.Bytes)/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%d/%d files, %s/%s, %s/s, ETA %s, %d failed", p.Files, p.TotalFiles,
		humanize.IBytes(uint64(p.Bytes)), humanize.IBytes(uint64(p.TotalBytes)), humanize.IBytes(uint64(rate)), eta, p.Failed)
}

func (o *warmOutput) finish() {
	if o.bar != nil {
		o.bar.Exit()
		fmt.Fprintln(o.w)
		o.bar = nil
	}
}

func (o *warmOutput) summary(r control.WarmResult) {
	o.finish()
	el := time.Since(o.began)
	fmt.Fprintf(o.w, "warmed %s: %d of %d files, %s in %v (%s/s), %d failed\n", o.name, r.Files-r.Failed, r.TotalFiles,
		humanize.IBytes(uint64(r.Bytes)), el.Round(10*time.Millisecond), humanize.IBytes(uint64(float64(r.Bytes)/max(el.Seconds(), 0.001))), r.Failed)
	for _, p := range r.FailedPaths {
		fmt.Fprintf(o.w, "  failed: %s\n", p)
	}
	if int64(len(r.FailedPaths)) < r.Failed {
		fmt.Fprintf(o.w, "  … and %d more (see the daemon's log)\n", r.Failed-int64(len(r.FailedPaths)))
	}
}

func (o *warmOutput) interrupted() {
	o.finish()
	fmt.Fprintf(o.w, "warm %s interrupted: %s\n", o.name, o.line(o.last))
}
