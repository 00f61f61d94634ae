package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// epochResult is one epoch of a workload over one dataset folder.
type epochResult struct {
	Images     int     `json:"images"`
	Bytes      int64   `json:"bytes"`
	FirstBatch float64 `json:"first_batch_s"`
	Total      float64 `json:"total_s"`
	Digest     string  `json:"digest"`
	// Failed counts the items whose read failed, by errno name (only with
	// loaderRun.tolerateErrors).
	Failed map[string]int `json:"failed,omitempty"`
	// Lines are the digest's lines, sorted (the plain reader's, and the
	// loader's with loaderRun.linesOut).
	Lines []string `json:"-"`
}

// expected is what every epoch must read: the count and the digest of the
// reference copy.
type expected struct {
	images int
	digest string
}

func (e expected) check(what string, r epochResult) error {
	if r.Images != e.images {
		return fmt.Errorf("%s read %d images, want %d", what, r.Images, e.images)
	}
	if r.Digest != e.digest {
		return fmt.Errorf("%s read wrong bytes: digest %s, want %s", what, short(r.Digest), short(e.digest))
	}
	return nil
}

func short(d string) string { return d[:min(len(d), 12)] }

// loaderRun is one run of the PyTorch DataLoader workload.
type loaderRun struct {
	python, script string // the interpreter and workload.py
	example        string // examples/pytorch_loader.py, which workload.py imports
	workers, batch int
	timeout        time.Duration
	logPath        string
	// tolerateErrors counts failed reads instead of failing the epoch;
	// linesOut, if set, receives the digest lines (read back into Lines).
	tolerateErrors bool
	linesOut       string
}

// runLoader runs one epoch of the DataLoader workload (workload.py over
// examples/pytorch_loader.py) over root, in its own process group, killed
// with it on timeout or cancellation.
func runLoader(ctx context.Context, lr loaderRun, root string) (epochResult, error) {
	ctx, cancel := context.WithTimeout(ctx, lr.timeout)
	defer cancel()
	args := []string{lr.script, root, "--loader", lr.example, "--workers", strconv.Itoa(lr.workers), "--batch-size", strconv.Itoa(lr.batch)}
	if lr.tolerateErrors {
		args = append(args, "--tolerate-errors")
	}
	if lr.linesOut != "" {
		args = append(args, "--lines-out", lr.linesOut)
	}
	cmd := exec.CommandContext(ctx, lr.python, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout bytes.Buffer
	logf, err := os.OpenFile(lr.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return epochResult{}, fmt.Errorf("loader: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "== %s %s\n", time.Now().Format(time.RFC3339), root)
	cmd.Stdout, cmd.Stderr = &stdout, logf
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return epochResult{}, fmt.Errorf("loader over %s: %w (log: %s)", root, err, lr.logPath)
	}
	var r epochResult
	line := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return epochResult{}, fmt.Errorf("loader over %s: bad output %q: %w", root, line, err)
	}
	if lr.linesOut != "" {
		b, err := os.ReadFile(lr.linesOut)
		if err != nil {
			return epochResult{}, fmt.Errorf("loader over %s: %w", root, err)
		}
		r.Lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) == 0 {
			r.Lines = nil
		}
	}
	return r, nil
}

