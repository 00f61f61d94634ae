package blobcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

var discard = slog.New(slog.DiscardHandler)

// plentyFree is a statfs with an empty, huge filesystem.
func plentyFree(string) (uint64, uint64, error) { return 1 << 50, 1 << 50, nil }

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Now().Add(-24 * time.Hour).Truncate(time.Second)}
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

type testOpt struct {
	statfs  func(string) (uint64, uint64, error)
	now     func() time.Time
	minFree float64
}

func openTest(t *testing.T, dir string, maxBytes int64, o testOpt) *Cache {
	t.Helper()
	if o.statfs == nil {
		o.statfs = plentyFree
	}
	if o.now == nil {
		o.now = time.Now
	}
	c, err := open(Options{Dir: dir, MaxBytes: maxBytes, MinFreeRatio: o.minFree, Logger: discard}, o.statfs, o.now)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func key(i int) Key { return KeyOf("test", strconv.Itoa(i)) }

// blobData returns size deterministic bytes for k.
func blobData(k Key, size int) []byte {
	var b bytes.Buffer
	seed := sha256.Sum256([]byte(k))
	for b.Len() < size {
		b.Write(seed[:])
		seed = sha256.Sum256(seed[:])
	}
	return b.Bytes()[:size]
}

func writeAll(data []byte) func(context.Context, io.Writer) error {
	return func(_ context.Context, w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}

func mustFill(t *testing.T, c *Cache, k Key, data []byte) *Handle {
	t.Helper()
	h, err := c.Fill(context.Background(), k, int64(len(data)), writeAll(data))
	if err != nil {
		t.Fatalf("Fill(%s): %v", k[:8], err)
	}
	return h
}

func readHandle(t *testing.T, h *Handle) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(h.File(), 0, h.Size()))
	if err != nil {
		t.Fatalf("read handle: %v", err)
	}
	return b
}

// diskUsage sums the sizes of the regular files under dir.
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished while walking
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	return n
}

// blobFiles lists the blob files under dir (not the staging area).
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "[0-9a-f][0-9a-f]", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}
