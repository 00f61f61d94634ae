package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Workloads.
const (
	wlLoader = "DataLoader"
	wlReader = "reader"
)

// Systems, in report order.
const (
	sysLocal      = "local disk"
	sysFloor      = "FUSE floor (go-fuse loopback)"
	sysDownload   = "download-first"
	sysCold       = "pictofs cold"
	sysEpoch2     = "pictofs epoch 2"
	sysWarm       = "pictofs warm"
	sysWarmNoPT   = "pictofs warm, no passthrough"
	sysRcloneCold = "rclone cold"
	sysRcloneWarm = "rclone warm"
	sysS3fsCold   = "s3fs cold"
	sysS3fsWarm   = "s3fs warm"
	sysPictofs    = "pictofs"
	sysRclone     = "rclone"
	sysS3fs       = "s3fs"
)

// series collects one (workload, system) cell over runs.
type series struct {
	FirstBatch []float64 `json:"first_batch_s,omitempty"`
	Total      []float64 `json:"total_s"`
	API        []int64   `json:"api_requests,omitempty"`
	RSS        []int64   `json:"peak_rss_bytes,omitempty"`
	// DaemonRead is what the FUSE daemon read from disk during the epoch
	// (read_bytes of /proc/PID/io), on a dropped page cache: near zero when
	// passthrough carried the reads, the epoch's bytes when the daemon did.
	DaemonRead []int64 `json:"daemon_disk_read_bytes,omitempty"`
	// Granted is, per mount, whether the daemon logged that the kernel
	// offered FUSE passthrough at INIT.
	Granted []bool `json:"passthrough_offered,omitempty"`
	Images  int    `json:"images"`
	Bytes   int64  `json:"bytes"`
}

// metaSeries collects one metadata command on one system over runs.
type metaSeries struct {
	Cold []float64 `json:"cold_s"`
	Warm []float64 `json:"warm_s"`
}

// results is everything one invocation measured.
type results struct {
	Started    time.Time                                    `json:"started"`
	Provenance provenance                                   `json:"provenance"`
	Sizes      sizes                                        `json:"sizes"`
	Setup      map[string]string                            `json:"setup"`
	Epoch      map[string]map[string]*series                `json:"epoch"` // workload → system
	Open       map[string][]float64                         `json:"open_1byte_s"`
	Meta       map[string]map[string]map[string]*metaSeries `json:"metadata"` // size → system → command
	MetaRSS    map[string][]int64                           `json:"metadata_peak_rss_bytes"`
	MetaAPI    map[string][]int64                           `json:"metadata_api_requests"`
	Annotated  []*annotatedRun                              `json:"annotated,omitempty"`
	Notes      []string                                     `json:"notes,omitempty"`
	Failures   []string                                     `json:"failures,omitempty"`
}

func newResults() *results {
	return &results{
		Started: time.Now(), Setup: map[string]string{},
		Epoch: map[string]map[string]*series{}, Open: map[string][]float64{},
		Meta: map[string]map[string]map[string]*metaSeries{}, MetaRSS: map[string][]int64{}, MetaAPI: map[string][]int64{},
	}
}

func (r *results) series(wl, sys string) *series {
	if r.Epoch[wl] == nil {
		r.Epoch[wl] = map[string]*series{}
	}
	if r.Epoch[wl][sys] == nil {
		r.Epoch[wl][sys] = &series{}
	}
	return r.Epoch[wl][sys]
}

func (r *results) meta(size int, sys, cmd string) *metaSeries {
	k := strconv.Itoa(size)
	if r.Meta[k] == nil {
		r.Meta[k] = map[string]map[string]*metaSeries{}
	}
	if r.Meta[k][sys] == nil {
		r.Meta[k][sys] = map[string]*metaSeries{}
	}
	if r.Meta[k][sys][cmd] == nil {
		r.Meta[k][sys][cmd] = &metaSeries{}
	}
	return r.Meta[k][sys][cmd]
}

// harness is one invocation's state.
type harness struct {
	cfg      config
	res      *results
	cl       cleanups
	root     string // the module root
	example  string // examples/pytorch_loader.py, which the DataLoader workload imports
	work     string // temporary directory for mounts, caches and copies
	logs     string // daemon and workload logs, kept beside the report
	bin      string // the pictofs binary built for this run
	loopback string // the FUSE floor's binary built for this run
	script   string // workload.py
	apiURL   string // the devserver's API
	proxy    *apiProxy
	key      string
	dataset  string
	canDrop  bool
	exp      expected
	ref      string   // the reference local copy of the dataset
	sample   []string // images timed by the open latency benchmark
	refs     map[string]*reference
	s3       *s3Server
	slow     map[string]bool // measurements not to repeat
	seq      int
}

