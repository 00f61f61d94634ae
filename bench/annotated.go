package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The annotation rows: what a training job's first contact with a large
// annotated dataset costs in time and API requests, on a fresh mount and
// cache each, once per invocation (not repeated for --runs):
//
//   - listing (issue 14): `ls annotations/` of a folder of --annotated-listing
//     images, two thirds annotated, then `ls -l` of it (every size checked);
//   - read all (issue 8): mount + `ls -lR` + reading every image and
//     document of --annotated-images annotated images (every byte checked);
//   - budget (issue 8): a DataLoader epoch over --budget-images annotated
//     images with the mount's --requests-per-hour at
//     --budget-requests-per-hour, counting reads that fail (EAGAIN …)
//     instead of stopping, and checking the bytes of the others.
//
// The datasets are devserver.SeedSynthetic's small images; every file read
// is checked against the per-image routes' bytes (see reference).

// annotatedDirs is the number of folders of the read-all and budget
// datasets.
const annotatedDirs = 10

// listingDataset is the issue-14 dataset: one folder, two thirds annotated.
func listingDataset(n int) string { return fmt.Sprintf("annotated-listing-%d", n) }

// annotatedDataset is a fully annotated dataset over annotatedDirs folders.
func annotatedDataset(n int) string { return fmt.Sprintf("annotated-%d", n) }

// twoThirds annotates, with SeedSynthetic's even images, two thirds of all.
func twoThirds(i int) bool { return i%6 == 1 }

func allImages(int) bool { return true }

// annotatedSpecs are the datasets the annotation rows need, without
// duplicates.
func (h *harness) annotatedSpecs() []seedSpec {
	var specs []seedSpec
	add := func(sp seedSpec) {
		if !slices.ContainsFunc(specs, func(o seedSpec) bool { return o.name == sp.name }) {
			specs = append(specs, sp)
		}
	}
	if n := h.cfg.annotatedListing; n > 0 {
		add(seedSpec{name: listingDataset(n), images: n, synthetic: true, dirs: 1, annotate: twoThirds})
	}
	for _, n := range []int{h.cfg.annotatedImages, h.cfg.budgetImages} {
		if n > 0 {
			add(seedSpec{name: annotatedDataset(n), images: n, synthetic: true, dirs: annotatedDirs, annotate: allImages})
		}
	}
	return specs
}

// Annotation rows.
const (
	rowListing = "listing"
	rowReadAll = "read all"
	rowBudget  = "budget"
)

// annotatedRun is one annotation row: a fresh mount, its steps, and what
// the whole mount spent.
type annotatedRun struct {
	Row        string         `json:"row"`
	Dataset    string         `json:"dataset"`
	Images     int            `json:"images"`
	Annotated  int            `json:"annotated"`
	MountFlags []string       `json:"mount_flags,omitempty"`
	Steps      []step         `json:"steps"`
	Requests   requestCounts  `json:"api_requests"` // mount to exit
	RSS        int64          `json:"peak_rss_bytes"`
	Failed     map[string]int `json:"failed_reads,omitempty"`
	Err        string         `json:"error,omitempty"`
}

// step is one timed command on an annotation row's mount.
type step struct {
	Name     string        `json:"name"`
	Seconds  float64       `json:"seconds"`
	Requests requestCounts `json:"api_requests"`
	Detail   string        `json:"detail,omitempty"`
}

func (r *annotatedRun) step(name string) *step {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	return nil
}

// Step names.
const (
	stepLs       = "ls annotations/ (fresh mount)"
	stepLsL      = "ls -l annotations/ (after ls)"
	stepLsLAgain = "ls -l annotations/ again"
	stepLsLR     = "ls -lR (fresh mount)"
	stepReadAll  = "read every image and document"
	stepEpoch    = "DataLoader epoch"
)

