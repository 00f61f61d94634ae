// Command bench is pictofs's benchmark harness: one command that starts a
// local devserver with realistic cloud latency, seeds datasets, and runs, on
// the same bytes in the same run, a PyTorch DataLoader epoch and a plain
// parallel reader over
//
//   - the files on local disk (the limit),
//   - download-first (the official SDK's strategy: one download listing and
//     ten parallel workers, then the epoch from local disk),
//   - pictofs cold (empty cache; epoch 1, then epoch 2 on the same mount),
//   - pictofs warm (a remount over the warm cache) with passthrough on and off,
//   - rclone mount (--vfs-cache-mode full) and s3fs against an S3-compatible
//     server (gofakes3) behind the same latency and bandwidth cap,
//
// plus ls/find over large listings cold and warm, open + 1-byte read
// latency, API requests and the mount daemon's peak RSS. It prints the
// tables, writes a Markdown report (and a JSON copy of the results), and
// states which performance targets hold.
//
//	go run ./bench --images 2000 --runs 3 --list-sizes 10000,100000
//
// It needs root (FUSE mounts and dropping the page cache), fuse3, rclone and
// s3fs (unless --skip-peers) and /usr/bin/python3 with torch, torchvision
// and PIL. It exits 1 when a workload fails or reads wrong bytes, and 0
// otherwise, even when targets are missed: targets are reported, not
// asserted. Every mount, process and temporary directory it makes is
// removed on exit, including on failure and Ctrl-C.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pictofs/pictofs/internal/units"
)

//go:embed workload.py
var workloadPy []byte

