package blobcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyOf(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
		same bool
	}{
		{"deterministic", []string{"host", "org", "img"}, []string{"host", "org", "img"}, true},
		{"length prefixed", []string{"ab", "c"}, []string{"a", "bc"}, false},
		{"empty parts count", []string{"a"}, []string{"a", ""}, false},
		{"order matters", []string{"a", "b"}, []string{"b", "a"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := KeyOf(tt.a...), KeyOf(tt.b...)
			if got := ka == kb; got != tt.same {
				t.Errorf("KeyOf(%q) == KeyOf(%q): got %v, want %v", tt.a, tt.b, got, tt.same)
			}
			if !ka.valid() {
				t.Errorf("KeyOf(%q) = %q: got invalid, want valid", tt.a, ka)
			}
		})
	}
}

func TestParseName(t *testing.T) {
	k := key(1)
	tests := []struct {
		name     string
		in       string
		ok       bool
		wantSize int64
		wantCRC  uint32
	}{
		{"valid", string(k) + "-123-0000abcd", true, 123, 0xabcd},
		{"zero size", string(k) + "-0-00000000", true, 0, 0},
		{"temp file", string(k) + "-123456789", false, 0, 0},
		{"negative size", string(k) + "--1-0000abcd", false, 0, 0},
		{"leading zero size", string(k) + "-0123-0000abcd", false, 0, 0},
		{"short crc", string(k) + "-123-abcd", false, 0, 0},
		{"bad key", "zz" + string(k[2:]) + "-1-00000000", false, 0, 0},
		{"upper-case key", "AB" + string(k[2:]) + "-1-00000000", false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, size, crc, ok := parseName(tt.in)
			if ok != tt.ok || size != tt.wantSize || crc != tt.wantCRC {
				t.Errorf("parseName: got (%d, %x, %v), want (%d, %x, %v)", size, crc, ok, tt.wantSize, tt.wantCRC, tt.ok)
			}
		})
	}
}

func TestFillGetRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 1<<20, testOpt{})
	sizes := []int{0, 1, 4096, 100_000}
	for i, size := range sizes {
		k := key(i)
		data := blobData(k, size)
		h := mustFill(t, c, k, data)
		if got := readHandle(t, h); !bytes.Equal(got, data) {
			t.Errorf("size %d: Fill handle content differs", size)
		}
		h.Release()
		h.Release() // idempotent
		g, ok := c.Get(k, 0)
		if !ok {
			t.Fatalf("size %d: Get: got miss, want hit", size)
		}
		if got := readHandle(t, g); !bytes.Equal(got, data) || g.Size() != int64(size) {
			t.Errorf("size %d: Get content/size: got %d bytes, want %d", size, g.Size(), size)
		}
		g.Release()
	}
	if _, ok := c.Get(key(99), 0); ok {
		t.Errorf("Get of an absent key: got hit, want miss")
	}
	if _, ok := c.Get("../../etc/passwd", 0); ok {
		t.Errorf("Get of an invalid key: got hit, want miss")
	}
	st := c.Stats()
	want := Stats{Bytes: 104097, Count: 4, Hits: 4, Misses: 2, Fills: 4}
	if st != want {
		t.Errorf("Stats: got %+v, want %+v", st, want)
	}
}

func TestFillRejectsWrongSize(t *testing.T) {
	errFetch := errors.New("network down")
	tests := []struct {
		name      string
		size      int64
		fill      func(context.Context, io.Writer) error
		want      error
		wantShort uint64
	}{
		{"short", 100, writeAll(make([]byte, 60)), ErrShortBlob, 1},
		{"empty", 100, writeAll(nil), ErrShortBlob, 1},
		{"long", 100, writeAll(make([]byte, 101)), ErrLongBlob, 0},
		{"fill error after bytes", 100, func(_ context.Context, w io.Writer) error {
			w.Write(make([]byte, 50))
			return errFetch
		}, errFetch, 0},
		{"write error ignored by fill", 10, func(_ context.Context, w io.Writer) error {
			w.Write(make([]byte, 11))
			return nil
		}, ErrLongBlob, 0},
		{"unknown size over the cap", -1, writeAll(make([]byte, 5000)), ErrNoSpace, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := openTest(t, dir, 4096, testOpt{})
			h, err := c.Fill(context.Background(), key(1), tt.size, tt.fill)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Fill: got %v, want %v", err, tt.want)
			}
			if h != nil {
				t.Errorf("Fill: got a handle with an error")
			}
			if _, ok := c.Get(key(1), 0); ok {
				t.Errorf("Get after a failed fill: got hit, want miss")
			}
			st := c.Stats()
			if st.Bytes != 0 || st.Reserved != 0 || st.Count != 0 || st.ShortFills != tt.wantShort {
				t.Errorf("Stats: got %+v, want nothing charged and %d short fills", st, tt.wantShort)
			}
			if n := diskUsage(t, dir); n != 0 {
				t.Errorf("disk usage: got %d bytes, want 0 (temp file left behind)", n)
			}
		})
	}
}

