package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The product's source hash names the code a figure was measured on. It is
// the SHA-256 of a manifest in sha256sum's format: one line
// "<sha256 hex of the file>  <path>\n" per file, sorted by path (byte
// order), path relative to the module root with "/" separators. The files
// are go.mod, go.sum, examples/pytorch_loader.py (the DataLoader workload
// imports it) and every file whose name ends in ".go" but not in "_test.go",
// found by walking the module root without following symlinks and skipping
// the top-level directories bench/ (the harness: changing it does not change
// what is measured) and test/, every directory named testdata, and every
// directory whose name starts with "." or "_" (the ones the go tool
// ignores). From a shell, at the module root:
//
//	{ ls go.mod go.sum examples/pytorch_loader.py; find . \( -path ./bench -o -path ./test \
//	  -o -name testdata -o -name '.?*' -o -name '_*' \) -prune -o -type f -name '*.go' \
//	  ! -name '*_test.go' -print | sed 's|^\./||'; } | LC_ALL=C sort | xargs sha256sum | sha256sum
//
// The harness records it in every report, and --check-figures compares the
// one in bench/RESULTS.md with the working tree's.

// sourceExtraFiles are the files of the source hash that are not Go files.
var sourceExtraFiles = []string{"go.mod", "go.sum", "examples/pytorch_loader.py"}

// sourceSkipTop are the top-level directories left out of the source hash.
var sourceSkipTop = map[string]bool{"bench": true, "test": true}

// sourceFiles lists the files of the source hash under root, sorted.
func sourceFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		name := d.Name()
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			if sourceSkipTop[rel] || name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list source files: %w", err)
	}
	for _, f := range sourceExtraFiles {
		st, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("list source files: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("list source files: %s is not a regular file", f)
		}
		files = append(files, f)
	}
	slices.Sort(files)
	return files, nil
}

// sourceHash is the product's source hash of the module at root and the
// number of files it covers.
func sourceHash(root string) (string, int, error) {
	files, err := sourceFiles(root)
	if err != nil {
		return "", 0, err
	}
	var manifest bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return "", 0, fmt.Errorf("source hash: %w", err)
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(&manifest, "%s  %s\n", hex.EncodeToString(sum[:]), f)
	}
	sum := sha256.Sum256(manifest.Bytes())
	return hex.EncodeToString(sum[:]), len(files), nil
}

// isSourcePath reports whether a path relative to the module root (with "/")
// is one the source hash covers.
func isSourcePath(rel string) bool {
	if slices.Contains(sourceExtraFiles, rel) {
		return true
	}
	if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
		return false
	}
	dirs := strings.Split(path.Dir(rel), "/")
	if sourceSkipTop[dirs[0]] {
		return false
	}
	for _, d := range dirs {
		if d == "testdata" || (d != "." && (strings.HasPrefix(d, ".") || strings.HasPrefix(d, "_"))) {
			return false
		}
	}
	return true
}

// gitState is the commit of the working tree and what differs from it.
type gitState struct {
	Commit  string `json:"commit"`  // full hash of HEAD, "" if unknown
	Subject string `json:"subject"` // HEAD's subject line
	// Changed are the paths `git status --porcelain` reports (modified,
	// added, deleted or untracked); SourceChanged those of them that the
	// source hash covers.
	Changed       []string `json:"changed,omitempty"`
	SourceChanged []string `json:"source_changed,omitempty"`
	Err           string   `json:"error,omitempty"`
}

func readGitState(ctx context.Context, root string) gitState {
	var g gitState
	out, err := gitOutput(ctx, root, "log", "-1", "--format=%H%n%s")
	if err != nil {
		g.Err = err.Error()
		return g
	}
	g.Commit, g.Subject, _ = strings.Cut(strings.TrimSpace(out), "\n")
	out, err = gitOutput(ctx, root, "status", "--porcelain", "--untracked-files=all")
	if err != nil {
		g.Err = err.Error()
		return g
	}
	g.Changed, g.SourceChanged = porcelainPaths(out)
	return g
}

// porcelainPaths reads `git status --porcelain` output: every path it names
// (both sides of a rename), and those of them the source hash covers.
func porcelainPaths(out string) (all, source []string) {
	for line := range strings.SplitSeq(out, "\n") {
		if len(line) < 4 {
			continue
		}
		for p := range strings.SplitSeq(line[3:], " -> ") {
			p = strings.Trim(p, `"`)
			all = append(all, p)
			if isSourcePath(p) {
				source = append(source, p)
			}
		}
	}
	return all, source
}