func (h *harness) annotatedPhase(ctx context.Context) error {
	type row struct {
		name    string
		n       int
		dataset string
		fn      func(context.Context, *mounted, *annotatedRun, *reference) error
		flags   []string
	}
	rows := []row{
		{rowListing, h.cfg.annotatedListing, listingDataset(h.cfg.annotatedListing), h.listingRow, nil},
		{rowReadAll, h.cfg.annotatedImages, annotatedDataset(h.cfg.annotatedImages), h.readAllRow, nil},
		{rowBudget, h.cfg.budgetImages, annotatedDataset(h.cfg.budgetImages), h.budgetRow,
			[]string{"--requests-per-hour", strconv.Itoa(h.cfg.budgetPerHour)}},
	}
	for _, rw := range rows {
		if rw.n == 0 {
			continue
		}
		ref := h.refs[rw.dataset]
		run := &annotatedRun{Row: rw.name, Dataset: rw.dataset, Images: len(ref.files), Annotated: ref.annotated, MountFlags: rw.flags}
		h.logf("annotations: %s, %s (%d images, %d annotated)", rw.name, rw.dataset, run.Images, run.Annotated)
		err := h.annotatedRow(ctx, run, ref, rw.fn)
		h.res.Annotated = append(h.res.Annotated, run)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			run.Err = err.Error()
			h.fail("annotations: "+rw.name, err)
		}
	}
	return nil
}