// logf logs a line to stderr with the time since the run started.
func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: %6s "+format+"\n", append([]any{time.Since(h.res.Started).Round(time.Second)}, args...)...)
}

func (h *harness) fail(what string, err error) {
	msg := fmt.Sprintf("%s: %v", what, err)
	h.res.Failures = append(h.res.Failures, msg)
	h.logf("FAILED %s", msg)
}

func (h *harness) note(format string, args ...any) {
	h.res.Notes = append(h.res.Notes, fmt.Sprintf(format, args...))
}

func (h *harness) next() int { h.seq++; return h.seq }

// run is the whole benchmark; it returns the exit code.
func run(ctx context.Context, cfg config) int {
	h := &harness{cfg: cfg, res: newResults(), slow: map[string]bool{}}
	h.res.Sizes = sizes{Images: cfg.images, AnnotatedImages: cfg.annotatedImages, AnnotatedListing: cfg.annotatedListing,
		BudgetImages: cfg.budgetImages, BudgetPerHour: cfg.budgetPerHour}
	defer h.cl.run(h.logf)
	err := h.runAll(ctx)
	if err != nil {
		h.fail("benchmark", err)
	}
	h.cl.run(h.logf)
	h.res.Provenance.LoadEnd = loadAverage()
	h.res.Provenance.Ended = time.Now()
	if werr := h.writeReport(os.Stdout); werr != nil {
		h.logf("write report: %v", werr)
		return 1
	}
	if len(h.res.Failures) > 0 {
		h.logf("%d failure(s); see %s", len(h.res.Failures), cfg.out)
		return 1
	}
	return 0
}

func (h *harness) runAll(ctx context.Context) error {
	if err := h.setup(ctx); err != nil {
		return err
	}
	if err := h.epochPhase(ctx); err != nil {
		return err
	}
	if err := h.metadataPhase(ctx); err != nil {
		return err
	}
	return h.annotatedPhase(ctx)
}

func (h *harness) setup(ctx context.Context) error {
	cfg := h.cfg
	var err error
	if h.root, err = moduleRoot(); err != nil {
		return err
	}
	// Provenance first: the source hash is of the tree the binaries are
	// built from next.
	if h.res.Provenance, err = newProvenance(ctx, h.root, cfg.flags); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("run as root: the harness mounts FUSE filesystems and drops the page cache")
	}
	need := []string{cfg.python, "ls", "find", "fusermount3"}
	if !cfg.skipPeers {
		need = append(need, "rclone", "s3fs")
	}
	for _, n := range need {
		if _, err := exec.LookPath(n); err != nil {
			return fmt.Errorf("%s not found (apt-get install fuse3 rclone s3fs python3-torch python3-torchvision python3-pil, or pass --skip-peers): %w", n, err)
		}
	}
	h.canDrop = dropCaches() == nil
	if !h.canDrop {
		h.note("the page cache could not be dropped: warm reads compared with local disk may come from memory")
	}
	if h.work, err = os.MkdirTemp(cfg.tmpDir, "pictofs-bench-"); err != nil {
		return fmt.Errorf("make work dir: %w", err)
	}
	work := h.work
	h.cl.push("remove "+work, func() error { return os.RemoveAll(work) })
	if h.res.Provenance.WorkFS, err = fileSystemOf(work); err != nil {
		return err
	}
	if err := checkWorkFS(h.res.Provenance.WorkFS, cfg.allowTmpfs); err != nil {
		return err
	}
	if memoryFS[h.res.Provenance.WorkFS.Type] {
		h.note("the work directory is on %s (--allow-tmpfs): \"local disk\", the FUSE floor and every warm cache are memory reads", h.res.Provenance.WorkFS.Type)
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return fmt.Errorf("make data dir: %w", err)
	}
	if h.res.Provenance.DataFS, err = fileSystemOf(cfg.dataDir); err != nil {
		return err
	}
	h.logs = filepath.Join(filepath.Dir(cfg.out), "logs")
	if err := os.RemoveAll(h.logs); err != nil {
		return fmt.Errorf("clear logs: %w", err)
	}
	if err := os.MkdirAll(h.logs, 0o755); err != nil {
		return fmt.Errorf("make logs dir: %w", err)
	}
	h.script = filepath.Join(work, "workload.py")
	if err := os.WriteFile(h.script, workloadPy, 0o644); err != nil {
		return fmt.Errorf("write workload.py: %w", err)
	}
	h.example = filepath.Join(h.root, "examples", "pytorch_loader.py")
	if err := h.build(ctx); err != nil {
		return err
	}
	h.dataset = fmt.Sprintf("bench-%d", cfg.images)
	specs := []seedSpec{{name: h.dataset, images: cfg.images}}
	for _, n := range cfg.listSizes {
		specs = append(specs, seedSpec{name: listDataset(n), images: n})
	}
	annotated := h.annotatedSpecs()
	specs = append(specs, annotated...)
	if h.key, err = seedData(ctx, cfg.dataDir, specs, h.logf); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	var names []string
	withImages := map[string]bool{}
	for _, sp := range annotated {
		names = append(names, sp.name)
		withImages[sp.name] = sp.name != listingDataset(cfg.annotatedListing)
	}
	if h.refs, err = buildReferences(ctx, cfg.dataDir, names, withImages, h.logf); err != nil {
		return err
	}
	if err := h.startServe(ctx); err != nil {
		return err
	}
	if h.proxy, err = startAPIProxy(h.apiURL); err != nil {
		return err
	}
	proxy := h.proxy
	h.cl.push("stop the API proxy", proxy.close)
	h.recordSetup()
	return nil
}

