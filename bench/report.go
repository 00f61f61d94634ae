package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// epochRows is the order of the epoch tables.
var epochRows = []string{sysLocal, sysFloor, sysDownload, sysCold, sysEpoch2, sysWarm, sysWarmNoPT,
	sysRcloneCold, sysRcloneWarm, sysS3fsCold, sysS3fsWarm}

// Targets (issues 8, 9 and 14). None fails a run: each is reported as
// holding or not.
const (
	targetWarm         = 1.10        // DataLoader warm epoch (remount) ≤ 1.10 × local disk
	targetEpoch2       = 1.05        // DataLoader epoch 2 ≤ 1.05 × local disk
	targetFloor        = 1.15        // plain reader warm epoch ≤ 1.15 × the FUSE floor
	targetLsL          = 1.0         // ls -l of 100,000 images warm, seconds
	targetRSS          = 150 << 20   // daemon peak RSS with 100,000 images, bytes
	targetListCount    = 100_000     // the listing size the last two targets name
	targetCold         = 0.5         // DataLoader cold epoch ≤ 0.5 × download-first's total
	targetTTFB         = 0.05        // time to first batch ≤ 5 % of download-first's
	targetColdAPI      = 50          // API requests for mount + two DataLoader epochs
	targetColdImages   = 2000        // the epoch size the three cold targets name
	targetReadAllAPI   = 15_100      // mount + ls -lR + read all, API requests
	targetReadAllCount = 25_000      // its dataset's size
	targetBudgetCount  = 10_000      // images of the budget epoch
	targetBudgetHour   = 2000        // its --requests-per-hour
	targetLsTime       = 2.0         // ls annotations/ of a fresh mount, seconds
	targetLsAPI        = 10          // … and API requests
	targetLsLTime      = 10.0        // ls -l annotations/, seconds
	targetListingCount = 25_000      // the size the two listing targets name
	mb                 = 1_000_000.0 // MB/s in the tables
	rssUnknown         = int64(-1)   // no RSS measured
	// bypassShare is the largest share of an epoch's bytes the daemon may
	// read from disk for the reads to count as carried by passthrough (its
	// lookups still read inodes and folders).
	bypassShare = 0.5
)

// sizes are the dataset sizes of a run, for judging targets named at a size.
type sizes struct {
	Images           int `json:"images"`
	AnnotatedImages  int `json:"annotated_images"`
	AnnotatedListing int `json:"annotated_listing"`
	BudgetImages     int `json:"budget_images"`
	BudgetPerHour    int `json:"budget_requests_per_hour"`
}

func (s *series) medTotal() float64 {
	if s == nil {
		return math.NaN()
	}
	return median(s.Total)
}

func (s *series) medFirst() float64 {
	if s == nil {
		return math.NaN()
	}
	return median(s.FirstBatch)
}

func maxInt64(xs []int64) int64 {
	out := rssUnknown
	for _, x := range xs {
		out = max(out, x)
	}
	return out
}