// annotatedRow runs fn on a fresh mount with an empty cache and records
// what the mount spent.
func (h *harness) annotatedRow(ctx context.Context, run *annotatedRun, ref *reference,
	fn func(context.Context, *mounted, *annotatedRun, *reference) error) error {
	cache, err := freshDir(h.work, "cache-pictofs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	m, err := h.mountPictofs(ctx, cache, true, run.MountFlags...)
	if err != nil {
		return err
	}
	err = fn(ctx, m, run, ref)
	if uerr := m.unmount(); err == nil {
		err = uerr
	}
	run.Requests, run.RSS = m.requests, m.rss
	h.logf("  mount total: %s API requests, peak RSS %s", run.Requests, fmtBytes(run.RSS))
	return err
}

// timed runs fn as a step of run and records its time and the API
// requests made meanwhile.
func (h *harness) timed(run *annotatedRun, name string, fn func() (detail string, err error)) error {
	before := h.proxy.snapshot()
	start := time.Now()
	detail, err := fn()
	st := step{Name: name, Seconds: time.Since(start).Seconds(), Requests: h.proxy.snapshot().minus(before), Detail: detail}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	run.Steps = append(run.Steps, st)
	h.logf("  %-36s %-9s %s API requests; %s", name, fmtSeconds(st.Seconds), st.Requests, detail)
	return nil
}

// listingRow: `ls annotations/` of a fresh mount, then `ls -l` twice.
func (h *harness) listingRow(ctx context.Context, m *mounted, run *annotatedRun, ref *reference) error {
	dir := filepath.Join(m.dir, run.Dataset, "annotations")
	err := h.timed(run, stepLs, func() (string, error) {
		lines, err := runListing(ctx, h.cfg.timeout, "ls", dir)
		if err != nil {
			return "", err
		}
		n := 0
		for _, l := range lines {
			if strings.HasSuffix(l, ".json") {
				n++
			}
		}
		if n != len(ref.files) {
			return "", fmt.Errorf("listed %d documents, want %d", n, len(ref.files))
		}
		return fmt.Sprintf("%d names", n), nil
	})
	if err != nil {
		return err
	}
	for _, name := range []string{stepLsL, stepLsLAgain} {
		err := h.timed(run, name, func() (string, error) {
			lines, err := runListing(ctx, h.cfg.timeout, "ls", "-l", dir)
			if err != nil {
				return "", err
			}
			sizes, err := parseLsL(lines, dir)
			if err != nil {
				return "", err
			}
			return checkSizes(ref, sizes, "")
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// readAllRow: `ls -lR` of the dataset folder, then every image and document
// read by the plain reader.
func (h *harness) readAllRow(ctx context.Context, m *mounted, run *annotatedRun, ref *reference) error {
	root := filepath.Join(m.dir, run.Dataset)
	err := h.timed(run, stepLsLR, func() (string, error) {
		lines, err := runListing(ctx, h.cfg.timeout, "ls", "-lR", root)
		if err != nil {
			return "", err
		}
		sizes, err := parseLsL(lines, root)
		if err != nil {
			return "", err
		}
		if _, ok := sizes["dataset.json"]; !ok {
			return "", errors.New("no dataset.json")
		}
		delete(sizes, "dataset.json")
		return checkSizes(ref, sizes, "all")
	})
	if err != nil {
		return err
	}
	return h.timed(run, stepReadAll, func() (string, error) {
		rctx, cancel := context.WithTimeout(ctx, h.cfg.timeout)
		defer cancel()
		r, err := readTree(rctx, root, h.cfg.readers)
		if err != nil {
			return "", err
		}
		if err := ref.expected().check("read all", r); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d images and %d documents, %s, every byte as the API serves it (%d readers)",
			r.Images, r.Images, fmtBytes(r.Bytes), h.cfg.readers), nil
	})
}

// budgetRow: one DataLoader epoch on a mount with an hourly request budget;
// failed reads are counted, the others checked.
func (h *harness) budgetRow(ctx context.Context, m *mounted, run *annotatedRun, ref *reference) error {
	root := filepath.Join(m.dir, run.Dataset)
	return h.timed(run, stepEpoch, func() (string, error) {
		lr := h.loaderRun("loader-budget")
		lr.tolerateErrors = true
		lr.linesOut = filepath.Join(h.work, "budget-lines.txt")
		r, err := runLoader(ctx, lr, root)
		if err != nil {
			return "", err
		}
		if _, err := ref.checkLines("budget epoch", r.Lines); err != nil {
			return "", err
		}
		failed := 0
		for _, n := range r.Failed {
			failed += n
		}
		if r.Images+failed != len(ref.files) {
			return "", fmt.Errorf("read %d images and failed %d, want %d in all", r.Images, failed, len(ref.files))
		}
		run.Failed = r.Failed
		return fmt.Sprintf("%d images read right, %d failed %s; first batch %s", r.Images, failed, fmtFailed(r.Failed),
			fmtSeconds(r.FirstBatch)), nil
	})
}

func fmtFailed(f map[string]int) string {
	if len(f) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, f[k]))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// runListing runs a listing command with LC_ALL=C and returns its output
// lines.
func runListing(ctx context.Context, timeout time.Duration, args ...string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, clip(strings.TrimSpace(stderr.String()), 500))
	}
	var lines []string
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// parseLsL reads `ls -l` or `ls -lR` output (LC_ALL=C) of dir: the size of
// every regular file, keyed by its path relative to dir with "/".
func parseLsL(lines []string, dir string) (map[string]int64, error) {
	sizes := map[string]int64{}
	cur := ""
	for _, l := range lines {
		switch {
		case l == "" || strings.HasPrefix(l, "total "):
		case strings.HasSuffix(l, ":") && !strings.HasPrefix(l, "-"):
			rel, err := filepath.Rel(dir, strings.TrimSuffix(l, ":"))
			if err != nil || !filepath.IsLocal(rel) && rel != "." {
				return nil, fmt.Errorf("ls: folder %q is not under %s", l, dir)
			}
			cur = filepath.ToSlash(rel)
			if cur == "." {
				cur = ""
			}
		case strings.HasPrefix(l, "-"):
			f := strings.Fields(l)
			if len(f) < 9 {
				return nil, fmt.Errorf("ls: cannot read line %q", l)
			}
			size, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("ls: size of line %q: %w", l, err)
			}
			sizes[path.Join(cur, strings.Join(f[8:], " "))] = size
		}
	}
	return sizes, nil
}

// checkSizes compares listed sizes with the reference: scope "" is a
// listing of annotations/ itself, "all" one of the dataset folder
// (annotations/… and images/…). Every file must be there with its size, and
// nothing else.
func checkSizes(ref *reference, sizes map[string]int64, scope string) (string, error) {
	want := map[string]int64{}
	for rel, f := range ref.files {
		if scope == "" {
			want[rel+".json"] = f.docSize
			continue
		}
		want["annotations/"+rel+".json"] = f.docSize
		want["images/"+rel] = f.imageSize
	}
	var wrong []string
	for p, w := range want {
		if got, ok := sizes[p]; !ok || got != w {
			wrong = append(wrong, fmt.Sprintf("%s: listed %d (present %t), want %d", p, got, ok, w))
		}
	}
	for p := range sizes {
		if _, ok := want[p]; !ok {
			wrong = append(wrong, p+": not in the dataset")
		}
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return "", fmt.Errorf("%d of %d files listed with a wrong size or missing, e.g. %s", len(wrong), len(want), wrong[0])
	}
	return fmt.Sprintf("%d files, every size true", len(want)), nil
}
