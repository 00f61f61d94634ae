package main

import (
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pictofs/pictofs/devserver"
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
	r.Sizes = sizes{Images: 2000, BudgetPerHour: 2000}
	set := func(wl, sys string, first, total float64) *series {
		s := r.series(wl, sys)
		s.FirstBatch, s.Total = []float64{first}, []float64{total}
		return s
	}
	set(wlLoader, sysLocal, 1, 10)
	set(wlLoader, sysFloor, 1, 9)
	set(wlLoader, sysWarm, 1, 10.5)                       // 1.05× local: holds
	set(wlLoader, sysEpoch2, 1, 10.6)                     // 1.06× local: misses 1.05
	set(wlLoader, sysDownload, 40, 50)                    // download-first
	set(wlLoader, sysCold, 1.9, 24).API = []int64{12, 60} // 0.48×, 4.75 %, median 36 requests: all hold
	set(wlReader, sysFloor, 0, 1.0)
	set(wlReader, sysWarm, 0, 1.2) // 1.2× the floor: misses 1.15
	r.meta(targetListCount, sysPictofs, "ls -lR").Warm = []float64{1.5}
	r.MetaRSS["100000"] = []int64{100 << 20, 140 << 20}
	r.Annotated = []*annotatedRun{
		{Row: rowReadAll, Images: 25000, Requests: requestCounts{"annotation": 100, "image bytes": 15000}},
		{Row: rowBudget, Images: 10000, Steps: []step{{Name: stepEpoch, Seconds: 30}}, Failed: map[string]int{"EAGAIN": 3}},
		{Row: rowListing, Images: 300, Steps: []step{{Name: stepLs, Seconds: 0.1, Requests: requestCounts{"listing": 2}},
			{Name: stepLsL, Seconds: 0.2}}},
	}
	got := map[string]string{}
	for _, tg := range r.targets() {
		got[tg.name] = holdsText(tg.holds, tg.measured)
	}
	want := map[string]string{
		"DataLoader warm epoch (remount) ≤ 1.10× local disk":                                                  "holds",
		"DataLoader epoch 2 (same mount) ≤ 1.05× local disk":                                                  "does not hold",
		"plain reader warm epoch (remount) ≤ 1.15× the FUSE floor":                                            "does not hold",
		"ls -l of 100000 images warm < 1 s":                                                                   "does not hold",
		"daemon peak RSS with 100000 images ≤ 150.0 MiB":                                                      "holds",
		"DataLoader cold epoch (2000 annotated images) ≤ 0.5× download-first's total":                         "holds",
		"DataLoader cold time to first batch ≤ 5 % of download-first's":                                       "holds",
		"API requests for mount + two DataLoader epochs ≤ 50":                                                 "holds",
		"25000 annotated images: mount + ls -lR + reading every image and document ≤ 15100 API requests":      "holds",
		"DataLoader epoch over 10000 annotated images with --requests-per-hour 2000: no failed read (EAGAIN)": "does not hold",
		"ls annotations/ of a fresh mount (25000 images, two thirds annotated) ≤ 2 s and ≤ 10 API requests":   "not judged",
		"ls -l annotations/ of it ≤ 10 s":                                                                     "not judged",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("target %q = %q, want %q", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d targets, want %d: %v", len(got), len(want), got)
	}

	// At another epoch size the cold targets are measured, not judged.
	r.Sizes.Images = 200
	for _, tg := range r.targets() {
		if strings.HasPrefix(tg.name, "DataLoader cold") && tg.holds != nil {
			t.Errorf("target %q judged at 200 images", tg.name)
		}
	}
}

// writeTree makes files (path → content) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func sourceTree(t *testing.T) string {
	return writeTree(t, map[string]string{
		"go.mod":                     "module github.com/pictofs/pictofs\n",
		"go.sum":                     "sum\n",
		"main.go":                    "package main\n",
		"main_test.go":               "package main\n",
		"examples/pytorch_loader.py": "print()\n",
		"examples/other.py":          "print()\n",
		"fs/node.go":                 "package fs\n",
		"fs/testdata/gen.go":         "package x\n",
		"fs/sub/bench/keep.go":       "package bench\n",
		"bench/main.go":              "package main\n",
		"test/e2e/e2e.go":            "package e2e\n",
		".ci/tool.go":                "package ci\n",
		"_scratch/x.go":              "package x\n",
		"README.md":                  "# readme\n",
		"notes.go.txt":               "no\n",
	})
}