func medianInt64(xs []int64) string {
	v := medianInt64f(xs)
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// medianInt64f is the median of the known (≥ 0) values, NaN for none.
func medianInt64f(xs []int64) float64 {
	var fs []float64
	for _, x := range xs {
		if x >= 0 {
			fs = append(fs, float64(x))
		}
	}
	return median(fs)
}

// epochTable is the table of one workload.
func (r *results) epochTable(wl string) *table {
	t := &table{title: "Epoch: " + wl}
	withFirst := wl == wlLoader
	t.header = []string{"system"}
	if withFirst {
		t.header = append(t.header, "first batch")
	}
	t.header = append(t.header, "total", "images/s", "MB/s", "runs", "requests", "daemon peak RSS")
	for _, sys := range epochRows {
		s := r.Epoch[wl][sys]
		if s == nil || len(s.Total) == 0 {
			continue
		}
		tot := s.medTotal()
		row := []string{sys}
		if withFirst {
			row = append(row, fmtSeconds(s.medFirst()))
		}
		row = append(row, fmtSeconds(tot), fmtRate(float64(s.Images), tot), fmtRate(float64(s.Bytes)/mb, tot),
			strconv.Itoa(len(s.Total)), medianInt64(s.API), fmtBytes(maxInt64(s.RSS)))
		t.add(row...)
	}
	t.notes = []string{
		"medians over runs; download-first rows include the download (listing + 10 parallel transfers) before the epoch from local disk",
		"pictofs cold = epoch 1 on an empty cache; epoch 2 = the same mount again; warm = a remount over that cache (passthrough on, then off)",
		"FUSE floor = " + floorDescription,
		"page cache dropped before local disk, the floor, epoch 2 and warm epochs; requests = API requests counted by the proxy " +
			"(pictofs: whole mount, both epochs; download-first: its own) or S3 requests (peers)",
	}
	return t
}

// ratioTable gives pictofs over each baseline, every figure from this run.
func (r *results) ratioTable() *table {
	t := &table{title: "Ratios: pictofs / baseline (lower is better for pictofs)",
		header: []string{"measure", "/ local disk", "/ FUSE floor", "/ download-first", "/ rclone", "/ s3fs"}}
	for _, wl := range []string{wlLoader, wlReader} {
		e := r.Epoch[wl]
		if e == nil {
			continue
		}
		cold := e[sysCold].medTotal()
		t.add(wl+" cold epoch total",
			fmtRatio(ratio(cold, e[sysLocal].medTotal())), "—", fmtRatio(ratio(cold, e[sysDownload].medTotal())),
			fmtRatio(ratio(cold, e[sysRcloneCold].medTotal())), fmtRatio(ratio(cold, e[sysS3fsCold].medTotal())))
		if wl == wlLoader {
			first := e[sysCold].medFirst()
			t.add(wl+" time to first batch",
				fmtRatio(ratio(first, e[sysLocal].medFirst())), "—", fmtRatio(ratio(first, e[sysDownload].medFirst())),
				fmtRatio(ratio(first, e[sysRcloneCold].medFirst())), fmtRatio(ratio(first, e[sysS3fsCold].medFirst())))
		}
		floor := e[sysFloor].medTotal()
		warm := e[sysWarm].medTotal()
		t.add(wl+" warm epoch (remount)",
			fmtRatio(ratio(warm, e[sysLocal].medTotal())), fmtRatio(ratio(warm, floor)), "—",
			fmtRatio(ratio(warm, e[sysRcloneWarm].medTotal())), fmtRatio(ratio(warm, e[sysS3fsWarm].medTotal())))
		e2 := e[sysEpoch2].medTotal()
		t.add(wl+" epoch 2 (same mount)",
			fmtRatio(ratio(e2, e[sysLocal].medTotal())), fmtRatio(ratio(e2, floor)), "—",
			fmtRatio(ratio(e2, e[sysRcloneWarm].medTotal())), fmtRatio(ratio(e2, e[sysS3fsWarm].medTotal())))
		t.add("FUSE floor "+wl+" (warm)", fmtRatio(ratio(floor, e[sysLocal].medTotal())), "1.00×", "—", "—", "—")
	}
	p50 := func(sys string) float64 { return percentile(r.Open[sys], 50) }
	if len(r.Open[sysPictofs]) > 0 {
		pf := p50(sysPictofs)
		t.add("open + 1-byte read p50 (cold)", fmtRatio(ratio(pf, p50(sysLocal))), "—", "—",
			fmtRatio(ratio(pf, p50(sysRclone))), fmtRatio(ratio(pf, p50(sysS3fs))))
	}
	return t
}

// passthroughTable shows, for the warm reads of FUSE file systems, whether
// the kernel offered passthrough and whether it carried the reads.
func (r *results) passthroughTable() *table {
	t := &table{title: "Passthrough check (warm reads, page cache dropped)",
		header: []string{"system", "workload", "kernel offered passthrough", "bytes read", "daemon disk reads", "share", "reads carried by"}}
	for _, sys := range []string{sysFloor, sysEpoch2, sysWarm, sysWarmNoPT} {
		for _, wl := range []string{wlLoader, wlReader} {
			s := r.Epoch[wl][sys]
			if s == nil || len(s.DaemonRead) == 0 {
				continue
			}
			offered := "—"
			if len(s.Granted) > 0 {
				offered = "yes"
				if slices.Contains(s.Granted, false) {
					offered = fmt.Sprintf("no (%d of %d mounts)", countFalse(s.Granted), len(s.Granted))
				}
			}
			read := medianInt64f(s.DaemonRead)
			t.add(sys, wl, offered, fmtBytes(s.Bytes), fmtBytes(int64OrUnknown(read)), fmtPercent(ratio(read, float64(s.Bytes))),
				carriedBy(read, s.Bytes))
		}
	}
	t.notes = []string{
		"kernel offered = the daemon's log line passthrough=… (the FUSE INIT flags); daemon disk reads = read_bytes of /proc/PID/io " +
			"during the epoch (median): with passthrough the kernel reads the backing files in the reader's context, so the daemon reads ~0",
		fmt.Sprintf("carried by the kernel (passthrough) when the daemon read under %.0f %% of the bytes from disk: a daemon that serves the reads "+
			"reads all of them (and more: readahead), one that does not still reads metadata for its lookups", bypassShare*100),
	}
	return t
}

func countFalse(bs []bool) int {
	n := 0
	for _, b := range bs {
		if !b {
			n++
		}
	}
	return n
}

func int64OrUnknown(v float64) int64 {
	if math.IsNaN(v) {
		return rssUnknown
	}
	return int64(v)
}

func carriedBy(daemonRead float64, bytes int64) string {
	switch {
	case math.IsNaN(daemonRead) || bytes <= 0:
		return "unknown"
	case daemonRead < bypassShare*float64(bytes):
		return "kernel (passthrough)"
	default:
		return "daemon"
	}
}

func (r *results) openTable() *table {
	t := &table{title: "Open + 1-byte read of cold files (directories already looked up)",
		header: []string{"system", "p50", "p99", "samples"}}
	for _, sys := range []string{sysLocal, sysPictofs, sysRclone, sysS3fs} {
		xs := r.Open[sys]
		if len(xs) == 0 {
			continue
		}
		t.add(sys, fmtSeconds(percentile(xs, 50)), fmtSeconds(percentile(xs, 99)), strconv.Itoa(len(xs)))
	}
	t.notes = []string{"local disk after dropping the page cache; pictofs, rclone and s3fs on a fresh mount with an empty cache, files never listed"}
	return t
}

func (r *results) metaTables() []*table {
	var ns []int
	for k := range r.Meta {
		n, _ := strconv.Atoi(k)
		ns = append(ns, n)
	}
	slices.Sort(ns)
	var out []*table
	for _, n := range ns {
		k := strconv.Itoa(n)
		t := &table{title: fmt.Sprintf("Listing %d images (images/ of the dataset)", n),
			header: []string{"command", "local cold", "local warm", "pictofs cold", "pictofs warm", "pictofs/local warm", "runs"}}
		for _, c := range metaCmds {
			l, p := r.Meta[k][sysLocal][c.name], r.Meta[k][sysPictofs][c.name]
			lc, lw, pc, pw := metaMed(l, true), metaMed(l, false), metaMed(p, true), metaMed(p, false)
			runs := 0
			if p != nil {
				runs = len(p.Cold)
			}
			t.add(c.name, fmtSeconds(lc), fmtSeconds(lw), fmtSeconds(pc), fmtSeconds(pw), fmtRatio(ratio(pw, lw)), strconv.Itoa(runs))
		}
		t.notes = []string{
			fmt.Sprintf("pictofs daemon peak RSS (VmHWM) over these mounts: %s; API requests per mount (median): %s",
				fmtBytes(maxInt64(r.MetaRSS[k])), medianInt64(r.MetaAPI[k])),
			"local: empty files of the listed sizes, page cache dropped for cold; pictofs cold: a fresh mount and empty cache per command (its directory prefetch starts in the background)",
		}
		out = append(out, t)
	}
	return out
}

func metaMed(m *metaSeries, cold bool) float64 {
	if m == nil {
		return math.NaN()
	}
	if cold {
		return median(m.Cold)
	}
	return median(m.Warm)
}

// annotatedRun returns the annotation row of that name, nil if not run.
func (r *results) annotatedRun(row string) *annotatedRun {
	for _, a := range r.Annotated {
		if a.Row == row {
			return a
		}
	}
	return nil
}

// annotatedTable shows the annotation rows step by step.
func (r *results) annotatedTable() *table {
	t := &table{title: "Annotations at scale (fresh mount and cache per row, run once)",
		header: []string{"row", "step", "time", "API requests", "what was checked"}}
	for _, a := range r.Annotated {
		name := fmt.Sprintf("%s: %d images, %d annotated", a.Row, a.Images, a.Annotated)
		if len(a.MountFlags) > 0 {
			name += ", mount " + strings.Join(a.MountFlags, " ")
		}
		for _, st := range a.Steps {
			t.add(name, st.Name, fmtSeconds(st.Seconds), st.Requests.String(), st.Detail)
			name = ""
		}
		total := "whole mount (mount to exit)"
		if a.Err != "" {
			total += ": FAILED: " + clip(a.Err, 200)
		}
		t.add(name, total, "", a.Requests.String(), "daemon peak RSS "+fmtBytes(a.RSS))
	}
	t.notes = []string{
		"listing (issue 14): one folder, two thirds of the images annotated; read all and budget (issue 8): every image annotated, 10 folders",
		"every listed size and every byte read is compared with the API's per-image routes (byte route and /annotations/{id}/file, re-indented as the SDK writes)",
		"budget: reads that fail are counted by errno instead of stopping the epoch; the others are checked",
	}
	return t
}

// target is one of the issues' targets, evaluated.
type target struct {
	name, measured string
	holds          *bool // nil: not measured or not judged
}

func verdict(v float64, ok func(float64) bool) *bool {
	if math.IsNaN(v) {
		return nil
	}
	b := ok(v)
	return &b
}

// atSize says why a target named at want is not judged at got.
func atSize(got, want int, what string) string {
	return fmt.Sprintf("; not judged: measured at %d %s, the target names %d", got, what, want)
}

func (r *results) targets() []target {
	var ts []target
	e := r.Epoch[wlLoader]
	local, floor := e[sysLocal].medTotal(), e[sysFloor].medTotal()
	vsBoth := func(v float64) string {
		return fmt.Sprintf("%s local disk (%s vs %s); %s the FUSE floor (%s)", fmtRatio(ratio(v, local)), fmtSeconds(v),
			fmtSeconds(local), fmtRatio(ratio(v, floor)), fmtSeconds(floor))
	}
	warm := e[sysWarm].medTotal()
	ts = append(ts, target{fmt.Sprintf("DataLoader warm epoch (remount) ≤ %.2f× local disk", targetWarm), vsBoth(warm),
		verdict(ratio(warm, local), func(v float64) bool { return v <= targetWarm })})
	e2 := e[sysEpoch2].medTotal()
	ts = append(ts, target{fmt.Sprintf("DataLoader epoch 2 (same mount) ≤ %.2f× local disk", targetEpoch2), vsBoth(e2),
		verdict(ratio(e2, local), func(v float64) bool { return v <= targetEpoch2 })})
	re := r.Epoch[wlReader]
	rw, rf, rl := re[sysWarm].medTotal(), re[sysFloor].medTotal(), re[sysLocal].medTotal()
	ts = append(ts, target{fmt.Sprintf("plain reader warm epoch (remount) ≤ %.2f× the FUSE floor", targetFloor),
		fmt.Sprintf("%s the floor (%s vs %s); %s local disk (%s)", fmtRatio(ratio(rw, rf)), fmtSeconds(rw), fmtSeconds(rf),
			fmtRatio(ratio(rw, rl)), fmtSeconds(rl)),
		verdict(ratio(rw, rf), func(v float64) bool { return v <= targetFloor })})

	k := strconv.Itoa(targetListCount)
	lsl := metaMed(r.Meta[k][sysPictofs]["ls -lR"], false)
	ts = append(ts, target{fmt.Sprintf("ls -l of %d images warm < %.0f s", targetListCount, targetLsL), fmtSeconds(lsl),
		verdict(lsl, func(v float64) bool { return v < targetLsL })})
	rss, measured := float64(maxInt64(r.MetaRSS[k])), "—"
	if rss < 0 {
		rss = math.NaN()
	} else {
		measured = fmtBytes(int64(rss))
	}
	ts = append(ts, target{fmt.Sprintf("daemon peak RSS with %d images ≤ %s", targetListCount, fmtBytes(targetRSS)),
		measured, verdict(rss, func(v float64) bool { return v <= targetRSS })})

	// Cold, at the epoch size the targets name.
	judged := r.Sizes.Images == targetColdImages
	gate := func(b *bool) *bool {
		if !judged {
			return nil
		}
		return b
	}
	suffix := ""
	if !judged {
		suffix = atSize(r.Sizes.Images, targetColdImages, "images")
	}
	cold, dl := e[sysCold].medTotal(), e[sysDownload].medTotal()
	ts = append(ts, target{fmt.Sprintf("DataLoader cold epoch (%d annotated images) ≤ %.1f× download-first's total", targetColdImages, targetCold),
		fmt.Sprintf("%s (%s vs %s)%s", fmtRatio(ratio(cold, dl)), fmtSeconds(cold), fmtSeconds(dl), suffix),
		gate(verdict(ratio(cold, dl), func(v float64) bool { return v <= targetCold }))})
	first := ratio(e[sysCold].medFirst(), e[sysDownload].medFirst())
	ts = append(ts, target{fmt.Sprintf("DataLoader cold time to first batch ≤ %.0f %% of download-first's", targetTTFB*100),
		fmt.Sprintf("%s (%s vs %s)%s", fmtPercent(first), fmtSeconds(e[sysCold].medFirst()), fmtSeconds(e[sysDownload].medFirst()), suffix),
		gate(verdict(first, func(v float64) bool { return v <= targetTTFB }))})
	api := math.NaN()
	if s := e[sysCold]; s != nil {
		api = medianInt64f(s.API)
	}
	ts = append(ts, target{fmt.Sprintf("API requests for mount + two DataLoader epochs ≤ %d", targetColdAPI),
		fmtCount(api) + suffix, gate(verdict(api, func(v float64) bool { return v <= targetColdAPI }))})

	ts = append(ts, r.annotatedTargets()...)
	return ts
}

// annotatedTargets are the targets of the annotation rows.
func (r *results) annotatedTargets() []target {
	var ts []target
	ra := r.annotatedRun(rowReadAll)
	name := fmt.Sprintf("%d annotated images: mount + ls -lR + reading every image and document ≤ %d API requests", targetReadAllCount, targetReadAllAPI)
	switch {
	case ra == nil || ra.Err != "":
		ts = append(ts, target{name, "—", nil})
	default:
		v := float64(ra.Requests.total())
		t := target{name, ra.Requests.String(), verdict(v, func(v float64) bool { return v <= targetReadAllAPI })}
		if ra.Images != targetReadAllCount {
			t.measured += atSize(ra.Images, targetReadAllCount, "images")
			t.holds = nil
		}
		ts = append(ts, t)
	}
	b := r.annotatedRun(rowBudget)
	name = fmt.Sprintf("DataLoader epoch over %d annotated images with --requests-per-hour %d: no failed read (EAGAIN)", targetBudgetCount, targetBudgetHour)
	switch {
	case b == nil || b.Err != "" || len(b.Steps) == 0:
		ts = append(ts, target{name, "—", nil})
	default:
		failed := 0
		for _, n := range b.Failed {
			failed += n
		}
		st := b.Steps[0]
		t := target{name, fmt.Sprintf("%d failed %s in %s, %s API requests", failed, fmtFailed(b.Failed), fmtSeconds(st.Seconds), b.Requests.String()),
			verdict(float64(failed), func(v float64) bool { return v == 0 })}
		if b.Images != targetBudgetCount || r.Sizes.BudgetPerHour != targetBudgetHour {
			t.measured += fmt.Sprintf("; not judged: measured at %d images and %d requests per hour", b.Images, r.Sizes.BudgetPerHour)
			t.holds = nil
		}
		ts = append(ts, t)
	}
	l := r.annotatedRun(rowListing)
	var ls, lsl *step
	if l != nil {
		ls, lsl = l.step(stepLs), l.step(stepLsL)
	}
	name = fmt.Sprintf("ls annotations/ of a fresh mount (%d images, two thirds annotated) ≤ %.0f s and ≤ %d API requests", targetListingCount, targetLsTime, targetLsAPI)
	if ls == nil {
		ts = append(ts, target{name, "—", nil})
	} else {
		t := target{name, fmt.Sprintf("%s, %s API requests", fmtSeconds(ls.Seconds), ls.Requests),
			verdict(ls.Seconds, func(v float64) bool { return v <= targetLsTime && ls.Requests.total() <= targetLsAPI })}
		if l.Images != targetListingCount {
			t.measured += atSize(l.Images, targetListingCount, "images")
			t.holds = nil
		}
		ts = append(ts, t)
	}
	name = fmt.Sprintf("ls -l annotations/ of it ≤ %.0f s", targetLsLTime)
	if lsl == nil {
		ts = append(ts, target{name, "—", nil})
	} else {
		t := target{name, fmt.Sprintf("%s, %s API requests", fmtSeconds(lsl.Seconds), lsl.Requests),
			verdict(lsl.Seconds, func(v float64) bool { return v <= targetLsLTime })}
		if l.Images != targetListingCount {
			t.measured += atSize(l.Images, targetListingCount, "images")
			t.holds = nil
		}
		ts = append(ts, t)
	}
	return ts
}

func fmtCount(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func fmtPercent(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(v*100, 'f', 1, 64) + " %"
}

func holdsText(h *bool, measured string) string {
	switch {
	case h != nil && *h:
		return "holds"
	case h != nil:
		return "does not hold"
	case strings.Contains(measured, "not judged"):
		return "not judged"
	default:
		return "not measured"
	}
}

func (r *results) targetTable() *table {
	t := &table{title: "Targets", header: []string{"target", "measured", "verdict"}}
	for _, tg := range r.targets() {
		t.add(tg.name, tg.measured, holdsText(tg.holds, tg.measured))
	}
	t.notes = []string{"targets are reported, never asserted: a run that misses them still succeeds"}
	return t
}

func (r *results) tables() []*table {
	var ts []*table
	for _, wl := range []string{wlLoader, wlReader} {
		if len(r.Epoch[wl]) > 0 {
			ts = append(ts, r.epochTable(wl))
		}
	}
	if len(r.Epoch) > 0 {
		ts = append(ts, r.ratioTable(), r.passthroughTable())
	}
	if len(r.Open) > 0 {
		ts = append(ts, r.openTable())
	}
	ts = append(ts, r.metaTables()...)
	if len(r.Annotated) > 0 {
		ts = append(ts, r.annotatedTable())
	}
	return append(ts, r.targetTable())
}

// passthroughSummary says in words whether passthrough was offered and
// carried the warm reads of pictofs and of the floor.
func (r *results) passthroughSummary() string {
	var parts []string
	for _, sys := range []string{sysWarm, sysFloor} {
		s := r.Epoch[wlReader][sys]
		if s == nil || len(s.DaemonRead) == 0 {
			continue
		}
		offered := "not logged"
		if len(s.Granted) > 0 {
			offered = "offered"
			if slices.Contains(s.Granted, false) {
				offered = "NOT offered"
			}
		}
		read := medianInt64f(s.DaemonRead)
		parts = append(parts, fmt.Sprintf("%s: %s by the kernel, warm reads carried by the %s (the daemon read %s of the bytes from disk)",
			sys, offered, strings.TrimSuffix(carriedBy(read, s.Bytes), " (passthrough)"), fmtPercent(ratio(read, float64(s.Bytes)))))
	}
	if len(parts) == 0 {
		return "not measured"
	}
	return strings.Join(parts, "; ")
}

// provenanceLines are the report's provenance, one "- key: value" each;
// the source hash line is what --check-figures reads.
func (r *results) provenanceLines() []string {
	p := r.Provenance
	commit := p.Git.Commit
	if commit == "" {
		commit = "unknown"
	}
	return []string{
		fmt.Sprintf("commit: `%s` (%s)", commit, p.Git.Subject),
		"tree: " + p.Git.treeState(),
		fmt.Sprintf("source hash: `%s` (SHA-256 over %d files: go.mod, go.sum, examples/pytorch_loader.py and every non-test .go file outside bench/, test/ and testdata/; `go run ./bench --source-hash`)",
			p.SourceHash, p.SourceFiles),
		"go: " + p.Go,
		"kernel: " + p.Kernel,
		"FUSE passthrough: " + r.passthroughSummary(),
		"work directory (local disk, caches, mounts): " + p.WorkFS.String(),
		"devserver data directory: " + p.DataFS.String(),
		fmt.Sprintf("CPUs: %d; memory: %s; load average (1, 5, 15 min) at start %s, at end %s", p.CPUs, p.Memory, p.LoadStart, p.LoadEnd),
		fmt.Sprintf("started %s, ended %s (took %s)", r.Started.UTC().Format(time.RFC3339), p.Ended.UTC().Format(time.RFC3339),
			p.Ended.Sub(r.Started).Round(time.Second)),
		"command: `" + p.Command + "`",
		"flags (every one, defaults included): `" + strings.Join(p.Flags, " ") + "`",
	}
}

// summary is the block the README shows (go run ./bench --write-readme).
func (r *results) summary() (string, error) {
	p := r.Provenance
	var b strings.Builder
	commit := p.Git.Commit
	tree := "clean tree"
	switch {
	case p.Git.Err != "":
		tree = "tree state unknown"
	case len(p.Git.SourceChanged) > 0:
		tree = "product source DIFFERS from the commit"
	case len(p.Git.Changed) > 0:
		tree = "product source clean"
	}
	fmt.Fprintf(&b, "Measured at commit `%s` (%s; source hash `%s`) on %s: Linux %s, %d CPUs (load %s at start, %s at end), "+
		"work directory on %s; FUSE passthrough: %s. Command: `%s`. Full report, every flag and the provenance: `bench/RESULTS.md`.\n\n",
		short(commit), tree, short(p.SourceHash), r.Started.UTC().Format("2006-01-02"), firstWord(p.Kernel), p.CPUs,
		p.LoadStart, p.LoadEnd, p.WorkFS.Type, r.passthroughSummary(), p.Command)
	e := r.Epoch[wlLoader]
	if len(e) > 0 {
		t := &table{header: []string{fmt.Sprintf("DataLoader epoch, %d images", r.Sizes.Images), "first batch", "total", "API requests"}}
		for _, sys := range []string{sysLocal, sysFloor, sysDownload, sysCold, sysEpoch2, sysWarm, sysRcloneCold, sysS3fsCold} {
			s := e[sys]
			if s == nil || len(s.Total) == 0 {
				continue
			}
			t.add(sys, fmtSeconds(s.medFirst()), fmtSeconds(s.medTotal()), medianInt64(s.API))
		}
		if err := t.markdown(&b); err != nil {
			return "", err
		}
	}
	if re := r.Epoch[wlReader]; len(re) > 0 {
		var parts []string
		for _, sys := range []string{sysLocal, sysFloor, sysDownload, sysCold, sysWarm, sysRcloneCold, sysS3fsCold} {
			if s := re[sys]; s != nil && len(s.Total) > 0 {
				parts = append(parts, sys+" "+fmtSeconds(s.medTotal()))
			}
		}
		fmt.Fprintf(&b, "Plain reader (%s): %s.\n\n", r.Setup["reader"], strings.Join(parts, ", "))
	}
	if len(r.Annotated) > 0 {
		if err := r.annotatedTable().markdown(&b); err != nil {
			return "", err
		}
	}
	if err := r.targetTable().markdown(&b); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()) + "\n", nil
}

func firstWord(s string) string {
	f, _, _ := strings.Cut(s, " ")
	return f
}

// markdownReport is the whole report: provenance, summary (between the
// markers the README is generated from), setup, tables, notes, failures.
func (r *results) markdownReport() (string, error) {
	var b strings.Builder
	b.WriteString("# pictofs benchmark\n\n")
	b.WriteString("## Provenance\n\n")
	for _, l := range r.provenanceLines() {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	summary, err := r.summary()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "\n## Summary\n\n%s\n%s%s\n\n", summaryBegin, summary, summaryEnd)
	keys := make([]string, 0, len(r.Setup))
	for k := range r.Setup {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteString("## Setup\n\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "- %s: %s\n", k, r.Setup[k])
	}
	b.WriteString("\n## Results\n\n")
	for _, t := range r.tables() {
		if err := t.markdown(&b); err != nil {
			return "", err
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	if len(r.Failures) > 0 {
		b.WriteString("## Failures\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// writeReport prints the tables to w and writes the Markdown report and
// the JSON results beside it.
func (h *harness) writeReport(w io.Writer) error {
	r := h.res
	for _, l := range r.provenanceLines() {
		fmt.Fprintf(w, "%s\n", l)
	}
	fmt.Fprintln(w)
	for _, t := range r.tables() {
		if err := t.text(w); err != nil {
			return err
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAILED: %s\n", f)
	}
	if err := os.MkdirAll(filepath.Dir(h.cfg.out), 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	md, err := r.markdownReport()
	if err != nil {
		return err
	}
	if err := os.WriteFile(h.cfg.out, []byte(md), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	jsonPath := strings.TrimSuffix(h.cfg.out, filepath.Ext(h.cfg.out)) + ".json"
	if err := os.WriteFile(jsonPath, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	fmt.Fprintf(w, "report: %s (results: %s, logs: %s)\n", h.cfg.out, jsonPath, h.logs)
	return nil
}