func TestFillUnknownSize(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 1<<20, testOpt{})
	data := blobData(key(1), 300_000) // several reservation steps
	h, err := c.Fill(context.Background(), key(1), -1, func(_ context.Context, w io.Writer) error {
		for b := data; len(b) > 0; b = b[min(len(b), 7000):] {
			if _, err := w.Write(b[:min(len(b), 7000)]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Fill: %v", err)
	}
	defer h.Release()
	if got := readHandle(t, h); !bytes.Equal(got, data) {
		t.Errorf("content: got %d bytes, want %d", len(got), len(data))
	}
	st := c.Stats()
	if st.Bytes != int64(len(data)) || st.Reserved != 0 {
		t.Errorf("Stats: got Bytes %d Reserved %d, want %d and 0", st.Bytes, st.Reserved, len(data))
	}
}

func TestPinnedNeverEvicted(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 300, testOpt{})
	pinned := mustFill(t, c, key(0), blobData(key(0), 100))
	defer pinned.Release()
	for i := 1; i <= 20; i++ {
		mustFill(t, c, key(i), blobData(key(i), 100)).Release()
		if !c.Contains(key(0)) {
			t.Fatalf("after fill %d: pinned blob evicted", i)
		}
	}
	if got := readHandle(t, pinned); !bytes.Equal(got, blobData(key(0), 100)) {
		t.Errorf("pinned content changed")
	}
	for i, want := range map[int]bool{19: true, 20: true, 18: false, 1: false} {
		if got := c.Contains(key(i)); got != want {
			t.Errorf("Contains(key %d): got %v, want %v", i, got, want)
		}
	}
	if st := c.Stats(); st.Evictions != 18 || st.Pinned != 1 {
		t.Errorf("Stats: got Evictions %d Pinned %d, want 18 and 1", st.Evictions, st.Pinned)
	}
}

func TestNoSpace(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 250, testOpt{})
	a := mustFill(t, c, key(1), blobData(key(1), 100))
	b := mustFill(t, c, key(2), blobData(key(2), 100))
	tests := []struct {
		name string
		key  Key
		size int64
	}{
		{"all pinned", key(3), 100},
		{"bigger than the cap", key(4), 251},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Fill(context.Background(), tt.key, tt.size, writeAll(make([]byte, tt.size)))
			if !errors.Is(err, ErrNoSpace) {
				t.Errorf("Fill: got %v, want ErrNoSpace", err)
			}
		})
	}
	if c.Contains(key(1)) != true || c.Contains(key(2)) != true {
		t.Errorf("a failed reservation evicted a pinned blob")
	}
	a.Release()
	h, err := c.Fill(context.Background(), key(3), 100, writeAll(blobData(key(3), 100)))
	if err != nil {
		t.Fatalf("Fill after a release: got %v, want success", err)
	}
	h.Release()
	b.Release()
	if got := c.Contains(key(1)); got {
		t.Errorf("Contains(released LRU blob): got true, want evicted")
	}
}

