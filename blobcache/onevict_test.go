package blobcache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// evictLog records the calls of an OnEvict function.
type evictLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *evictLog) record(k Key, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf("%s:%d", k[:8], size))
}

func (l *evictLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.calls
	l.calls = nil
	return out
}

func call(k Key, size int64) string { return fmt.Sprintf("%s:%d", k[:8], size) }

func TestOnEvictReportsEachDeparture(t *testing.T) {
	fill := func(t *testing.T, c *Cache, i, size int) { mustFill(t, c, key(i), blobData(key(i), size)).Release() }
	tests := []struct {
		name string
		cap  int64
		// before runs unobserved; then the function registered with
		// OnEvict records what run does.
		before func(t *testing.T, c *Cache, dir string)
		run    func(t *testing.T, c *Cache, dir string)
		want   []string
	}{
		{
			name:   "evicted by a fill",
			cap:    300,
			before: func(t *testing.T, c *Cache, _ string) { fill(t, c, 1, 100); fill(t, c, 2, 100); fill(t, c, 3, 100) },
			run:    func(t *testing.T, c *Cache, _ string) { fill(t, c, 4, 100) },
			want:   []string{call(key(1), 100)},
		},
		{
			name:   "evicted by a fill of unknown size as it grows",
			cap:    300,
			before: func(t *testing.T, c *Cache, _ string) { fill(t, c, 1, 100); fill(t, c, 2, 90); fill(t, c, 3, 100) },
			run: func(t *testing.T, c *Cache, _ string) {
				h, err := c.Fill(context.Background(), key(4), -1, writeAll(blobData(key(4), 150)))
				if err != nil {
					t.Fatal(err)
				}
				h.Release()
			},
			want: []string{call(key(1), 100), call(key(2), 90)},
		},
		{
			name:   "removed, then removed again",
			cap:    1000,
			before: func(t *testing.T, c *Cache, _ string) { fill(t, c, 1, 100) },
			run:    func(t *testing.T, c *Cache, _ string) { c.Remove(key(1)); c.Remove(key(1)) },
			want:   []string{call(key(1), 100)},
		},
		{
			name: "removed while pinned: reported at Remove, not again at Release",
			cap:  1000,
			run: func(t *testing.T, c *Cache, _ string) {
				h := mustFill(t, c, key(1), blobData(key(1), 100))
				c.Remove(key(1))
				h.Release()
			},
			want: []string{call(key(1), 100)},
		},
		{
			name:   "file deleted behind the index",
			cap:    1000,
			before: func(t *testing.T, c *Cache, _ string) { fill(t, c, 1, 100) },
			run: func(t *testing.T, c *Cache, dir string) {
				for _, p := range blobFiles(t, dir) {
					os.Remove(p)
				}
				if _, ok := c.Get(key(1), 0); ok {
					t.Fatal("Get of a deleted blob: got a hit")
				}
			},
			want: []string{call(key(1), 100)},
		},
		{
			name:   "evicted to adopt another process's blob",
			cap:    200,
			before: func(t *testing.T, c *Cache, _ string) { fill(t, c, 1, 100); fill(t, c, 2, 100) },
			run: func(t *testing.T, c *Cache, dir string) {
				other := openTest(t, dir, 1000, testOpt{})
				fill(t, other, 3, 100)
				h, ok := c.Get(key(3), 0)
				if !ok {
					t.Fatal("Get of the other instance's blob: got a miss")
				}
				h.Release()
			},
			want: []string{call(key(1), 100)},
		},
		{
			name:   "replaced by a fill of the same key: still cached, not reported",
			cap:    1000,
			before: func(t *testing.T, c *Cache, _ string) { fill(t, c, 1, 100) },
			run:    func(t *testing.T, c *Cache, _ string) { fill(t, c, 1, 120) },
		},
		{
			name: "removal of a key not in the index",
			cap:  1000,
			run:  func(t *testing.T, c *Cache, _ string) { c.Remove(key(1)) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := openTest(t, dir, tt.cap, testOpt{})
			if tt.before != nil {
				tt.before(t, c, dir)
			}
			var log evictLog
			defer c.OnEvict(log.record)()
			tt.run(t, c, dir)
			if got := log.take(); !slices.Equal(got, tt.want) {
				t.Errorf("OnEvict calls: got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestOnEvictOutsideLock calls back into the cache from the OnEvict
// function, as a caller keeping its own books would: with the function run
// under the cache's lock, this would deadlock.
func TestOnEvictOutsideLock(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, 300, testOpt{})
	for i := range 3 {
		mustFill(t, c, key(i), blobData(key(i), 100)).Release()
	}
	var problems []string
	c.OnEvict(func(k Key, size int64) {
		if c.Contains(k) {
			problems = append(problems, fmt.Sprintf("%s still in the index when reported", k[:8]))
		}
		if files := c.filesOf(k); len(files) != 0 {
			problems = append(problems, fmt.Sprintf("%s still on disk when reported: %v", k[:8], files))
		}
		_ = c.Stats()
		if h, ok := c.Get(key(2), 0); ok {
			h.Release()
		}
		if k == key(1) {
			c.Remove(key(2)) // reported from within this call
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		mustFill(t, c, key(10), blobData(key(10), 100)) // evicts key 0
		c.Remove(key(1))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Fill and Remove with an OnEvict function that calls the cache: no return within 10 s (deadlock)")
	}
	if len(problems) > 0 {
		t.Errorf("got %v, want none", problems)
	}
	if st := c.Stats(); st.Count != 1 {
		t.Errorf("blobs left: got %d, want 1 (key 10)", st.Count)
	}
}

// TestOnEvictConcurrentFills fills distinct keys from many goroutines into a
// small cache (run it with -race): every evicted blob is reported exactly
// once, and only evicted blobs are.
func TestOnEvictConcurrentFills(t *testing.T) {
	const goroutines, perGoroutine = 16, 60
	c := openTest(t, t.TempDir(), 32<<10, testOpt{})
	var mu sync.Mutex
	reported := map[Key]int{}
	sizes := map[Key]int64{}
	c.OnEvict(func(k Key, size int64) {
		_ = c.Stats() // takes the cache's lock
		mu.Lock()
		reported[k]++
		sizes[k] = size
		mu.Unlock()
	})
	var wg sync.WaitGroup
	want := map[Key]int64{}
	var wantMu sync.Mutex
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range perGoroutine {
				k := key(g*perGoroutine + i)
				size := 1 + rng.IntN(2<<10)
				h, err := c.Fill(context.Background(), k, int64(size), writeAll(blobData(k, size)))
				if err != nil {
					t.Errorf("Fill: %v", err)
					continue
				}
				wantMu.Lock()
				want[k] = int64(size)
				wantMu.Unlock()
				h.Release()
			}
		})
	}
	wg.Wait()
	st := c.Stats()
	mu.Lock()
	defer mu.Unlock()
	if got := uint64(len(reported)); got != st.Evictions {
		t.Errorf("blobs reported: got %d, want the %d evictions", got, st.Evictions)
	}
	if st.Evictions == 0 {
		t.Errorf("evictions: got 0, want many (the fills are far bigger than the cache)")
	}
	for k, n := range reported {
		if n != 1 {
			t.Errorf("blob %s reported %d times, want once", k[:8], n)
		}
		if sizes[k] != want[k] {
			t.Errorf("blob %s reported with size %d, want %d", k[:8], sizes[k], want[k])
		}
		if c.Contains(k) {
			t.Errorf("blob %s reported but still in the index", k[:8])
		}
	}
	for k := range want {
		if reported[k] == 0 && !c.Contains(k) {
			t.Errorf("blob %s left the index unreported", k[:8])
		}
	}
}

func TestOnEvictStop(t *testing.T) {
	c := openTest(t, t.TempDir(), 100, testOpt{})
	var a, b evictLog
	stopA := c.OnEvict(a.record)
	c.OnEvict(b.record)
	mustFill(t, c, key(1), blobData(key(1), 100)).Release()
	mustFill(t, c, key(2), blobData(key(2), 100)).Release()
	stopA()
	stopA()
	mustFill(t, c, key(3), blobData(key(3), 100)).Release()
	if got, want := a.take(), []string{call(key(1), 100)}; !slices.Equal(got, want) {
		t.Errorf("stopped function: got %v, want %v", got, want)
	}
	if got, want := b.take(), []string{call(key(1), 100), call(key(2), 100)}; !slices.Equal(got, want) {
		t.Errorf("other function: got %v, want %v", got, want)
	}
}