// digestLine is one line of the epoch digest, as workload.py writes it.
func digestLine(rel string, img, ann []byte) string {
	return rel + " " + sha256Hex(img) + " " + sha256Hex(ann)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func digestOf(lines []string) string {
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		io.WriteString(h, l+"\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// imageExts are the image extensions workload.py reads.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".bmp": true, ".gif": true, ".webp": true, ".tif": true, ".tiff": true}

// walkImages lists the images under root/images, relative to it.
func walkImages(root string) ([]string, error) {
	images := filepath.Join(root, "images")
	var rels []string
	err := filepath.WalkDir(images, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && imageExts[strings.ToLower(filepath.Ext(p))] {
			rel, err := filepath.Rel(images, p)
			if err != nil {
				return err
			}
			rels = append(rels, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", images, err)
	}
	return rels, nil
}

// readTree is the plain parallel reader: it walks root/images and, with
// readers goroutines, reads every image and its annotation document in full
// (no decode), hashing them for the digest.
func readTree(ctx context.Context, root string, readers int) (epochResult, error) {
	start := time.Now()
	rels, err := walkImages(root)
	if err != nil {
		return epochResult{}, err
	}
	var (
		mu       sync.Mutex
		lines    = make([]string, 0, len(rels))
		nbytes   int64
		firstErr error
		wg       sync.WaitGroup
	)
	jobs := make(chan string)
	for range readers {
		wg.Go(func() {
			for rel := range jobs {
				img, err := os.ReadFile(filepath.Join(root, "images", rel))
				var ann []byte
				if err == nil {
					ann, err = os.ReadFile(filepath.Join(root, "annotations", rel+".json"))
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					lines = append(lines, digestLine(rel, img, ann))
					nbytes += int64(len(img) + len(ann))
				}
				mu.Unlock()
			}
		})
	}
	for _, rel := range rels {
		if ctx.Err() != nil {
			break
		}
		jobs <- rel
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(firstErr, ctx.Err()); err != nil {
		return epochResult{}, fmt.Errorf("reader over %s: %w", root, err)
	}
	total := time.Since(start).Seconds()
	digest := digestOf(lines) // sorts lines
	return epochResult{Images: len(lines), Bytes: nbytes, Total: total, Digest: digest, Lines: lines}, nil
}

// openLatencies opens each rel under root/images, reads one byte and closes
// it, one at a time, and returns each one's wall time in seconds. The
// directories holding them are looked up first (not timed, not listed), so
// the times are those of cold files in known directories.
func openLatencies(ctx context.Context, root string, rels []string) ([]float64, error) {
	seen := map[string]bool{}
	for _, rel := range rels {
		d := filepath.Dir(filepath.Join(root, "images", rel))
		if !seen[d] {
			if _, err := os.Stat(d); err != nil {
				return nil, fmt.Errorf("open latency: %w", err)
			}
			seen[d] = true
		}
	}
	out := make([]float64, 0, len(rels))
	buf := make([]byte, 1)
	for _, rel := range rels {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(root, "images", rel)
		start := time.Now()
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("open latency: %w", err)
		}
		n, err := f.Read(buf)
		f.Close()
		d := time.Since(start).Seconds()
		if err != nil || n != 1 {
			return nil, fmt.Errorf("open latency: read 1 byte of %s: n=%d: %v", p, n, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// metaCmd is a metadata command timed over a dataset's images/ folder.
type metaCmd struct {
	name string
	args []string // the folder is appended
	// count returns the number of image entries in the output, to check
	// the command saw every image.
	count func(line string) bool
}

var metaCmds = []metaCmd{
	{name: "ls -R", args: []string{"ls", "-R"}, count: func(l string) bool {
		return imageExts[strings.ToLower(filepath.Ext(l))]
	}},
	{name: "ls -lR", args: []string{"ls", "-lR"}, count: func(l string) bool { return strings.HasPrefix(l, "-") }},
	{name: "find", args: []string{"find"}, count: func(l string) bool {
		return imageExts[strings.ToLower(filepath.Ext(l))]
	}},
}

// runMeta runs c over dir and returns its wall time and the image count it
// printed.
func runMeta(ctx context.Context, c metaCmd, dir string, timeout time.Duration) (float64, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append(slices.Clone(c.args), dir)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", c.name, err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", c.name, err)
	}
	n := 0
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if c.count(sc.Text()) {
			n++
		}
	}
	err = cmd.Wait()
	took := time.Since(start).Seconds()
	if err != nil {
		return 0, 0, fmt.Errorf("%s %s: %w: %s", c.name, dir, err, strings.TrimSpace(stderr.String()))
	}
	return took, n, nil
}