// TestCapNeverExceeded runs concurrent fills, gets and pins, checking the
// index continuously and the directory between rounds.
func TestCapNeverExceeded(t *testing.T) {
	const maxBytes = 64 << 10
	dir := t.TempDir()
	c := openTest(t, dir, maxBytes, testOpt{})

	stop := make(chan struct{})
	var sampler sync.WaitGroup
	var worst atomic.Int64
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := c.Stats()
			if n := st.Bytes + st.Reserved; n > worst.Load() {
				worst.Store(n)
			}
			time.Sleep(50 * time.Microsecond)
		}
	})

	for round := range 3 {
		var wg sync.WaitGroup
		var noSpace atomic.Int64
		for g := range 16 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				var held []*Handle
				for i := range 40 {
					k := key(rng.IntN(200))
					if h, ok := c.Get(k, 0); ok {
						held = append(held, h)
					} else {
						size := 1 + rng.IntN(6<<10)
						h, err := c.Fill(context.Background(), k, int64(size), writeAll(blobData(k, size)))
						switch {
						case errors.Is(err, ErrNoSpace):
							noSpace.Add(1)
						case err != nil:
							t.Errorf("Fill: %v", err)
						default:
							held = append(held, h)
						}
					}
					if len(held) > 1 || i%3 == 0 {
						for _, h := range held {
							h.Release()
						}
						held = held[:0]
					}
				}
				for _, h := range held {
					h.Release()
				}
			})
		}
		wg.Wait()
		st := c.Stats()
		if du := diskUsage(t, dir); du > maxBytes || du != st.Bytes {
			t.Errorf("round %d: disk usage %d bytes, index %d bytes: want equal and <= %d", round, du, st.Bytes, maxBytes)
		}
		if st.Pinned != 0 || st.Reserved != 0 {
			t.Errorf("round %d: got Pinned %d Reserved %d after all releases, want 0", round, st.Pinned, st.Reserved)
		}
		if st.Evictions == 0 {
			t.Errorf("round %d: got no evictions; the test does not fill past the cap", round)
		}
	}
	close(stop)
	sampler.Wait()
	if w := worst.Load(); w > maxBytes {
		t.Errorf("bytes+reserved peaked at %d, want <= %d", w, maxBytes)
	}
}

func TestMinFreeRatio(t *testing.T) {
	// A 10 000-byte filesystem of which 8 000 bytes belong to others, with a
	// 10% floor: the cache may hold 1 000 bytes although its cap is 1 MiB.
	const total, others, floor = 10_000, 8_000, 1_000
	dir := t.TempDir()
	var calls atomic.Int64
	statfs := func(string) (uint64, uint64, error) {
		calls.Add(1)
		used := others + diskUsage(t, dir)
		return uint64(total - used), total, nil
	}
	c := openTest(t, dir, 1<<20, testOpt{statfs: statfs, minFree: 0.1})
	for i := range 30 {
		mustFill(t, c, key(i), blobData(key(i), 100)).Release()
		if du := diskUsage(t, dir); du > total-others-floor {
			t.Fatalf("after fill %d: disk usage %d, want <= %d", i, du, total-others-floor)
		}
	}
	if st := c.Stats(); st.Count != 10 || st.Evictions != 20 {
		t.Errorf("Stats: got Count %d Evictions %d, want 10 and 20", st.Count, st.Evictions)
	}
	if calls.Load() == 0 {
		t.Errorf("statfs never called")
	}
	var hs []*Handle
	for i := 20; i < 30; i++ {
		h, ok := c.Get(key(i), 0)
		if !ok {
			t.Fatalf("Get(key %d): got miss, want hit", i)
		}
		hs = append(hs, h)
	}
	if _, err := c.Fill(context.Background(), key(100), 100, writeAll(make([]byte, 100))); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Fill with the floor reached and all pinned: got %v, want ErrNoSpace", err)
	}
	for _, h := range hs {
		h.Release()
	}
}

func TestOpenDropsCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 1<<20, testOpt{})
	good := mustFill(t, c, key(1), blobData(key(1), 500))
	goodPath := good.e.path
	good.Release()
	live := openTest(t, dir, 1<<20, testOpt{}) // another live instance: its stage must survive
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	tmp := filepath.Join(dir, "tmp")
	write := func(path string, size int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A dead instance: unlocked lock file and a half-written temp file.
	write(filepath.Join(tmp, "dead.lock"), 0)
	write(filepath.Join(tmp, "dead", string(key(2))+"-123"), 300)
	// An orphaned staging directory without a lock file.
	write(filepath.Join(tmp, "orphan", "x"), 10)
	// A temp file in flight in the live instance.
	liveTemp := filepath.Join(live.stage.dir, string(key(3))+"-999")
	write(liveTemp, 40)
	// A truncated blob: renamed before its data reached the disk.
	truncated := filepath.Join(dir, string(key(4)[:2]), fmt.Sprintf("%s-%d-%08x", key(4), 1000, 0))
	write(truncated, 400)
	// A blob of the right size with garbage inside.
	data := blobData(key(5), 200)
	corrupt := filepath.Join(dir, string(key(5)[:2]), fmt.Sprintf("%s-%d-%08x", key(5), 200, crc32.Checksum(data, castagnoli)))
	write(corrupt, 200)
	// A file that is not ours: left alone.
	foreign := filepath.Join(dir, "00", "README")
	write(foreign, 5)

	c2 := openTest(t, dir, 1<<20, testOpt{})
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	for _, tt := range []struct {
		path string
		want bool
	}{
		{filepath.Join(tmp, "dead.lock"), false},
		{filepath.Join(tmp, "dead"), false},
		{filepath.Join(tmp, "orphan"), false},
		{liveTemp, true},
		{live.stage.lockPath, true},
		{truncated, false},
		{corrupt, true}, // same size: caught by the CRC on first use
		{goodPath, true},
		{foreign, true},
	} {
		if got := exists(tt.path); got != tt.want {
			t.Errorf("exists(%s): got %v, want %v", tt.path, got, tt.want)
		}
	}
	if _, ok := c2.Get(key(5), 0); ok {
		t.Errorf("Get(corrupt blob): got hit, want miss")
	}
	if exists(corrupt) {
		t.Errorf("corrupt blob still on disk after a failed CRC check")
	}
	h, ok := c2.Get(key(1), 0)
	if !ok {
		t.Fatalf("Get(good blob): got miss, want hit")
	}
	if got := readHandle(t, h); !bytes.Equal(got, blobData(key(1), 500)) {
		t.Errorf("good blob content differs after reopen")
	}
	h.Release()
	if st := c2.Stats(); st.Count != 1 || st.Bytes != 500 {
		t.Errorf("Stats after reopen: got Count %d Bytes %d, want 1 and 500", st.Count, st.Bytes)
	}
}

func TestIndexRebuiltAcrossOpen(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	c := openTest(t, dir, 1<<20, testOpt{now: clk.now})
	for i := range 4 {
		clk.add(time.Hour)
		mustFill(t, c, key(i), blobData(key(i), 100)).Release()
	}
	clk.add(time.Hour)
	h, ok := c.Get(key(0), 0) // the oldest fill becomes the most recently used
	if !ok {
		t.Fatal("Get(key 0): got miss, want hit")
	}
	h.Release()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c2 := openTest(t, dir, 400, testOpt{now: clk.now})
	if st := c2.Stats(); st.Count != 4 || st.Bytes != 400 {
		t.Fatalf("Stats after reopen: got Count %d Bytes %d, want 4 and 400", st.Count, st.Bytes)
	}
	mustFill(t, c2, key(10), blobData(key(10), 100)).Release()
	mustFill(t, c2, key(11), blobData(key(11), 100)).Release()
	for i, want := range map[int]bool{0: true, 1: false, 2: false, 3: true, 10: true, 11: true} {
		if got := c2.Contains(key(i)); got != want {
			t.Errorf("Contains(key %d) after two fills into a full cache: got %v, want %v", i, got, want)
		}
	}

	// Reopening with a smaller cap evicts the least recently used.
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	c3 := openTest(t, dir, 200, testOpt{now: clk.now})
	if st := c3.Stats(); st.Count != 2 || st.Bytes != 200 || len(blobFiles(t, dir)) != 2 {
		t.Errorf("reopen with a smaller cap: got Count %d Bytes %d files %d, want 2, 200, 2", st.Count, st.Bytes, len(blobFiles(t, dir)))
	}
}

