package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
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
	Images     int       `json:"images"`
	Bytes      int64     `json:"bytes"`
}

// metaSeries collects one metadata command on one system over runs.
type metaSeries struct {
	Cold []float64 `json:"cold_s"`
	Warm []float64 `json:"warm_s"`
}

// results is everything one invocation measured.
type results struct {
	Started  time.Time                                    `json:"started"`
	Setup    map[string]string                            `json:"setup"`
	Epoch    map[string]map[string]*series                `json:"epoch"` // workload → system
	Open     map[string][]float64                         `json:"open_1byte_s"`
	Meta     map[string]map[string]map[string]*metaSeries `json:"metadata"` // size → system → command
	MetaRSS  map[string][]int64                           `json:"metadata_peak_rss_bytes"`
	MetaAPI  map[string][]int64                           `json:"metadata_api_requests"`
	Notes    []string                                     `json:"notes,omitempty"`
	Failures []string                                     `json:"failures,omitempty"`
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
	cfg     config
	res     *results
	cl      cleanups
	work    string // temporary directory for mounts, caches and copies
	logs    string // daemon and workload logs, kept beside the report
	bin     string // the pictofs binary built for this run
	script  string // workload.py
	apiURL  string
	key     string
	dataset string
	canDrop bool
	exp     expected
	ref     string   // the reference local copy of the dataset
	sample  []string // images timed by the open latency benchmark
	s3      *s3Server
	slow    map[string]bool // measurements not to repeat
	seq     int
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
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
	defer h.cl.run(h.logf)
	err := h.runAll(ctx)
	if err != nil {
		h.fail("benchmark", err)
	}
	h.cl.run(h.logf)
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
	return h.metadataPhase(ctx)
}

func (h *harness) setup(ctx context.Context) error {
	cfg := h.cfg
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
	var err error
	if h.work, err = os.MkdirTemp(cfg.tmpDir, "pictofs-bench-"); err != nil {
		return fmt.Errorf("make work dir: %w", err)
	}
	work := h.work
	h.cl.push("remove "+work, func() error { return os.RemoveAll(work) })
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
	if err := h.build(ctx); err != nil {
		return err
	}
	h.dataset = fmt.Sprintf("bench-%d", cfg.images)
	specs := []seedSpec{{h.dataset, cfg.images}}
	for _, n := range cfg.listSizes {
		specs = append(specs, seedSpec{listDataset(n), n})
	}
	if h.key, err = seedData(ctx, cfg.dataDir, specs, h.logf); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := h.startServe(ctx); err != nil {
		return err
	}
	h.recordSetup()
	return nil
}

func listDataset(n int) string { return fmt.Sprintf("list-%d", n) }

