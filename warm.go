package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dustin/go-humanize"
	"github.com/urfave/cli/v2"

	"github.com/pictofs/pictofs/internal/control"
)

// warmEngine fills the cache with the images and annotation documents of a
// dataset, or of one folder of it, reporting progress as it goes.
//
// It is the shape of catalog.(*Catalog).Warm, which the lead supplies; until
// it lands, walkerProcess stands in by reading the files through the mount.
// What main relies on (see the report):
//   - subdir is a folder under images/ in entry names ("" = the whole
//     dataset); its documents under annotations/ are warmed with it;
//   - the totals come first, from the listing, before anything is fetched:
//     progress is called once with Files == 0 and the totals, and with
//     opts.MaxBytes > 0 a total above it fails with an error wrapping
//     errWarmTooBig before any fetch;
//   - progress may be called from several goroutines;
//   - a failed file counts in Failed and does not stop the warm; ctx ending
//     stops it and returns ctx's error;
//   - the result's FailedPaths lists some failures, for the summary.
type warmEngine interface {
	Warm(ctx context.Context, dataset, subdir string, opts warmOptions, progress func(control.WarmProgress)) (control.WarmResult, error)
}

// warmOptions tune a warm.
type warmOptions struct {
	// MaxBytes > 0 refuses a warm whose total is larger, before it starts.
	MaxBytes int64
}

// errWarmTooBig is wrapped by a warm refused because it cannot fit.
var errWarmTooBig = errors.New("does not fit the cache")

// maxFailedPaths bounds the failures a warm result lists.
const maxFailedPaths = 20

// walkerProcess is the stand-in warmEngine: it runs mountWalker in a child
// process (the hidden warm-walk command) and relays its progress. It must be
// another process: a daemon reading its own mount can never be killed while
// a read waits, since the kernel waits for the daemon's answer without
// giving up, and the daemon cannot exit while that thread waits.
//
// TEMPORARY: replace with catalog.(*Catalog).Warm when the lead's catalog
// lands (then the warm needs no mount, no child, and no FUSE round trip per
// file, and cancelling it cancels its fetches).
type walkerProcess struct {
	mountpoint string
	workers    int
}

func newWalkerProcess(mountpoint string, workers int) *walkerProcess {
	return &walkerProcess{mountpoint: mountpoint, workers: workers}
}

func (w *walkerProcess) Warm(ctx context.Context, dataset, subdir string, opts warmOptions, progress func(control.WarmProgress)) (control.WarmResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return control.WarmResult{}, err
	}
	cmd := exec.CommandContext(ctx, exe, warmWalkCommand, "--mountpoint", w.mountpoint, "--dataset", dataset,
		"--subdir", subdir, "--max-bytes", strconv.FormatInt(opts.MaxBytes, 10), "--workers", strconv.Itoa(w.workers))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return control.WarmResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return control.WarmResult{}, err
	}
	defer cmd.Wait()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var line control.WarmLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return control.WarmResult{}, fmt.Errorf("warm walker: %w", err)
		}
		switch {
		case line.Progress != nil:
			progress(*line.Progress)
		case line.Error != "":
			return control.WarmResult{}, errors.New(line.Error)
		case line.Result != nil:
			return *line.Result, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return control.WarmResult{}, err
	}
	return control.WarmResult{}, fmt.Errorf("warm walker ended without a result: %v", cmd.Wait())
}

// warmWalkCommand is the hidden command that walkerProcess runs.
const warmWalkCommand = "warm-walk"

func warmWalkChild() *cli.Command {
	return &cli.Command{
		Name:   warmWalkCommand,
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mountpoint"}, &cli.StringFlag{Name: "dataset"}, &cli.StringFlag{Name: "subdir"},
			&cli.Int64Flag{Name: "max-bytes"}, &cli.IntFlag{Name: "workers"},
		},
		Action: func(cc *cli.Context) error {
			var mu sync.Mutex // guards enc
			enc := json.NewEncoder(os.Stdout)
			w := newMountWalker(cc.String("mountpoint"), cc.Int("workers"))
			res, err := w.Warm(cc.Context, cc.String("dataset"), cc.String("subdir"), warmOptions{MaxBytes: cc.Int64("max-bytes")},
				func(p control.WarmProgress) {
					mu.Lock()
					defer mu.Unlock()
					enc.Encode(control.WarmLine{Progress: &p})
				})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				return enc.Encode(control.WarmLine{Error: err.Error()})
			}
			return enc.Encode(control.WarmLine{Result: &res})
		},
	}
}

// mountWalker lists the files of a folder through the mount and reads each
// one, in parallel, so that the mount fetches them into the cache.
type mountWalker struct {
	mountpoint string
	workers    int
}

func newMountWalker(mountpoint string, workers int) *mountWalker {
	return &mountWalker{mountpoint: mountpoint, workers: min(max(workers, 1), 32)}
}

type warmFile struct {
	path string
	size int64
}

func (w *mountWalker) Warm(ctx context.Context, dataset, subdir string, opts warmOptions, progress func(control.WarmProgress)) (control.WarmResult, error) {
	var res control.WarmResult
	root := filepath.Join(w.mountpoint, dataset)
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return res, fmt.Errorf("dataset %q: not found under %s", dataset, w.mountpoint)
	}
	var files []warmFile
	for _, top := range []string{"images", "annotations"} {
		dir := filepath.Join(root, top, subdir)
		if _, err := os.Stat(dir); err != nil {
			if top == "images" {
				return res, fmt.Errorf("%s: %w", dir, unwrapPathError(err))
			}
			continue
		}
		err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if e.IsDir() {
				return nil
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			files = append(files, warmFile{path: p, size: info.Size()})
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("list %s: %w", dir, err)
		}
	}
	for _, f := range files {
		res.TotalFiles++
		res.TotalBytes += f.size
	}
	if opts.MaxBytes > 0 && res.TotalBytes > opts.MaxBytes {
		return res, fmt.Errorf("%s needs %s but the cache holds at most %s (--cache-size): %w",
			filepath.Join(dataset, subdir), humanize.IBytes(uint64(res.TotalBytes)), humanize.IBytes(uint64(opts.MaxBytes)), errWarmTooBig)
	}
	progress(res.WarmProgress)

	var filesDone, bytesDone, failed atomic.Int64
	var mu sync.Mutex // guards res.FailedPaths
	work := make(chan warmFile)
	var wg sync.WaitGroup
	for range w.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				err := readAll(ctx, f.path)
				if err != nil && ctx.Err() == nil {
					failed.Add(1)
					mu.Lock()
					if len(res.FailedPaths) < maxFailedPaths {
						res.FailedPaths = append(res.FailedPaths, fmt.Sprintf("%s: %v", strings.TrimPrefix(f.path, w.mountpoint+"/"), unwrapPathError(err)))
					}
					mu.Unlock()
				} else if err == nil {
					bytesDone.Add(f.size)
				}
				n := filesDone.Add(1)
				progress(control.WarmProgress{Files: n, Bytes: bytesDone.Load(), TotalFiles: res.TotalFiles, TotalBytes: res.TotalBytes, Failed: failed.Load()})
			}
		}()
	}
feed:
	for _, f := range files {
		select {
		case work <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	res.Files, res.Bytes, res.Failed = filesDone.Load(), bytesDone.Load(), failed.Load()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// readAll reads a file to its end, so the mount caches it.
func readAll(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