func TestMaxAge(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	c := openTest(t, dir, 1<<20, testOpt{now: clk.now})
	mustFill(t, c, key(1), []byte(`{"annotations": []}`)).Release()
	clk.add(90 * time.Second)
	tests := []struct {
		maxAge time.Duration
		want   bool
	}{
		{0, true},
		{time.Hour, true},
		{91 * time.Second, true},
		{89 * time.Second, false},
	}
	for _, tt := range tests {
		h, ok := c.Get(key(1), tt.maxAge)
		if ok != tt.want {
			t.Errorf("Get(maxAge %v) of a 90 s old blob: got %v, want %v", tt.maxAge, ok, tt.want)
		}
		if ok {
			h.Release()
		}
	}
	// The age survives a reopen: it is the file's mtime.
	c.Close()
	c2 := openTest(t, dir, 1<<20, testOpt{now: clk.now})
	if _, ok := c2.Get(key(1), 89*time.Second); ok {
		t.Errorf("Get(maxAge 89s) after reopen: got hit, want miss")
	}
	// A refill makes it fresh again.
	mustFill(t, c2, key(1), []byte(`{"annotations": [1]}`)).Release()
	h, ok := c2.Get(key(1), time.Second)
	if !ok {
		t.Fatalf("Get after refill: got miss, want hit")
	}
	if got := string(readHandle(t, h)); got != `{"annotations": [1]}` {
		t.Errorf("content after refill: got %q", got)
	}
	h.Release()
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Errorf("files after refill with a new size: got %d, want 1", n)
	}
}

func TestReplaceKeepsOpenHandles(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 1<<20, testOpt{})
	old := mustFill(t, c, key(1), []byte("version one"))
	h := mustFill(t, c, key(1), []byte("version two, longer"))
	h.Release()
	if got := string(readHandle(t, old)); got != "version one" {
		t.Errorf("old handle after replace: got %q, want %q", got, "version one")
	}
	g, _ := c.Get(key(1), 0)
	if got := string(readHandle(t, g)); got != "version two, longer" {
		t.Errorf("Get after replace: got %q", got)
	}
	g.Release()
	if st := c.Stats(); st.Bytes != int64(len("version one")+len("version two, longer")) {
		t.Errorf("Bytes while the old version is open: got %d, want both charged", st.Bytes)
	}
	old.Release()
	if st := c.Stats(); st.Bytes != int64(len("version two, longer")) || st.Count != 1 {
		t.Errorf("after releasing the old version: got Bytes %d Count %d", st.Bytes, st.Count)
	}
}

func TestRemoveAndClone(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 1<<20, testOpt{})
	data := blobData(key(1), 1000)
	h := mustFill(t, c, key(1), data)
	c.Remove(key(1))
	if c.Contains(key(1)) {
		t.Errorf("Contains after Remove: got true, want false")
	}
	if n := len(blobFiles(t, dir)); n != 0 {
		t.Errorf("files after Remove: got %d, want 0", n)
	}
	clone, err := h.Clone()
	if err != nil {
		t.Fatalf("Clone: %v", err)
	}
	h.Release()
	if got := readHandle(t, clone); !bytes.Equal(got, data) {
		t.Errorf("clone of a removed blob: content differs")
	}
	if st := c.Stats(); st.Bytes != 1000 || st.Pinned != 1 {
		t.Errorf("while the clone is open: got Bytes %d Pinned %d, want 1000 and 1", st.Bytes, st.Pinned)
	}
	clone.Release()
	if st := c.Stats(); st.Bytes != 0 || st.Pinned != 0 {
		t.Errorf("after releasing: got Bytes %d Pinned %d, want 0 and 0", st.Bytes, st.Pinned)
	}
	if _, err := clone.Clone(); err == nil {
		t.Errorf("Clone of a released handle: got nil error")
	}
}

func TestDeletedBehindIndexIsMiss(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 1<<20, testOpt{})
	mustFill(t, c, key(1), blobData(key(1), 100)).Release()
	for _, p := range blobFiles(t, dir) {
		os.Remove(p)
	}
	if _, ok := c.Get(key(1), 0); ok {
		t.Errorf("Get of a deleted file: got hit, want miss")
	}
	if st := c.Stats(); st.Count != 0 || st.Bytes != 0 {
		t.Errorf("Stats after the miss: got Count %d Bytes %d, want 0 and 0", st.Count, st.Bytes)
	}
}