func TestSourceFiles(t *testing.T) {
	root := sourceTree(t)
	got, err := sourceFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"examples/pytorch_loader.py", "fs/node.go", "fs/sub/bench/keep.go", "go.mod", "go.sum", "main.go"}
	if !slices.Equal(got, want) {
		t.Errorf("sourceFiles = %q, want %q", got, want)
	}
	for _, p := range []string{"main.go", "main_test.go", "fs/testdata/gen.go", "bench/main.go", "test/e2e/e2e.go",
		".ci/tool.go", "_scratch/x.go", "README.md", "examples/other.py", "fs/sub/bench/keep.go", "go.mod"} {
		if got, want := isSourcePath(p), slices.Contains(want, p); got != want {
			t.Errorf("isSourcePath(%q) = %v, want %v (as sourceFiles)", p, got, want)
		}
	}
}

func TestSourceHash(t *testing.T) {
	root := sourceTree(t)
	hash, n, err := sourceHash(root)
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("source hash covers %d files, want 6", n)
	}
	// The definition: SHA-256 of sha256sum's output over the sorted files.
	var manifest strings.Builder
	files, _ := sourceFiles(root)
	for _, f := range files {
		b, _ := os.ReadFile(filepath.Join(root, f))
		manifest.WriteString(sha256Hex(b) + "  " + f + "\n")
	}
	if want := sha256Hex([]byte(manifest.String())); hash != want {
		t.Errorf("source hash %s, want %s (the manifest's)", hash, want)
	}
	// The shell recipe of the documentation gives the same hash.
	if _, err := exec.LookPath("sha256sum"); err == nil {
		recipe := `{ ls go.mod go.sum examples/pytorch_loader.py; find . \( -path ./bench -o -path ./test ` +
			`-o -name testdata -o -name '.?*' -o -name '_*' \) -prune -o -type f -name '*.go' ` +
			`! -name '*_test.go' -print | sed 's|^\./||'; } | LC_ALL=C sort | xargs sha256sum | sha256sum`
		cmd := exec.Command("bash", "-c", recipe)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(string(out))[0]; got != hash {
			t.Errorf("shell recipe gives %s, want %s", got, hash)
		}
	}
	change := func(p, content string) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		h, _, err := sourceHash(root)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, p := range []string{"main_test.go", "bench/main.go", "test/e2e/e2e.go", "fs/testdata/gen.go", "README.md"} {
		if got := change(p, "changed\n"); got != hash {
			t.Errorf("changing %s changed the source hash", p)
		}
	}
	for _, p := range []string{"fs/node.go", "go.sum", "examples/pytorch_loader.py"} {
		if got := change(p, "changed "+p+"\n"); got == hash {
			t.Errorf("changing %s left the source hash as it was", p)
		}
	}
	if err := os.Remove(filepath.Join(root, "go.sum")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sourceHash(root); err == nil {
		t.Error("source hash without go.sum succeeded")
	}
}