// build compiles the pictofs binary of the module the harness belongs to.
func (h *harness) build(ctx context.Context) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	h.bin = filepath.Join(h.work, "pictofs")
	h.logf("building pictofs from %s", root)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", h.bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
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
	s["dataloader"] = fmt.Sprintf("num_workers=%d, batch_size=%d, shuffle=True, PIL decode + JSON parse", cfg.workers, cfg.batchSize)
	s["reader"] = fmt.Sprintf("%d goroutines, read whole files, no decode", cfg.readers)
	s["pictofs_mount"] = fmt.Sprintf("--cache-size %s --prefetch-workers %d", cfg.cacheSize, cfg.prefetchWorkers)
	s["download_workers"] = strconv.Itoa(cfg.downloadWorkers)
	s["machine"] = fmt.Sprintf("%s/%s, %d CPUs, kernel %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), kernelRelease())
	s["page_cache_dropped"] = strconv.FormatBool(h.canDrop)
	for _, t := range []struct{ name, arg string }{{"rclone", "version"}, {"s3fs", "--version"}} {
		if out, err := exec.Command(t.name, t.arg).Output(); err == nil {
			s[t.name] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	if out, err := exec.Command(cfg.python, "-c", "import torch, PIL; print(torch.__version__, PIL.__version__)").Output(); err == nil {
		s["torch_pil"] = strings.TrimSpace(string(out))
	}
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
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

// epoch runs one workload over root, checks what it read, and returns it.
func (h *harness) epoch(ctx context.Context, wl, what, root string) (epochResult, error) {
	var r epochResult
	var err error
	switch wl {
	case wlLoader:
		r, err = runLoader(ctx, h.cfg.python, h.script, root, h.cfg.workers, h.cfg.batchSize, h.cfg.timeout, filepath.Join(h.logs, "loader.log"))
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

// mountPictofs mounts pictofs with the given cache directory; the dataset is
// at <mount>/<dataset>.
func (h *harness) mountPictofs(ctx context.Context, cache string, passthrough bool) (*mounted, error) {
	n := h.next()
	mnt, err := freshDir(h.work, "mnt-pictofs-")
	if err != nil {
		return nil, err
	}
	p, err := startProc("pictofs mount", filepath.Join(h.logs, fmt.Sprintf("pictofs-mount-%02d.log", n)),
		[]string{"PICTOGRAPH_API_KEY=" + h.key}, []string{"PICTOGRAPH_BASE_URL", "PICTOFS_API_KEY"},
		h.bin, "mount", "--api-url", h.apiURL, "--cache-dir", cache, "--cache-size", h.cfg.cacheSize,
		"--prefetch-workers", strconv.Itoa(h.cfg.prefetchWorkers), "--passthrough="+strconv.FormatBool(passthrough), mnt)
	if err != nil {
		return nil, err
	}
	return h.waitMount(ctx, &mounted{kind: kindPictofs, dir: mnt, p: p, bin: h.bin})
}

func (h *harness) waitMount(ctx context.Context, m *mounted) (*mounted, error) {
	h.cl.push("unmount "+m.dir, m.unmount)
	if err := waitMounted(ctx, m, time.Minute); err != nil {
		return nil, errors.Join(err, m.unmount())
	}
	return m, nil
}

var apiRequestsRe = regexp.MustCompile(`api_requests=(\d+)`)

// pictofsAPIRequests is the API request count the daemon logged at unmount,
// -1 if it did not.
func pictofsAPIRequests(m *mounted) int64 {
	b, err := os.ReadFile(m.p.logPath)
	if err != nil {
		return -1
	}
	all := apiRequestsRe.FindAllSubmatch(b, -1)
	if len(all) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(string(all[len(all)-1][1]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// mountPeer mounts rclone or s3fs over the S3 bucket with a fresh cache.
func (h *harness) mountPeer(ctx context.Context, kind mountKind) (*mounted, error) {
	n := h.next()
	mnt, err := freshDir(h.work, "mnt-"+string(kind)+"-")
	if err != nil {
		return nil, err
	}
	cache, err := freshDir(h.work, "cache-"+string(kind)+"-")
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(h.logs, fmt.Sprintf("%s-%02d.log", kind, n))
	unset := []string{"AWS_CA_BUNDLE"}
	var p *proc
	switch kind {
	case kindRclone:
		conf := filepath.Join(h.work, "rclone.conf")
		if err := os.WriteFile(conf, nil, 0o600); err != nil {
			return nil, fmt.Errorf("rclone config: %w", err)
		}
		env := []string{"RCLONE_CONFIG=" + conf, "RCLONE_S3_PROVIDER=Other", "RCLONE_S3_ENDPOINT=" + h.s3.url,
			"RCLONE_S3_ACCESS_KEY_ID=bench", "RCLONE_S3_SECRET_ACCESS_KEY=benchsecret", "RCLONE_S3_REGION=us-east-1"}
		p, err = startProc("rclone mount", logPath, env, unset, "rclone", "mount", ":s3:"+s3Bucket, mnt,
			"--vfs-cache-mode", "full", "--cache-dir", cache)
	case kindS3fs:
		pw := filepath.Join(h.work, "s3fs.passwd")
		if err := os.WriteFile(pw, []byte("bench:benchsecret\n"), 0o600); err != nil {
			return nil, fmt.Errorf("s3fs passwd: %w", err)
		}
		p, err = startProc("s3fs", logPath, nil, unset, "s3fs", s3Bucket, mnt, "-f",
			"-o", "url="+h.s3.url, "-o", "use_path_request_style", "-o", "passwd_file="+pw, "-o", "use_cache="+cache)
	}
	if err != nil {
		return nil, err
	}
	return h.waitMount(ctx, &mounted{kind: kind, dir: mnt, p: p})
}

// epochPhase runs the epoch workloads on every system, --runs times.
func (h *harness) epochPhase(ctx context.Context) error {
	for r := range h.cfg.runs {
		h.logf("run %d/%d: %d images", r+1, h.cfg.runs, h.cfg.images)
		if err := h.downloadRun(ctx, r); err != nil {
			return err
		}
		if h.ref == "" {
			return errors.New("no reference copy of the dataset: download-first failed")
		}
		steps := []struct {
			name string
			fn   func(context.Context, int) error
		}{
			{sysLocal, h.localRun},
			{sysPictofs, h.pictofsRun},
			{sysRclone, func(ctx context.Context, r int) error { return h.peerRun(ctx, r, kindRclone) }},
			{sysS3fs, func(ctx context.Context, r int) error { return h.peerRun(ctx, r, kindS3fs) }},
		}
		for _, st := range steps {
			if (st.name == sysRclone || st.name == sysS3fs) && h.cfg.skipPeers {
				continue
			}
			if r > 0 && h.slow[st.name] {
				continue
			}
			if err := st.fn(ctx, r); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				h.fail(fmt.Sprintf("run %d: %s", r+1, st.name), err)
				h.slow[st.name] = true
			}
		}
	}
	return nil
}

// downloadRun is the download-first baseline; the first run's copy becomes
// the reference that every other system is checked against.
func (h *harness) downloadRun(ctx context.Context, r int) error {
	dst := filepath.Join(h.work, fmt.Sprintf("download-%d", r))
	st, err := downloadFirst(ctx, h.apiURL, h.key, h.dataset, dst, h.cfg.downloadWorkers)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.fail(fmt.Sprintf("run %d: download-first", r+1), err)
		return nil
	}
	h.logf("  %-30s %d files, %s in %s (%d API requests)", "download-first download", st.files, fmtBytes(st.bytes), fmtSeconds(st.seconds), st.apiRequests)
	if h.ref == "" {
		if err := h.setReference(ctx, dst); err != nil {
			return err
		}
	}
	for _, wl := range []string{wlLoader, wlReader} {
		res, err := h.epoch(ctx, wl, sysDownload, dst)
		if err != nil {
			h.fail(fmt.Sprintf("run %d: download-first %s", r+1, wl), err)
			continue
		}
		s := h.record(wl, sysDownload, res, st.seconds)
		s.API = append(s.API, st.apiRequests)
	}
	if dst != h.ref {
		return os.RemoveAll(dst)
	}
	return nil
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

// localRun reads the reference copy from disk (page cache dropped first).
func (h *harness) localRun(ctx context.Context, r int) error {
	var errs []error
	for _, wl := range []string{wlLoader, wlReader} {
		h.drop()
		res, err := h.epoch(ctx, wl, sysLocal, h.ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.record(wl, sysLocal, res, 0)
	}
	h.drop()
	lat, err := openLatencies(ctx, h.ref, h.sample)
	if err != nil {
		errs = append(errs, err)
	} else {
		h.res.Open[sysLocal] = append(h.res.Open[sysLocal], lat...)
	}
	return errors.Join(errs...)
}

// pictofsRun measures pictofs cold (epoch 1 on an empty cache, then epoch 2
// on the same mount), warm remounts over that cache with passthrough on and
// off, and the open latency of cold files.
func (h *harness) pictofsRun(ctx context.Context, r int) error {
	var errs []error
	warmCache := ""
	for _, wl := range []string{wlLoader, wlReader} {
		cache, err := freshDir(h.work, "cache-pictofs-")
		if err != nil {
			return err
		}
		if err := h.pictofsCold(ctx, wl, cache); err != nil {
			errs = append(errs, err)
			continue
		}
		if wl == wlLoader {
			warmCache = cache
		} else if err := os.RemoveAll(cache); err != nil {
			errs = append(errs, err)
		}
	}
	if warmCache != "" {
		for _, pt := range []bool{true, false} {
			if err := h.pictofsWarm(ctx, warmCache, pt); err != nil {
				errs = append(errs, err)
			}
		}
		if err := os.RemoveAll(warmCache); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.pictofsOpen(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (h *harness) pictofsCold(ctx context.Context, wl, cache string) error {
	m, err := h.mountPictofs(ctx, cache, true)
	if err != nil {
		return err
	}
	root := filepath.Join(m.dir, h.dataset)
	cold, err := h.epoch(ctx, wl, sysCold, root)
	if err != nil {
		return errors.Join(err, m.unmount())
	}
	h.drop()
	warm, err := h.epoch(ctx, wl, sysEpoch2, root)
	if err != nil {
		return errors.Join(err, m.unmount())
	}
	if err := m.unmount(); err != nil {
		return err
	}
	s := h.record(wl, sysCold, cold, 0)
	s.API = append(s.API, pictofsAPIRequests(m))
	s.RSS = append(s.RSS, m.rss)
	h.record(wl, sysEpoch2, warm, 0)
	return nil
}

func (h *harness) pictofsWarm(ctx context.Context, cache string, passthrough bool) error {
	sys := sysWarm
	if !passthrough {
		sys = sysWarmNoPT
	}
	m, err := h.mountPictofs(ctx, cache, passthrough)
	if err != nil {
		return err
	}
	root := filepath.Join(m.dir, h.dataset)
	got := map[string]epochResult{}
	for _, wl := range []string{wlLoader, wlReader} {
		h.drop()
		res, err := h.epoch(ctx, wl, sys, root)
		if err != nil {
			return errors.Join(err, m.unmount())
		}
		got[wl] = res
	}
	if err := m.unmount(); err != nil {
		return err
	}
	for wl, res := range got {
		s := h.record(wl, sys, res, 0)
		if wl == wlLoader {
			s.API = append(s.API, pictofsAPIRequests(m))
			s.RSS = append(s.RSS, m.rss)
		}
	}
	return nil
}

func (h *harness) pictofsOpen(ctx context.Context) error {
	cache, err := freshDir(h.work, "cache-pictofs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	m, err := h.mountPictofs(ctx, cache, true)
	if err != nil {
		return err
	}
	lat, err := openLatencies(ctx, filepath.Join(m.dir, h.dataset), h.sample)
	if uerr := m.unmount(); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	h.res.Open[sysPictofs] = append(h.res.Open[sysPictofs], lat...)
	return nil
}

// peerRun measures rclone or s3fs: epoch 1 on an empty cache then epoch 2
// on the same mount, for each workload, and the open latency.
func (h *harness) peerRun(ctx context.Context, r int, kind mountKind) error {
	coldSys, warmSys := sysRcloneCold, sysRcloneWarm
	if kind == kindS3fs {
		coldSys, warmSys = sysS3fsCold, sysS3fsWarm
	}
	var errs []error
	for _, wl := range []string{wlLoader, wlReader} {
		before := h.s3.requests.Load()
		m, err := h.mountPeer(ctx, kind)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cold, err := h.epoch(ctx, wl, coldSys, m.dir)
		if err == nil {
			h.drop()
			var warm epochResult
			if warm, err = h.epoch(ctx, wl, warmSys, m.dir); err == nil {
				h.record(wl, warmSys, warm, 0)
			}
		}
		if uerr := m.unmount(); err == nil {
			err = uerr
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s := h.record(wl, coldSys, cold, 0)
		s.API = append(s.API, h.s3.requests.Load()-before)
		s.RSS = append(s.RSS, m.rss)
		if cold.Total > h.cfg.longRun.Seconds() {
			h.slow[string(kind)] = true
		}
	}
	m, err := h.mountPeer(ctx, kind)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	lat, err := openLatencies(ctx, m.dir, h.sample)
	if uerr := m.unmount(); err == nil {
		err = uerr
	}
	if err != nil {
		errs = append(errs, err)
	} else {
		h.res.Open[string(kind)] = append(h.res.Open[string(kind)], lat...)
	}
	return errors.Join(errs...)
}

// metadataPhase times ls -R, ls -lR and find over each listing dataset's
// images/ on local disk (empty files of the listed sizes) and on pictofs,
// cold (page cache dropped / fresh mount and cache) then warm (again).
func (h *harness) metadataPhase(ctx context.Context) error {
	a := newAPIClient(h.apiURL, h.key, 1)
	defer a.close()
	for _, n := range h.cfg.listSizes {
		name := listDataset(n)
		local := filepath.Join(h.work, name)
		got, err := sparseTree(ctx, a, name, local)
		if err != nil {
			h.fail("metadata: local tree of "+name, err)
			continue
		}
		if got != n {
			h.fail("metadata: local tree of "+name, fmt.Errorf("listing has %d images, want %d", got, n))
			continue
		}
		h.logf("metadata: %d images", n)
		for r := range h.cfg.runs {
			for _, c := range metaCmds {
				h.drop()
				if err := h.metaPair(ctx, n, sysLocal, c, filepath.Join(local, "images")); err != nil {
					h.fail(fmt.Sprintf("metadata %d run %d: local %s", n, r+1, c.name), err)
				}
				if err := h.metaPictofs(ctx, n, c); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					h.fail(fmt.Sprintf("metadata %d run %d: pictofs %s", n, r+1, c.name), err)
				}
			}
		}
		if err := os.RemoveAll(local); err != nil {
			return fmt.Errorf("remove %s: %w", local, err)
		}
	}
	return nil
}

// metaPair runs c cold then warm over dir and records both.
func (h *harness) metaPair(ctx context.Context, n int, sys string, c metaCmd, dir string) error {
	ms := h.res.meta(n, sys, c.name)
	for i := range 2 {
		took, count, err := runMeta(ctx, c, dir, h.cfg.timeout)
		if err != nil {
			return err
		}
		if count != n {
			return fmt.Errorf("%s listed %d images, want %d", c.name, count, n)
		}
		if i == 0 {
			ms.Cold = append(ms.Cold, took)
		} else {
			ms.Warm = append(ms.Warm, took)
		}
		h.logf("  %-14s %-8s %-5s %s", sys, c.name, []string{"cold", "warm"}[i], fmtSeconds(took))
	}
	return nil
}

func (h *harness) metaPictofs(ctx context.Context, n int, c metaCmd) error {
	cache, err := freshDir(h.work, "cache-pictofs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	m, err := h.mountPictofs(ctx, cache, true)
	if err != nil {
		return err
	}
	err = h.metaPair(ctx, n, sysPictofs, c, filepath.Join(m.dir, listDataset(n), "images"))
	if uerr := m.unmount(); err == nil {
		err = uerr
	}
	k := strconv.Itoa(n)
	h.res.MetaRSS[k] = append(h.res.MetaRSS[k], m.rss)
	h.res.MetaAPI[k] = append(h.res.MetaAPI[k], pictofsAPIRequests(m))
	return err
}
