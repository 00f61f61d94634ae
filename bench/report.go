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
var epochRows = []string{sysLocal, sysDownload, sysCold, sysEpoch2, sysWarm, sysWarmNoPT,
	sysRcloneCold, sysRcloneWarm, sysS3fsCold, sysS3fsWarm}

// Targets of the issue.
const (
	targetWarm      = 1.10        // warm epoch ≤ 1.10 × local disk
	targetCold      = 1.0         // cold epoch total ≤ 1.0 × download-first
	targetTTFB      = 0.05        // time to first batch ≤ 5 % of download-first's
	targetPeers     = 3.0         // cold epoch ≥ 3× faster than rclone and s3fs
	targetLsL       = 1.0         // ls -l of 100,000 images warm, seconds
	targetRSS       = 200_000_000 // peak daemon RSS with 100,000 images, bytes
	targetListCount = 100_000     // the listing size the last two targets name
	mb              = 1_000_000.0 // MB/s in the tables
	rssUnknown      = int64(-1)   // no RSS measured
)

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
	var fs []float64
	for _, x := range xs {
		if x >= 0 {
			fs = append(fs, float64(x))
		}
	}
	if len(fs) == 0 {
		return "—"
	}
	return strconv.FormatFloat(median(fs), 'f', 0, 64)
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
		"page cache dropped before local disk, epoch 2 and warm epochs; requests = API requests (pictofs: whole mount, both epochs; download-first: its own) or S3 requests (peers)",
	}
	return t
}