// config is the harness's flags.
type config struct {
	images           int
	apiLatency       time.Duration
	storageLatency   time.Duration
	storageBandwidth int64
	runs             int
	out              string
	skipPeers        bool
	listSizes        []int
	workers          int
	readers          int
	batchSize        int
	prefetchWorkers  int
	cacheSize        string
	downloadWorkers  int
	openSamples      int
	longRun          time.Duration
	timeout          time.Duration
	dataDir          string
	tmpDir           string
	python           string
	allowTmpfs       bool
	annotatedImages  int
	annotatedListing int
	budgetImages     int
	budgetPerHour    int
	// flags is every flag with its value, defaults included, for the report.
	flags []string
	// mode is a side job instead of the benchmark: "source-hash",
	// "check-figures" or "write-readme"; "" runs the benchmark.
	mode string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench [flags]\n\nBenchmarks pictofs against local disk, download-first, rclone and s3fs.\n\n")
		fs.PrintDefaults()
	}
	var bw, lists string
	fs.IntVar(&c.images, "images", 2000, "images in the epoch dataset (at most 10000, the download listing's cap)")
	fs.DurationVar(&c.apiLatency, "api-latency", 50*time.Millisecond, "injected latency of every API response")
	fs.DurationVar(&c.storageLatency, "storage-latency", 30*time.Millisecond, "injected time to first byte of every storage (and S3) response")
	fs.StringVar(&bw, "storage-bandwidth", "100MB", "bandwidth cap of each storage (and S3) response, bytes/s (0 = unlimited)")
	fs.IntVar(&c.runs, "runs", 3, "runs of each measurement (the median is reported); a measurement that took longer than --long-run is not repeated")
	fs.StringVar(&c.out, "out", "bench/out/report.md", "Markdown report path (results JSON and logs go beside it)")
	fs.BoolVar(&c.skipPeers, "skip-peers", false, "skip rclone and s3fs")
	fs.StringVar(&lists, "list-sizes", "10000,100000", "image counts of the listing benchmark's datasets (comma-separated; empty = none)")
	fs.IntVar(&c.workers, "workers", 4, "DataLoader num_workers")
	fs.IntVar(&c.readers, "readers", 8, "parallel readers of the plain reader workload")
	fs.IntVar(&c.batchSize, "batch-size", 32, "DataLoader batch size")
	fs.IntVar(&c.prefetchWorkers, "prefetch-workers", 64, "pictofs mount --prefetch-workers (the mount's default)")
	fs.StringVar(&c.cacheSize, "cache-size", "10GiB", "pictofs mount --cache-size")
	fs.IntVar(&c.downloadWorkers, "download-workers", 10, "parallel transfers of the download-first baseline (the SDK's max_workers)")
	fs.IntVar(&c.openSamples, "open-samples", 100, "files timed by the open + 1-byte read latency benchmark")
	fs.DurationVar(&c.longRun, "long-run", time.Minute, "measurements taking longer than this are run once instead of --runs times")
	fs.DurationVar(&c.timeout, "timeout", 20*time.Minute, "time limit of one workload run")
	fs.StringVar(&c.dataDir, "data-dir", "bench/out/data", "devserver data directory, kept between invocations so seeding happens once")
	fs.StringVar(&c.tmpDir, "tmp-dir", "", "where mounts, caches and copies go (default: the system temp dir)")
	fs.StringVar(&c.python, "python", "/usr/bin/python3", "Python with torch, torchvision and PIL")
	fs.BoolVar(&c.allowTmpfs, "allow-tmpfs", false, "measure even when the work directory is in memory (tmpfs): \"local disk\" and warm caches are then memory reads")
	fs.IntVar(&c.annotatedImages, "annotated-images", 25000, "images of the annotated dataset read whole on a fresh mount (mount + ls -lR + every image and document; 0 = skip)")
	fs.IntVar(&c.annotatedListing, "annotated-listing", 25000, "images of the dataset (two thirds annotated, one folder) whose annotations/ is listed on a fresh mount (0 = skip)")
	fs.IntVar(&c.budgetImages, "budget-images", 10000, "images of the annotated dataset of the DataLoader epoch under --budget-requests-per-hour (0 = skip)")
	fs.IntVar(&c.budgetPerHour, "budget-requests-per-hour", 2000, "the mount's --requests-per-hour for the --budget-images epoch")
	var sourceHashMode, checkMode, readmeMode bool
	fs.BoolVar(&sourceHashMode, "source-hash", false, "print the product's source hash (what reports record) and exit")
	fs.BoolVar(&checkMode, "check-figures", false, "exit 1 unless bench/RESULTS.md was measured on this tree's source and the README's figures are what it generates (CI runs this)")
	fs.BoolVar(&readmeMode, "write-readme", false, "rewrite the README's benchmark figures from bench/RESULTS.md and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	modes := 0
	for _, m := range []struct {
		on   bool
		name string
	}{{sourceHashMode, "source-hash"}, {checkMode, "check-figures"}, {readmeMode, "write-readme"}} {
		if m.on {
			c.mode = m.name
			modes++
		}
	}
	if modes > 1 {
		return c, errors.New("--source-hash, --check-figures and --write-readme exclude each other")
	}
	fs.VisitAll(func(f *flag.Flag) {
		c.flags = append(c.flags, "--"+f.Name+"="+f.Value.String())
	})
	var err error
	if c.storageBandwidth, err = units.ParseBytes(bw); err != nil {
		return c, fmt.Errorf("--storage-bandwidth: %w", err)
	}
	if c.listSizes, err = parseInts(lists); err != nil {
		return c, fmt.Errorf("--list-sizes: %w", err)
	}
	checks := []struct {
		bad  bool
		what string
	}{
		{c.images < 1 || c.images > 10000, "--images must be between 1 and 10000 (the download listing's cap)"},
		{c.runs < 1, "--runs must be at least 1"},
		{c.apiLatency < 0 || c.storageLatency < 0, "latencies must not be negative"},
		{c.workers < 0, "--workers must not be negative"},
		{c.readers < 1 || c.downloadWorkers < 1 || c.prefetchWorkers < 1, "--readers, --download-workers and --prefetch-workers must be at least 1"},
		{c.batchSize < 1, "--batch-size must be at least 1"},
		{c.openSamples < 1, "--open-samples must be at least 1"},
		{c.annotatedImages < 0 || c.annotatedListing < 0 || c.budgetImages < 0, "--annotated-images, --annotated-listing and --budget-images must not be negative"},
		{c.budgetPerHour < 1, "--budget-requests-per-hour must be at least 1"},
		{c.out == "" || c.dataDir == "", "--out and --data-dir must not be empty"},
	}
	for _, ch := range checks {
		if ch.bad {
			return c, errors.New(ch.what)
		}
	}
	// The devserver opens its SQLite file by URI, which needs an absolute path.
	if c.dataDir, err = filepath.Abs(c.dataDir); err != nil {
		return c, fmt.Errorf("--data-dir: %w", err)
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if cfg.mode != "" {
		os.Exit(runMode(cfg.mode))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, cfg)
	stop()
	os.Exit(code)
}

// runMode runs one of the side jobs that need neither root nor a devserver
// and returns the exit code.
func runMode(mode string) int {
	root, err := moduleRoot()
	if err == nil {
		switch mode {
		case "source-hash":
			var hash string
			var n int
			if hash, n, err = sourceHash(root); err == nil {
				fmt.Printf("%s  (%d files)\n", hash, n)
			}
		case "check-figures":
			if err = checkFigures(root); err == nil {
				fmt.Println("bench: the published figures were measured on this source")
			}
		case "write-readme":
			if err = writeReadme(root); err == nil {
				fmt.Printf("bench: wrote the figures of %s into %s\n", resultsPath, readmePath)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}