func TestPorcelainPaths(t *testing.T) {
	out := " M fs/node.go\n?? bench/new.go\nR  old.go -> client/new.go\n M README.md\n"
	all, source := porcelainPaths(out)
	if want := []string{"fs/node.go", "bench/new.go", "old.go", "client/new.go", "README.md"}; !slices.Equal(all, want) {
		t.Errorf("all = %q, want %q", all, want)
	}
	if want := []string{"fs/node.go", "old.go", "client/new.go"}; !slices.Equal(source, want) {
		t.Errorf("source = %q, want %q", source, want)
	}
	clean := gitState{Commit: "c"}
	if got := clean.treeState(); got != "clean" {
		t.Errorf("treeState of a clean tree = %q", got)
	}
	dirty := gitState{Commit: "c", Changed: all, SourceChanged: source}
	if got := dirty.treeState(); !strings.HasPrefix(got, "DIRTY: 3 paths") {
		t.Errorf("treeState = %q, want DIRTY: 3 paths…", got)
	}
	other := gitState{Commit: "c", Changed: []string{"README.md"}}
	if got := other.treeState(); !strings.HasPrefix(got, "dirty outside the product's source") {
		t.Errorf("treeState = %q", got)
	}
}

func TestMountOf(t *testing.T) {
	mountinfo := "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n" +
		"30 22 0:26 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw\n" +
		"31 30 0:27 / /tmp/disk rw shared:6 - xfs /dev/vdb rw\n" +
		"32 22 0:28 / /mnt/with\\040space rw - btrfs /dev/vdc rw\n" +
		"33 22 0:29 / /tmp rw - ext4 /dev/vdd rw\n"
	tests := []struct{ path, want string }{
		{"/", "ext4 /dev/vda"},
		{"/work/x", "ext4 /dev/vda"},
		{"/tmpx/y", "ext4 /dev/vda"},
		{"/tmp/disk/a", "xfs /dev/vdb"},
		{"/mnt/with space/a", "btrfs /dev/vdc"},
		{"/tmp/a", "ext4 /dev/vdd"}, // a later mount on /tmp hides the tmpfs
	}
	for _, tt := range tests {
		k, ok := mountOf(mountinfo, tt.path)
		if got := k.Type + " " + k.Source; !ok || got != tt.want {
			t.Errorf("mountOf(%q) = %q, %v; want %q", tt.path, got, ok, tt.want)
		}
	}
	if k, err := fileSystemOf(t.TempDir()); err != nil || k.Type == "" {
		t.Errorf("fileSystemOf(temp dir) = %+v, %v", k, err)
	}
}

func TestCheckWorkFS(t *testing.T) {
	tests := []struct {
		fsType string
		allow  bool
		ok     bool
	}{
		{"ext4", false, true}, {"xfs", false, true}, {"tmpfs", false, false}, {"ramfs", false, false}, {"tmpfs", true, true},
	}
	for _, tt := range tests {
		err := checkWorkFS(fsKind{Type: tt.fsType}, tt.allow)
		if (err == nil) != tt.ok {
			t.Errorf("checkWorkFS(%s, allow %v) = %v, want ok %v", tt.fsType, tt.allow, err, tt.ok)
		}
	}
}

// sampleResults is a small finished run.
func sampleResults(hash string) *results {
	r := newResults()
	r.Started = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r.Sizes = sizes{Images: 2000}
	r.Provenance = provenance{
		Git: gitState{Commit: "0123456789abcdef0123456789abcdef01234567", Subject: "fs: faster"}, SourceHash: hash, SourceFiles: 56,
		Go: "go1.26 linux/amd64", Kernel: "6.18.44 (#1 SMP)", CPUs: 2, Memory: "23.5 GiB", LoadStart: "1.00 0.50 0.20",
		LoadEnd: "2.00 1.00 0.40", WorkFS: fsKind{Type: "ext4", Source: "/dev/vda", Mount: "/"}, Command: "go run ./bench",
		Flags: []string{"--images=2000"}, Ended: r.Started.Add(20 * time.Minute),
	}
	s := r.series(wlLoader, sysLocal)
	s.FirstBatch, s.Total = []float64{0.5}, []float64{5}
	s = r.series(wlLoader, sysWarm)
	s.FirstBatch, s.Total, s.DaemonRead, s.Granted, s.Bytes = []float64{1}, []float64{6}, []int64{1000}, []bool{true}, 1<<20
	return r
}

