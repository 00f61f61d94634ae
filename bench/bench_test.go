package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1}, 5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Errorf("median sorted its input: %v", in)
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i) // 100..1
	}
	tests := []struct {
		p    float64
		want float64
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}}
	for _, tt := range tests {
		if got := percentile(xs, tt.p); got != tt.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile([]float64{7}, 99); got != 7 {
		t.Errorf("percentile([7], 99) = %v, want 7", got)
	}
	for _, p := range []float64{0, 101} {
		if got := percentile(xs, p); !math.IsNaN(got) {
			t.Errorf("percentile(xs, %v) = %v, want NaN", p, got)
		}
	}
}

func TestRatio(t *testing.T) {
	if got := ratio(3, 2); got != 1.5 {
		t.Errorf("ratio(3, 2) = %v, want 1.5", got)
	}
	for _, c := range [][2]float64{{1, 0}, {1, -1}, {math.NaN(), 1}, {1, math.NaN()}} {
		if got := ratio(c[0], c[1]); !math.IsNaN(got) {
			t.Errorf("ratio(%v, %v) = %v, want NaN", c[0], c[1], got)
		}
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{fmtSeconds(0.00123), "1.23 ms"},
		{fmtSeconds(0.0456), "45.6 ms"},
		{fmtSeconds(0.789), "789 ms"},
		{fmtSeconds(1.234), "1.23 s"},
		{fmtSeconds(12.34), "12.3 s"},
		{fmtSeconds(123.4), "123 s"},
		{fmtSeconds(math.NaN()), "—"},
		{fmtRatio(1.234), "1.23×"},
		{fmtRatio(210.4), "210×"},
		{fmtRatio(math.NaN()), "—"},
		{fmtBytes(512), "512 B"},
		{fmtBytes(1536), "1.5 KiB"},
		{fmtBytes(22 << 20), "22.0 MiB"},
		{fmtBytes(-1), "—"},
		{fmtRate(200, 2), "100"},
		{fmtRate(5, 2), "2.5"},
		{fmtRate(5, 0), "—"},
		{fmtPercent(0.0312), "3.1 %"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestParseInts(t *testing.T) {
	got, err := parseInts("10000, 100000,")
	if err != nil || len(got) != 2 || got[0] != 10000 || got[1] != 100000 {
		t.Errorf("parseInts = %v, %v; want [10000 100000]", got, err)
	}
	if got, err := parseInts(""); err != nil || len(got) != 0 {
		t.Errorf("parseInts(\"\") = %v, %v; want none", got, err)
	}
	if _, err := parseInts("10,x"); err == nil {
		t.Error("parseInts(\"10,x\") succeeded, want an error")
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.images != 2000 || c.apiLatency != 50*time.Millisecond || c.storageLatency != 30*time.Millisecond ||
		c.storageBandwidth != 100_000_000 || c.runs != 3 || c.workers != 4 || c.downloadWorkers != 10 ||
		len(c.listSizes) != 2 || c.out != "bench/out/report.md" {
		t.Errorf("defaults = %+v", c)
	}
	for _, bad := range [][]string{{"--images", "0"}, {"--images", "20000"}, {"--runs", "0"}, {"--list-sizes", "a"}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", bad)
		}
	}
}

func TestTable(t *testing.T) {
	tb := &table{title: "T", header: []string{"system", "total"}, notes: []string{"a note"}}
	tb.add("local disk", "1.00 s")
	tb.add("pictofs | cold", "12.0 s")
	var text strings.Builder
	if err := tb.text(&text); err != nil {
		t.Fatal(err)
	}
	wantText := "T\n" +
		"system           total\n" +
		"--------------  ------\n" +
		"local disk      1.00 s\n" +
		"pictofs | cold  12.0 s\n" +
		"  a note\n\n"
	if text.String() != wantText {
		t.Errorf("text:\n%s\nwant:\n%s", text.String(), wantText)
	}
	var md strings.Builder
	if err := tb.markdown(&md); err != nil {
		t.Fatal(err)
	}
	wantMD := "### T\n\n" +
		"| system | total |\n" +
		"|---|---:|\n" +
		"| local disk | 1.00 s |\n" +
		`| pictofs \| cold | 12.0 s |` + "\n" +
		"\n- a note\n\n"
	if md.String() != wantMD {
		t.Errorf("markdown:\n%s\nwant:\n%s", md.String(), wantMD)
	}
}

func TestDigestMatchesWorkloadPy(t *testing.T) {
	// workload.py: sha256 of the sorted lines "<rel> <sha256 img> <sha256 ann>\n".
	a := digestLine("train/b.png", []byte("B"), []byte("{}"))
	b := digestLine("train/a.jpg", []byte("A"), []byte("{}"))
	if !strings.HasPrefix(b, "train/a.jpg 559aead08264d5795d3909718cdd05abd49572e84fe55590eef31a88a08fdffd ") {
		t.Errorf("digestLine = %q", b)
	}
	if digestOf([]string{a, b}) != digestOf([]string{b, a}) {
		t.Error("digest depends on the order of the lines")
	}
	exp := expected{images: 2, digest: digestOf([]string{a, b})}
	if err := exp.check("x", epochResult{Images: 2, Digest: exp.digest}); err != nil {
		t.Errorf("check of the right digest: %v", err)
	}
	if err := exp.check("x", epochResult{Images: 2, Digest: "0"}); err == nil || !strings.Contains(err.Error(), "wrong bytes") {
		t.Errorf("check of a wrong digest = %v, want wrong bytes", err)
	}
	if err := exp.check("x", epochResult{Images: 1, Digest: exp.digest}); err == nil {
		t.Error("check of a short count succeeded")
	}
}

func TestTargets(t *testing.T) {
	r := newResults()
	set := func(wl, sys string, first, total float64) {
		s := r.series(wl, sys)
		s.FirstBatch, s.Total = []float64{first}, []float64{total}
	}
	set(wlLoader, sysLocal, 1, 10)
	set(wlLoader, sysWarm, 1, 10.5)        // 1.05×: holds
	set(wlLoader, sysDownload, 40, 50)     // cold 45/50: holds
	set(wlLoader, sysCold, 3, 45)          // first 3/40 = 7.5 %: missed
	set(wlLoader, sysRcloneCold, 100, 200) // 4.4×: holds
	r.meta(targetListCount, sysPictofs, "ls -lR").Warm = []float64{1.5}
	r.MetaRSS["100000"] = []int64{150_000_000, 190_000_000}
	got := map[string]string{}
	for _, tg := range r.targets() {
		v := "not measured"
		if tg.holds != nil {
			v = map[bool]string{true: "yes", false: "NO"}[*tg.holds]
		}
		got[tg.name] = v
	}
	want := map[string]string{
		"DataLoader warm epoch ≤ 1.10× local disk":                     "yes",
		"DataLoader cold epoch total ≤ 1.0× download-first":            "yes",
		"DataLoader cold time to first batch ≤ 5% of download-first's": "NO",
		"DataLoader cold epoch ≥ 3× faster than rclone":                "yes",
		"DataLoader cold epoch ≥ 3× faster than s3fs":                  "not measured",
		"reader warm epoch ≤ 1.10× local disk":                         "not measured",
		"ls -l of 100000 images warm < 1 s":                            "NO",
		"daemon peak RSS ≤ 200 MB with 100000 images":                  "yes",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("target %q = %q, want %q", name, got[name], w)
		}
	}
}