// ratioTable gives pictofs over each baseline, every figure from this run.
func (r *results) ratioTable() *table {
	t := &table{title: "Ratios: pictofs / baseline (lower is better for pictofs)",
		header: []string{"measure", "/ local disk", "/ download-first", "/ rclone", "/ s3fs"}}
	for _, wl := range []string{wlLoader, wlReader} {
		e := r.Epoch[wl]
		if e == nil {
			continue
		}
		cold := e[sysCold].medTotal()
		t.add(wl+" cold epoch total",
			fmtRatio(ratio(cold, e[sysLocal].medTotal())), fmtRatio(ratio(cold, e[sysDownload].medTotal())),
			fmtRatio(ratio(cold, e[sysRcloneCold].medTotal())), fmtRatio(ratio(cold, e[sysS3fsCold].medTotal())))
		if wl == wlLoader {
			first := e[sysCold].medFirst()
			t.add(wl+" time to first batch",
				fmtRatio(ratio(first, e[sysLocal].medFirst())), fmtRatio(ratio(first, e[sysDownload].medFirst())),
				fmtRatio(ratio(first, e[sysRcloneCold].medFirst())), fmtRatio(ratio(first, e[sysS3fsCold].medFirst())))
		}
		warm := e[sysWarm].medTotal()
		t.add(wl+" warm epoch (remount)",
			fmtRatio(ratio(warm, e[sysLocal].medTotal())), "—",
			fmtRatio(ratio(warm, e[sysRcloneWarm].medTotal())), fmtRatio(ratio(warm, e[sysS3fsWarm].medTotal())))
		e2 := e[sysEpoch2].medTotal()
		t.add(wl+" epoch 2 (same mount)",
			fmtRatio(ratio(e2, e[sysLocal].medTotal())), "—",
			fmtRatio(ratio(e2, e[sysRcloneWarm].medTotal())), fmtRatio(ratio(e2, e[sysS3fsWarm].medTotal())))
	}
	p50 := func(sys string) float64 { return percentile(r.Open[sys], 50) }
	if len(r.Open[sysPictofs]) > 0 {
		pf := p50(sysPictofs)
		t.add("open + 1-byte read p50 (cold)", fmtRatio(ratio(pf, p50(sysLocal))), "—",
			fmtRatio(ratio(pf, p50(sysRclone))), fmtRatio(ratio(pf, p50(sysS3fs))))
	}
	return t
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
	var sizes []int
	for k := range r.Meta {
		n, _ := strconv.Atoi(k)
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	var out []*table
	for _, n := range sizes {
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

// target is one of the targets, evaluated.
type target struct {
	name, measured string
	holds          *bool // nil: not measured
}

func verdict(v float64, ok func(float64) bool) *bool {
	if math.IsNaN(v) {
		return nil
	}
	b := ok(v)
	return &b
}

func (r *results) targets() []target {
	var ts []target
	for _, wl := range []string{wlLoader, wlReader} {
		e := r.Epoch[wl]
		warm := ratio(e[sysWarm].medTotal(), e[sysLocal].medTotal())
		ts = append(ts, target{fmt.Sprintf("%s warm epoch ≤ %.2f× local disk", wl, targetWarm),
			fmtRatio(warm) + " (" + fmtSeconds(e[sysWarm].medTotal()) + " vs " + fmtSeconds(e[sysLocal].medTotal()) + ")",
			verdict(warm, func(v float64) bool { return v <= targetWarm })})
		cold := ratio(e[sysCold].medTotal(), e[sysDownload].medTotal())
		ts = append(ts, target{fmt.Sprintf("%s cold epoch total ≤ %.1f× download-first", wl, targetCold),
			fmtRatio(cold) + " (" + fmtSeconds(e[sysCold].medTotal()) + " vs " + fmtSeconds(e[sysDownload].medTotal()) + ")",
			verdict(cold, func(v float64) bool { return v <= targetCold })})
		if wl == wlLoader {
			first := ratio(e[sysCold].medFirst(), e[sysDownload].medFirst())
			ts = append(ts, target{fmt.Sprintf("%s cold time to first batch ≤ %.0f%% of download-first's", wl, targetTTFB*100),
				fmt.Sprintf("%s (%s vs %s)", fmtPercent(first), fmtSeconds(e[sysCold].medFirst()), fmtSeconds(e[sysDownload].medFirst())),
				verdict(first, func(v float64) bool { return v <= targetTTFB })})
		}
		for _, peer := range []string{sysRcloneCold, sysS3fsCold} {
			speedup := ratio(e[peer].medTotal(), e[sysCold].medTotal())
			ts = append(ts, target{fmt.Sprintf("%s cold epoch ≥ %.0f× faster than %s", wl, targetPeers, strings.TrimSuffix(peer, " cold")),
				fmtRatio(speedup) + " (" + fmtSeconds(e[sysCold].medTotal()) + " vs " + fmtSeconds(e[peer].medTotal()) + ")",
				verdict(speedup, func(v float64) bool { return v >= targetPeers })})
		}
	}
	k := strconv.Itoa(targetListCount)
	lsl := metaMed(r.Meta[k][sysPictofs]["ls -lR"], false)
	ts = append(ts, target{fmt.Sprintf("ls -l of %d images warm < %.0f s", targetListCount, targetLsL), fmtSeconds(lsl),
		verdict(lsl, func(v float64) bool { return v < targetLsL })})
	rss, measured := float64(maxInt64(r.MetaRSS[k])), "—"
	if rss < 0 {
		rss = math.NaN()
	} else {
		measured = fmt.Sprintf("%.0f MB (%s)", rss/mb, fmtBytes(int64(rss)))
	}
	ts = append(ts, target{fmt.Sprintf("daemon peak RSS ≤ %.0f MB with %d images", targetRSS/mb, targetListCount),
		measured, verdict(rss, func(v float64) bool { return v <= targetRSS })})
	return ts
}

func fmtPercent(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return strconv.FormatFloat(v*100, 'f', 1, 64) + " %"
}

func (r *results) targetTable() *table {
	t := &table{title: "Targets", header: []string{"target", "measured", "holds"}}
	for _, tg := range r.targets() {
		h := "not measured"
		if tg.holds != nil {
			h = map[bool]string{true: "yes", false: "NO"}[*tg.holds]
		}
		t.add(tg.name, tg.measured, h)
	}
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
		ts = append(ts, r.ratioTable())
	}
	if len(r.Open) > 0 {
		ts = append(ts, r.openTable())
	}
	ts = append(ts, r.metaTables()...)
	return append(ts, r.targetTable())
}

// writeReport prints the tables to w and writes the Markdown report and
// the JSON results beside it.
func (h *harness) writeReport(w io.Writer) error {
	r := h.res
	ts := r.tables()
	for _, t := range ts {
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
	var b strings.Builder
	fmt.Fprintf(&b, "# pictofs benchmark\n\n")
	fmt.Fprintf(&b, "Run %s, took %s. Command: `go run ./bench %s`\n\n", r.Started.Format(time.RFC3339),
		time.Since(r.Started).Round(time.Second), strings.Join(os.Args[1:], " "))
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
	for _, t := range ts {
		if err := t.markdown(&b); err != nil {
			return err
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
	if err := os.WriteFile(h.cfg.out, []byte(b.String()), 0o644); err != nil {
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