const readmeTemplate = "# pictofs\n\n## Benchmarks\n\nHow to run.\n\n" + readmeBegin + "\nold figures\n" + readmeEnd + "\n\n## After\n"

func TestFiguresRoundTrip(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	report, err := sampleResults(hash).markdownReport()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := recordedSourceHash(report); err != nil || got != hash {
		t.Errorf("recordedSourceHash = %q, %v; want %q", got, err, hash)
	}
	readme, err := readmeWithFigures(readmeTemplate, report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Measured at commit `0123456789ab`", "source hash `abababababab`", "## After\n", "How to run.",
		"| local disk | 500 ms | 5.00 s |", "| DataLoader warm epoch (remount) ≤ 1.10× local disk |"} {
		if !strings.Contains(readme, want) {
			t.Errorf("generated README lacks %q:\n%s", want, readme)
		}
	}
	if strings.Contains(readme, "old figures") {
		t.Error("generated README kept the old figures")
	}
	if err := compareFigures(hash, report, readme); err != nil {
		t.Errorf("compareFigures of fresh figures: %v", err)
	}
	again, err := readmeWithFigures(readme, report)
	if err != nil || again != readme {
		t.Errorf("regenerating is not idempotent (err %v)", err)
	}
}

func TestCompareFigures(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	report, err := sampleResults(hash).markdownReport()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := readmeWithFigures(readmeTemplate, report)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, hash, report, readme string
		want                       []string // substrings of the error; none: no error
	}{
		{"fresh", hash, report, readme, nil},
		{"other code", strings.Repeat("cd", 32), report, readme, []string{"measured on other code", hash, "re-run the benchmark"}},
		{"hand-edited README", hash, report, strings.Replace(readme, "5.00 s", "4.00 s", 1),
			[]string{"README's benchmark figures differ", "--write-readme"}},
		{"old report", hash, "# pictofs benchmark\n\nno provenance\n", readme,
			[]string{"does not say which code it measured", "cannot be generated"}},
		{"README without markers", hash, report, "# pictofs\n", []string{"README.md", "want one"}},
		{"two hashes", hash, report + "\n- source hash: `" + hash + "`\n", readme, []string{"2 source hashes"}},
	}
	for _, tt := range tests {
		err := compareFigures(tt.hash, tt.report, tt.readme)
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: compareFigures = %v, want nil", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: compareFigures = nil, want an error", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tt.name, err, w)
			}
		}
	}
}

func TestCheckAndWriteReadme(t *testing.T) {
	root := sourceTree(t)
	hash, _, err := sourceHash(root)
	if err != nil {
		t.Fatal(err)
	}
	report, err := sampleResults(hash).markdownReport()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bench"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, resultsPath), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, readmePath), []byte(readmeTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkFigures(root); err == nil || !strings.Contains(err.Error(), "--write-readme") {
		t.Errorf("checkFigures before --write-readme = %v, want a README error", err)
	}
	if err := writeReadme(root); err != nil {
		t.Fatal(err)
	}
	if err := checkFigures(root); err != nil {
		t.Errorf("checkFigures after --write-readme = %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "fs", "node.go"), []byte("package fs // changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkFigures(root); err == nil || !strings.Contains(err.Error(), "measured on other code") {
		t.Errorf("checkFigures after a product change = %v, want other code", err)
	}
}