func TestTwoInstancesShareDir(t *testing.T) {
	dir := t.TempDir()
	a := openTest(t, dir, 1<<20, testOpt{})
	b := openTest(t, dir, 1<<20, testOpt{})
	data := blobData(key(1), 50_000)

	// B never sees A's blob half-written.
	half := make(chan struct{})
	finish := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		h, err := a.Fill(context.Background(), key(1), int64(len(data)), func(_ context.Context, w io.Writer) error {
			w.Write(data[:len(data)/2])
			close(half)
			<-finish
			_, err := w.Write(data[len(data)/2:])
			return err
		})
		if err == nil {
			h.Release()
		}
		done <- err
	}()
	<-half
	if _, ok := b.Get(key(1), 0); ok {
		t.Errorf("B.Get during A's fill: got hit, want miss")
	}
	close(finish)
	if err := <-done; err != nil {
		t.Fatalf("A.Fill: %v", err)
	}
	h, ok := b.Get(key(1), 0)
	if !ok {
		t.Fatalf("B.Get after A's fill: got miss, want hit (adopted)")
	}
	if got := readHandle(t, h); !bytes.Equal(got, data) {
		t.Errorf("B.Get: content differs")
	}
	h.Release()

	// A removes it: B's next Get is a miss, not an error.
	a.Remove(key(1))
	if _, ok := b.Get(key(1), 0); ok {
		t.Errorf("B.Get after A.Remove: got hit, want miss")
	}

	// Concurrent fills in A and B of the same keys, reads in both: every hit
	// is a complete blob.
	var wg sync.WaitGroup
	for g, c := range []*Cache{a, b, a, b} {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 200 {
				k := key(100 + rng.IntN(20))
				want := blobData(k, 2000+int(k[0]))
				if h, ok := c.Get(k, 0); ok {
					if got := readHandle(t, h); !bytes.Equal(got, want) {
						t.Errorf("instance %d: Get(%s) returned %d bytes, want the complete %d", g, k[:8], len(got), len(want))
					}
					h.Release()
					continue
				}
				h, err := c.Fill(context.Background(), k, int64(len(want)), func(_ context.Context, w io.Writer) error {
					for i := 0; i < len(want); i += 500 {
						if _, err := w.Write(want[i:min(i+500, len(want))]); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Errorf("Fill: %v", err)
					continue
				}
				h.Release()
			}
		})
	}
	wg.Wait()
}

func TestModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c := openTest(t, dir, 1<<20, testOpt{})
	h := mustFill(t, c, key(1), []byte("secret"))
	defer h.Release()
	for _, tt := range []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{filepath.Join(dir, string(key(1)[:2])), 0o700 | os.ModeDir},
		{filepath.Join(dir, "tmp"), 0o700 | os.ModeDir},
		{c.stage.dir, 0o700 | os.ModeDir},
		{c.stage.lockPath, 0o600},
		{h.e.path, 0o600},
	} {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != tt.want {
			t.Errorf("mode of %s: got %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 1<<20, testOpt{})
	kept := mustFill(t, c, key(1), []byte("kept open"))
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Fill(context.Background(), key(2), 10, func(ctx context.Context, w io.Writer) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
		errc <- err
	}()
	<-started
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("in-flight Fill at Close: got %v, want context.Canceled", err)
	}
	if _, err := c.Fill(context.Background(), key(3), 1, writeAll([]byte("x"))); !errors.Is(err, ErrClosed) {
		t.Errorf("Fill after Close: got %v, want ErrClosed", err)
	}
	if _, ok := c.Get(key(1), 0); ok {
		t.Errorf("Get after Close: got hit, want miss")
	}
	if got := string(readHandle(t, kept)); got != "kept open" {
		t.Errorf("handle across Close: got %q", got)
	}
	kept.Release()
	if _, err := os.Stat(c.stage.dir); !os.IsNotExist(err) {
		t.Errorf("staging directory after Close: got %v, want removed", err)
	}
}