func listDataset(n int) string { return fmt.Sprintf("list-%d", n) }

// build compiles the pictofs binary of the module the harness belongs to,
// and the FUSE floor.
func (h *harness) build(ctx context.Context) error {
	h.bin = filepath.Join(h.work, "pictofs")
	h.loopback = filepath.Join(h.work, "loopback")
	h.logf("building pictofs and the FUSE floor from %s", h.root)
	for _, b := range []struct{ out, pkg string }{{h.bin, "."}, {h.loopback, "./bench/loopback"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg)
		cmd.Dir = h.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	return nil
}

// moduleRoot finds the directory of the pictofs go.mod above the working
// directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/pictofs/pictofs\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the harness inside the pictofs module (go run ./bench)")
		}
		dir = parent
	}
}

// startServe runs `pictofs serve` on the seeded data dir with the injected
// latency and bandwidth.
func (h *harness) startServe(ctx context.Context) error {
	apiAddr, err := freePort()
	if err != nil {
		return err
	}
	storageAddr, err := freePort()
	if err != nil {
		return err
	}
	p, err := startProc("pictofs serve", filepath.Join(h.logs, "serve.log"), nil, nil, h.bin, "serve",
		"--data", h.cfg.dataDir, "--addr", apiAddr, "--storage-addr", storageAddr,
		"--admin-key", h.key, "--requests-per-hour", "10000000",
		"--api-latency", h.cfg.apiLatency.String(), "--storage-latency", h.cfg.storageLatency.String(),
		"--storage-bandwidth", strconv.FormatInt(h.cfg.storageBandwidth, 10), "--log-level", "warn")
	if err != nil {
		return err
	}
	h.cl.push("stop pictofs serve", func() error { return p.stop(10 * time.Second) })
	h.apiURL = "http://" + apiAddr
	a := newAPIClient(h.apiURL, h.key, 1)
	defer a.close()
	if err := a.waitReady(ctx, p, time.Minute); err != nil {
		return err
	}
	h.logf("devserver up at %s (API latency %v, storage TTFB %v, %s/s per storage connection)",
		h.apiURL, h.cfg.apiLatency, h.cfg.storageLatency, fmtBytes(h.cfg.storageBandwidth))
	return nil
}