func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// treeState says whether the tree was clean, in the report's words.
func (g gitState) treeState() string {
	switch {
	case g.Err != "":
		return "unknown (" + g.Err + ")"
	case len(g.Changed) == 0:
		return "clean"
	case len(g.SourceChanged) == 0:
		return fmt.Sprintf("dirty outside the product's source (%d paths: %s)", len(g.Changed), clip(strings.Join(g.Changed, ", "), 200))
	default:
		return fmt.Sprintf("DIRTY: %d paths of the product's source differ from the commit (%s); the source hash is of what was measured",
			len(g.SourceChanged), clip(strings.Join(g.SourceChanged, ", "), 200))
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fsKind names the file system holding a directory: its type and source
// from /proc/self/mountinfo (the longest mount point above it).
type fsKind struct {
	Type   string `json:"type"`
	Source string `json:"source"`
	Mount  string `json:"mount_point"`
}

func (k fsKind) String() string {
	return fmt.Sprintf("%s (%s, mounted at %s)", k.Type, k.Source, k.Mount)
}

// memoryFS are the file system types that keep files in memory: a "local
// disk" read from them is a memory read.
var memoryFS = map[string]bool{"tmpfs": true, "ramfs": true}

func fileSystemOf(dir string) (fsKind, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fsKind{}, fmt.Errorf("file system of %s: %w", dir, err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return fsKind{}, fmt.Errorf("file system of %s: %w", dir, err)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fsKind{}, fmt.Errorf("file system of %s: %w", dir, err)
	}
	k, ok := mountOf(string(b), real)
	if !ok {
		return fsKind{}, fmt.Errorf("file system of %s: no mount point above it in /proc/self/mountinfo", dir)
	}
	return k, nil
}

// mountOf finds the mount of an absolute, symlink-free path in mountinfo
// text: the last-listed entry with the longest mount point above it (a later
// mount on the same point hides the earlier ones).
func mountOf(mountinfo, p string) (fsKind, bool) {
	var best fsKind
	found := false
	for line := range strings.SplitSeq(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 2 {
			continue
		}
		mnt := unescapeMountinfo(f[4])
		if !(p == mnt || mnt == "/" || strings.HasPrefix(p, mnt+"/")) {
			continue
		}
		if !found || len(mnt) >= len(best.Mount) {
			best, found = fsKind{Type: g[0], Source: unescapeMountinfo(g[1]), Mount: mnt}, true
		}
	}
	return best, found
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func kernelVersion() string {
	read := func(name string) string {
		b, err := os.ReadFile("/proc/sys/kernel/" + name)
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(b))
	}
	return read("osrelease") + " (" + read("version") + ")"
}

func memTotal() string {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return "?"
	}
	return fmtBytes(int64(si.Totalram) * int64(si.Unit))
}

// provenance is what a report says about the code and the machine it was
// measured on.
type provenance struct {
	Git         gitState  `json:"git"`
	SourceHash  string    `json:"source_hash"`
	SourceFiles int       `json:"source_files"`
	Go          string    `json:"go"`
	Kernel      string    `json:"kernel"`
	CPUs        int       `json:"cpus"`
	Memory      string    `json:"memory"`
	LoadStart   string    `json:"load_average_start"`
	LoadEnd     string    `json:"load_average_end"`
	WorkFS      fsKind    `json:"work_dir_fs"`
	DataFS      fsKind    `json:"data_dir_fs"`
	Command     string    `json:"command"`
	Flags       []string  `json:"flags"`
	Ended       time.Time `json:"ended"`
}

func newProvenance(ctx context.Context, root string, flags []string) (provenance, error) {
	hash, n, err := sourceHash(root)
	if err != nil {
		return provenance{}, err
	}
	return provenance{
		Git:        readGitState(ctx, root),
		SourceHash: hash, SourceFiles: n,
		Go:        runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		Kernel:    kernelVersion(),
		CPUs:      runtime.NumCPU(),
		Memory:    memTotal(),
		LoadStart: loadAverage(),
		Command:   "go run ./bench " + strings.Join(os.Args[1:], " "),
		Flags:     flags,
	}, nil
}

// checkWorkFS refuses a work directory in memory unless allowed: local disk
// and the warm caches would then be memory reads.
func checkWorkFS(k fsKind, allow bool) error {
	if memoryFS[k.Type] && !allow {
		return errors.New("the work directory is on " + k.Type + ", so \"local disk\" and the warm caches would be memory: " +
			"pass --tmp-dir on a disk, or --allow-tmpfs to measure anyway (the report says so)")
	}
	return nil
}