func TestRequestKind(t *testing.T) {
	tests := []struct{ method, path, want string }{
		{"GET", apiPrefix + "annotations/abc/file", "annotation"},
		{"GET", apiPrefix + "images/ds-id/train/a.png", "image bytes"},
		{"GET", apiPrefix + "images/", "listing"},
		{"GET", apiPrefix + "datasets/", "listing"},
		{"GET", apiPrefix + "datasets/road", "listing"},
		{"GET", apiPrefix + "datasets/road/download", "download listing"},
		{"POST", apiPrefix + "exports/", "export"},
		{"GET", apiPrefix + "exports/x/download", "export"},
		{"GET", apiPrefix + "organizations/me", "other"},
		{"GET", "/elsewhere", "other"},
	}
	for _, tt := range tests {
		if got := requestKind(tt.method, tt.path); got != tt.want {
			t.Errorf("requestKind(%s %s) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
	after := requestCounts{"annotation": 10, "listing": 3}
	before := requestCounts{"annotation": 4, "listing": 3}
	d := after.minus(before)
	if got, want := d.String(), "6 (annotation 6)"; got != want {
		t.Errorf("minus = %q, want %q", got, want)
	}
	if got := (requestCounts{}).String(); got != "0" {
		t.Errorf("empty counts = %q, want 0", got)
	}
}

func TestParseLsLAndSizes(t *testing.T) {
	root := "/mnt/ds"
	lines := []string{
		"/mnt/ds:", "total 3",
		"drwxr-xr-x 2 root root 0 Dec  1 10:00 annotations",
		"-r--r--r-- 1 root root 120 Dec  1 10:00 dataset.json",
		"drwxr-xr-x 2 root root 0 Dec  1 10:00 images",
		"", "/mnt/ds/annotations:", "total 1",
		"-r--r--r-- 1 root root 57 Dec  1  2025 a b.png.json",
		"", "/mnt/ds/images:", "total 1",
		"-r--r--r-- 1 root root 1000 Dec  1 10:00 a b.png",
	}
	got, err := parseLsL(lines, root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"dataset.json": 120, "annotations/a b.png.json": 57, "images/a b.png": 1000}
	if !maps.Equal(got, want) {
		t.Errorf("parseLsL = %v, want %v", got, want)
	}
	if _, err := parseLsL([]string{"/elsewhere:"}, root); err == nil {
		t.Error("parseLsL of a folder outside the root succeeded")
	}
	ref := &reference{files: map[string]refFile{"a b.png": {imageSize: 1000, docSize: 57}}}
	delete(got, "dataset.json")
	if _, err := checkSizes(ref, got, "all"); err != nil {
		t.Errorf("checkSizes of the right sizes: %v", err)
	}
	got["annotations/a b.png.json"] = 58
	if _, err := checkSizes(ref, got, "all"); err == nil {
		t.Error("checkSizes of a wrong size succeeded")
	}
	if _, err := checkSizes(ref, map[string]int64{"a b.png.json": 57}, ""); err != nil {
		t.Errorf("checkSizes of annotations/: %v", err)
	}
	if _, err := checkSizes(ref, map[string]int64{"a b.png.json": 57, "extra.json": 2}, ""); err == nil {
		t.Error("checkSizes with an extra file succeeded")
	}
}

func TestReferenceLines(t *testing.T) {
	img, doc := []byte("IMG"), []byte("{}")
	ref := &reference{files: map[string]refFile{
		"d/a.png": {imageSHA: sha256Hex(img), docSHA: sha256Hex(doc)},
		"d/b.png": {imageSHA: sha256Hex([]byte("B")), docSHA: sha256Hex(doc)},
	}}
	good := digestLine("d/a.png", img, doc)
	if n, err := ref.checkLines("x", []string{good}); err != nil || n != 1 {
		t.Errorf("checkLines(right line) = %d, %v", n, err)
	}
	for _, bad := range [][]string{
		{digestLine("d/a.png", []byte("other"), doc)},
		{digestLine("d/c.png", img, doc)},
		{good, good},
	} {
		if _, err := ref.checkLines("x", bad); err == nil {
			t.Errorf("checkLines(%q) succeeded", bad)
		}
	}
	all := []string{good, digestLine("d/b.png", []byte("B"), doc)}
	if err := ref.expected().check("x", epochResult{Images: 2, Digest: digestOf(all)}); err != nil {
		t.Errorf("expected() does not match the lines' digest: %v", err)
	}
}

func TestSeedSpecs(t *testing.T) {
	for _, tt := range []struct {
		sp   seedSpec
		want int
	}{
		{seedSpec{images: 300}, 300},
		{seedSpec{images: 300, synthetic: true}, 150},
		{seedSpec{images: 300, synthetic: true, annotate: twoThirds}, 200},
		{seedSpec{images: 25000, synthetic: true, annotate: twoThirds}, 16667},
		{seedSpec{images: 301, synthetic: true, annotate: allImages}, 301},
	} {
		if got := tt.sp.completed(); got != tt.want {
			t.Errorf("completed(%+v) = %d, want %d", tt.sp, got, tt.want)
		}
	}
	for _, i := range []int{0, 1, 42, 1234567} {
		if got, ok := syntheticIndex(devserver.SyntheticFilename(i)); !ok || got != i {
			t.Errorf("syntheticIndex(%q) = %d, %v", devserver.SyntheticFilename(i), got, ok)
		}
	}
	for _, name := range []string{"img-12.png", "000001.png", "img-0000001.png"} {
		if _, ok := syntheticIndex(name); ok {
			t.Errorf("syntheticIndex(%q) succeeded", name)
		}
	}
	h := &harness{cfg: config{annotatedListing: 300, annotatedImages: 500, budgetImages: 500}}
	var names []string
	for _, sp := range h.annotatedSpecs() {
		names = append(names, sp.name)
	}
	if want := []string{"annotated-listing-300", "annotated-500"}; !slices.Equal(names, want) {
		t.Errorf("annotatedSpecs = %q, want %q (one dataset for two rows of one size)", names, want)
	}
}

func TestParseFlagsModes(t *testing.T) {
	c, err := parseFlags([]string{"--images", "200", "--write-readme"})
	if err != nil {
		t.Fatal(err)
	}
	if c.mode != "write-readme" {
		t.Errorf("mode = %q, want write-readme", c.mode)
	}
	if !slices.Contains(c.flags, "--images=200") || !slices.Contains(c.flags, "--runs=3") || !slices.Contains(c.flags, "--budget-requests-per-hour=2000") {
		t.Errorf("flags = %q, want every flag with its value", c.flags)
	}
	if _, err := parseFlags([]string{"--source-hash", "--check-figures"}); err == nil {
		t.Error("two modes at once succeeded")
	}
	for _, bad := range [][]string{{"--annotated-images", "-1"}, {"--budget-requests-per-hour", "0"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

func TestPassthroughEvidence(t *testing.T) {
	for _, tt := range []struct {
		log  string
		want string
	}{
		{`time=… level=INFO msg=mounted mountpoint=/m cache=/c passthrough=true` + "\n", "true"},
		{`{"msg":"mounted","passthrough":false}`, "false"},
		{"mounted source=/a mountpoint=/b passthrough=true entry_timeout=1h0m0s\n", "true"},
		{"mounted, no word of it\n", "nil"},
		{"--passthrough=truely\n", "nil"},
	} {
		got := "nil"
		if b := passthroughInLog([]byte(tt.log)); b != nil {
			got = strconv.FormatBool(*b)
		}
		if got != tt.want {
			t.Errorf("passthroughInLog(%q) = %s, want %s", tt.log, got, tt.want)
		}
	}
	for _, tt := range []struct {
		read  float64
		bytes int64
		want  string
	}{
		{0, 1000, "kernel (passthrough)"}, {499, 1000, "kernel (passthrough)"}, {500, 1000, "daemon"}, {1200, 1000, "daemon"},
		{math.NaN(), 1000, "unknown"}, {0, 0, "unknown"},
	} {
		if got := carriedBy(tt.read, tt.bytes); got != tt.want {
			t.Errorf("carriedBy(%v, %d) = %q, want %q", tt.read, tt.bytes, got, tt.want)
		}
	}
	if n := diskReadBytes(os.Getpid()); n < 0 {
		t.Errorf("diskReadBytes(self) = %d, want a count", n)
	}
	if n := diskReadBytes(-5); n != -1 {
		t.Errorf("diskReadBytes(no such process) = %d, want -1", n)
	}
}