func (h *harness) recordSetup() {
	cfg := h.cfg
	s := h.res.Setup
	s["images"] = strconv.Itoa(cfg.images)
	s["api_latency"] = cfg.apiLatency.String()
	s["storage_latency"] = cfg.storageLatency.String()
	s["storage_bandwidth"] = fmtBytes(cfg.storageBandwidth) + "/s per connection"
	s["runs"] = strconv.Itoa(cfg.runs)
	s["dataloader"] = fmt.Sprintf("examples/pytorch_loader.py's PictographDataset (imported), num_workers=%d, batch_size=%d, shuffle=True", cfg.workers, cfg.batchSize)
	s["reader"] = fmt.Sprintf("%d goroutines, read whole files, no decode", cfg.readers)
	s["pictofs_mount"] = strings.Join(h.pictofsMountFlags(), " ")
	s["fuse_floor"] = floorDescription
	s["api_requests"] = "counted by a proxy in front of the API (every request a mount makes, by kind; signed storage URLs cost none)"
	s["download_workers"] = strconv.Itoa(cfg.downloadWorkers)
	s["page_cache_dropped"] = strconv.FormatBool(h.canDrop)
	if !cfg.skipPeers {
		s["rclone_flags"] = strings.Join(rcloneFlags, " ")
		s["s3fs_flags"] = strings.Join(s3fsFlags, " ")
	}
	for _, t := range []struct{ name, arg string }{{"rclone", "version"}, {"s3fs", "--version"}} {
		if out, err := exec.Command(t.name, t.arg).Output(); err == nil {
			s[t.name] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	if out, err := exec.Command(cfg.python, "-c", "import torch, PIL; print(torch.__version__, PIL.__version__)").Output(); err == nil {
		s["torch_pil"] = strings.TrimSpace(string(out))
	}
}

// drop drops the page cache before a read compared with local disk.
func (h *harness) drop() {
	if !h.canDrop {
		return
	}
	if err := dropCaches(); err != nil {
		h.canDrop = false
		h.note("dropping the page cache failed mid-run: %v", err)
	}
}

// loaderRun is the DataLoader workload of this run, its log named what.
func (h *harness) loaderRun(what string) loaderRun {
	return loaderRun{python: h.cfg.python, script: h.script, example: h.example, workers: h.cfg.workers,
		batch: h.cfg.batchSize, timeout: h.cfg.timeout, logPath: filepath.Join(h.logs, what+".log")}
}

// epoch runs one workload over root, checks what it read, and returns it.
func (h *harness) epoch(ctx context.Context, wl, what, root string) (epochResult, error) {
	var r epochResult
	var err error
	switch wl {
	case wlLoader:
		r, err = runLoader(ctx, h.loaderRun("loader"), root)
	default:
		rctx, cancel := context.WithTimeout(ctx, h.cfg.timeout)
		r, err = readTree(rctx, root, h.cfg.readers)
		cancel()
	}
	if err == nil {
		err = h.exp.check(what+" "+wl, r)
	}
	if err != nil {
		return r, err
	}
	if wl == wlLoader {
		h.logf("  %-30s %-10s first batch %s, total %s", what, wl, fmtSeconds(r.FirstBatch), fmtSeconds(r.Total))
	} else {
		h.logf("  %-30s %-10s total %s", what, wl, fmtSeconds(r.Total))
	}
	return r, nil
}

// record adds an epoch to a series; extra is time spent before it (the
// download of download-first).
func (h *harness) record(wl, sys string, r epochResult, extra float64) *series {
	s := h.res.series(wl, sys)
	if wl == wlLoader {
		s.FirstBatch = append(s.FirstBatch, extra+r.FirstBatch)
	}
	s.Total = append(s.Total, extra+r.Total)
	s.Images, s.Bytes = r.Images, r.Bytes
	return s
}

// setReference makes dst the reference copy: its digest is what every
// epoch must read, and the open latency sample is drawn from it.
func (h *harness) setReference(ctx context.Context, dst string) error {
	r, err := readTree(ctx, dst, h.cfg.readers)
	if err != nil {
		return fmt.Errorf("hash the reference copy: %w", err)
	}
	if r.Images != h.cfg.images {
		return fmt.Errorf("the reference copy holds %d images, want %d", r.Images, h.cfg.images)
	}
	h.ref, h.exp = dst, expected{images: r.Images, digest: r.Digest}
	rels, err := walkImages(dst)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(rels), func(i, j int) { rels[i], rels[j] = rels[j], rels[i] })
	h.sample = rels[:min(len(rels), h.cfg.openSamples)]
	h.logf("  reference copy: %d images, %s, digest %s", r.Images, fmtBytes(r.Bytes), short(r.Digest))
	if !h.cfg.skipPeers {
		if h.s3, err = startS3(ctx, dst, h.cfg.storageLatency, h.cfg.storageBandwidth); err != nil {
			return err
		}
		s3 := h.s3
		h.cl.push("stop s3 server", s3.close)
	}
	return nil
}
