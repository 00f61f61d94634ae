package prefetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

var discard = slog.New(slog.DiscardHandler)

func newCache(t *testing.T, maxBytes int64) *blobcache.Cache {
	t.Helper()
	c, err := blobcache.Open(blobcache.Options{Dir: t.TempDir(), MaxBytes: maxBytes, MinFreeRatio: -1, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newPrefetcher(t *testing.T, opts Options) *Prefetcher {
	t.Helper()
	opts.Logger = discard
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p.backoff = time.Millisecond
	t.Cleanup(p.Close)
	return p
}

func key(i int) blobcache.Key { return blobcache.KeyOf("prefetch-test", fmt.Sprint(i)) }

func data(i, size int) []byte {
	return bytes.Repeat([]byte{byte(i)}, size)
}

// source is a fake blob server: it counts fetches per key and can hold them
// until a gate opens.
type source struct {
	mu      sync.Mutex
	fetches map[blobcache.Key]int
	order   []blobcache.Key
	gate    chan struct{} // nil: no wait
}

func newSource() *source { return &source{fetches: make(map[blobcache.Key]int)} }

func (s *source) count(k blobcache.Key) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches[k]
}

func (s *source) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.fetches {
		n += c
	}
	return n
}

func (s *source) req(i, size int) Request {
	k := key(i)
	return Request{Key: k, Size: int64(size), Name: fmt.Sprintf("blob-%d", i), Fetch: func(ctx context.Context, w io.Writer) error {
		s.mu.Lock()
		s.fetches[k]++
		s.order = append(s.order, k)
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		_, err := w.Write(data(i, size))
		return err
	}}
}

func readAll(t *testing.T, h *blobcache.Handle) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(h.File(), 0, h.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// getResult is what a Get returned.
type getResult struct {
	h   *blobcache.Handle
	err error
}

// getLater runs p.Get(ctx, req) in a goroutine; the channel gets its
// result.
func getLater(ctx context.Context, p *Prefetcher, req Request) <-chan getResult {
	res := make(chan getResult, 1)
	go func() {
		h, err := p.Get(ctx, req)
		res <- getResult{h, err}
	}()
	return res
}

// wantBlob checks that a Get succeeded with want, and releases its handle.
func wantBlob(t *testing.T, what string, r getResult, want []byte) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v", what, r.err)
	}
	if got := readAll(t, r.h); !bytes.Equal(got, want) {
		t.Errorf("%s: wrong content", what)
	}
	r.h.Release()
}

// eventually waits up to 5 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, 5*time.Second, cond)
}

func TestGetSingleFlight(t *testing.T) {
	const n = 50
	c := newCache(t, 1<<20)
	p := newPrefetcher(t, Options{Cache: c})
	src := newSource()
	src.gate = make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			h, err := p.Get(context.Background(), src.req(1, 1000))
			if err != nil {
				t.Errorf("Get: %v", err)
				return
			}
			if got := readAll(t, h); !bytes.Equal(got, data(1, 1000)) {
				t.Errorf("Get: got %d bytes, want the blob", len(got))
			}
			h.Release()
		})
	}
	eventually(t, "all Gets to join", func() bool { return p.Stats().Joined == n-1 })
	close(src.gate)
	wg.Wait()
	if got := src.count(key(1)); got != 1 {
		t.Errorf("fetches for %d concurrent Gets: got %d, want 1", n, got)
	}
	if st := c.Stats(); st.Pinned != 0 {
		t.Errorf("pinned blobs after all releases: got %d, want 0", st.Pinned)
	}
	if st := p.Stats(); st.Fetched != 1 || st.InFlight != 0 {
		t.Errorf("Stats: got Fetched %d InFlight %d, want 1 and 0", st.Fetched, st.InFlight)
	}
}

func TestGetHit(t *testing.T) {
	c := newCache(t, 1<<20)
	p := newPrefetcher(t, Options{Cache: c})
	src := newSource()
	for range 3 {
		h, err := p.Get(context.Background(), src.req(1, 10))
		if err != nil {
			t.Fatal(err)
		}
		h.Release()
	}
	if got, st := src.count(key(1)), p.Stats(); got != 1 || st.Hits != 2 {
		t.Errorf("three Gets: got %d fetches and %d hits, want 1 and 2", got, st.Hits)
	}
}

func TestGetOvertakesReadahead(t *testing.T) {
	c := newCache(t, 1<<20)
	p := newPrefetcher(t, Options{Cache: c, Workers: 1})
	slow := newSource()
	slow.gate = make(chan struct{})
	var reqs []Request
	for i := range 100 {
		reqs = append(reqs, slow.req(i, 100))
	}
	p.Enqueue(reqs)
	eventually(t, "the worker to start a readahead", func() bool { return slow.total() == 1 })

	fast := newSource()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := p.Get(ctx, fast.req(1000, 100))
	if err != nil {
		t.Fatalf("Get behind a blocked readahead queue: %v", err)
	}
	h.Release()
	if st := p.Stats(); st.Queued != 99 {
		t.Errorf("queued readahead after the Get: got %d, want 99 (the Get did not wait for it)", st.Queued)
	}
	close(slow.gate)
}

func TestEnqueueOrderAndDedup(t *testing.T) {
	c := newCache(t, 1<<20)
	p := newPrefetcher(t, Options{Cache: c, Workers: 1})
	src := newSource()
	src.gate = make(chan struct{})
	h, err := c.Fill(context.Background(), key(9), 1, func(_ context.Context, w io.Writer) error {
		_, err := w.Write([]byte{9})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Release()

	p.Enqueue([]Request{src.req(1, 10), src.req(2, 10), src.req(3, 10), src.req(1, 10), src.req(9, 1)})
	eventually(t, "the first readahead", func() bool { return src.total() == 1 })
	p.Enqueue([]Request{src.req(3, 10), src.req(1, 10), src.req(4, 10), src.req(5, 10), src.req(6, 10)})
	if got := p.Stats().Queued; got != 5 {
		t.Errorf("queued after duplicates of queued, in-flight and cached keys: got %d, want 5 (2 3 4 5 6)", got)
	}
	close(src.gate)
	eventually(t, "the queue to drain", func() bool { st := p.Stats(); return st.Queued == 0 && st.InFlight == 0 })
	want := []blobcache.Key{key(1), key(2), key(3), key(4), key(5), key(6)}
	src.mu.Lock()
	got := src.order
	src.mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fetch order: got %v, want %v", got, want)
	}
}

func TestReadaheadWindow(t *testing.T) {
	const (
		cacheBytes = 10_000
		blob       = 100
		n          = 300 // a walk three times the cache
		window     = cacheBytes / 4
	)
	c := newCache(t, cacheBytes)
	p := newPrefetcher(t, Options{Cache: c, Workers: 8})
	src := newSource()
	var reqs []Request
	for i := range n {
		reqs = append(reqs, src.req(i, blob))
	}

	stop := make(chan struct{})
	var mon sync.WaitGroup
	var worst atomic.Int64
	mon.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if w := p.Stats().WindowBytes; w > worst.Load() {
				worst.Store(w)
			}
			time.Sleep(20 * time.Microsecond)
		}
	})

	p.Enqueue(reqs)
	eventually(t, "the window to fill", func() bool { return p.Stats().Fetched == window/blob })
	time.Sleep(20 * time.Millisecond)
	if st := p.Stats(); st.Fetched != window/blob || st.Queued != n-window/blob || st.WindowBytes != window {
		t.Errorf("with nobody reading: got Fetched %d Queued %d WindowBytes %d, want %d, %d, %d",
			st.Fetched, st.Queued, st.WindowBytes, window/blob, n-window/blob, window)
	}

	for i, r := range reqs {
		h, err := p.Get(context.Background(), r)
		if err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
		if got := readAll(t, h); !bytes.Equal(got, data(i, blob)) {
			t.Fatalf("Get %d: wrong content", i)
		}
		h.Release()
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // let readahead get ahead again
		}
	}
	close(stop)
	mon.Wait()

	if w := worst.Load(); w > window {
		t.Errorf("window peaked at %d bytes, want <= %d", w, window)
	}
	for i := range n {
		if got := src.count(key(i)); got != 1 {
			t.Errorf("blob %d fetched %d times, want 1 (evicted before it was read?)", i, got)
		}
	}
	st, cs := p.Stats(), c.Stats()
	if st.Hits+st.Joined < n/2 {
		t.Errorf("Gets served by readahead: got %d hits + %d joins, want most of %d", st.Hits, st.Joined, n)
	}
	if cs.Evictions == 0 {
		t.Errorf("cache evictions: got 0, want some (the walk is bigger than the cache)")
	}
	if st.WindowBytes != 0 {
		t.Errorf("window after reading everything: got %d bytes, want 0", st.WindowBytes)
	}
}

// TestWindowReleasedByEviction checks that a prefetched blob the cache lets
// go unread gives its window room back through the cache's OnEvict call,
// before the Remove or Fill that evicted it returns (no timer, no polling),
// and that a worker waiting for room then goes on.
func TestWindowReleasedByEviction(t *testing.T) {
	// A 1000-byte cache: the window holds 250 bytes, two 100-byte blobs.
	tests := []struct {
		name       string
		evict      func(t *testing.T, c *blobcache.Cache)
		wantWindow int64
	}{
		{"removed", func(t *testing.T, c *blobcache.Cache) { c.Remove(key(0)) }, 100},
		{"evicted by a fill", func(t *testing.T, c *blobcache.Cache) {
			h, err := c.Fill(context.Background(), key(100), 1000, func(_ context.Context, w io.Writer) error {
				_, err := w.Write(data(100, 1000))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			h.Release()
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, 1000)
			p := newPrefetcher(t, Options{Cache: c, Workers: 2})
			src := newSource()
			p.Enqueue([]Request{src.req(0, 100), src.req(1, 100)})
			eventually(t, "both readaheads", func() bool { st := p.Stats(); return st.Fetched == 2 && st.InFlight == 0 })
			if got := p.Stats().WindowBytes; got != 200 {
				t.Fatalf("window with two unread blobs: got %d, want 200", got)
			}
			tt.evict(t, c)
			if got := p.Stats().WindowBytes; got != tt.wantWindow {
				t.Errorf("window as the eviction returns: got %d bytes, want %d", got, tt.wantWindow)
			}
		})
	}

	t.Run("a worker waiting for room goes on", func(t *testing.T) {
		c := newCache(t, 1000)
		p := newPrefetcher(t, Options{Cache: c, Workers: 2})
		src := newSource()
		p.Enqueue([]Request{src.req(0, 100), src.req(1, 100), src.req(2, 100)})
		eventually(t, "the window to fill", func() bool { st := p.Stats(); return st.Fetched == 2 && st.InFlight == 0 })
		if st := p.Stats(); st.Queued != 1 || src.count(key(2)) != 0 {
			t.Fatalf("with a full window: got %d queued and blob 2 fetched %d times, want 1 and 0", st.Queued, src.count(key(2)))
		}
		c.Remove(key(0))
		eventually(t, "the third readahead", func() bool { return c.Contains(key(2)) })
		if got := p.Stats().WindowBytes; got != 200 {
			t.Errorf("window after the removal and one more readahead: got %d, want 200", got)
		}
	})

	t.Run("after Close the cache no longer calls the prefetcher", func(t *testing.T) {
		c := newCache(t, 1000)
		p := newPrefetcher(t, Options{Cache: c, Workers: 2})
		src := newSource()
		p.Enqueue([]Request{src.req(0, 100)})
		eventually(t, "the readahead", func() bool { st := p.Stats(); return st.Fetched == 1 && st.InFlight == 0 })
		p.Close()
		c.Remove(key(0))
		if got := p.Stats().WindowBytes; got != 100 {
			t.Errorf("window of a closed prefetcher after an eviction: got %d, want 100 (unchanged)", got)
		}
	})
}

func TestRetries(t *testing.T) {
	errPermanent := errors.New("404 not found")
	tests := []struct {
		name        string
		retries     int
		failures    int // attempts that fail before one succeeds
		failWith    error
		wantErr     error
		wantCalls   int
		wantRetries uint64
	}{
		{"short blobs then success", 3, 2, nil, nil, 3, 2},
		{"short blobs exhaust retries", 1, 5, nil, blobcache.ErrShortBlob, 2, 1},
		{"network error then success", 3, 1, errors.New("connection reset"), nil, 2, 1},
		{"permanent error not retried", 3, 5, errPermanent, errPermanent, 1, 0},
		{"no retries", -1, 1, nil, blobcache.ErrShortBlob, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, 1<<20)
			p := newPrefetcher(t, Options{Cache: c, Retries: tt.retries, Retryable: func(err error) bool {
				return !errors.Is(err, errPermanent)
			}})
			calls := 0
			req := Request{Key: key(1), Size: 100, Fetch: func(_ context.Context, w io.Writer) error {
				calls++
				if calls <= tt.failures {
					w.Write(make([]byte, 40)) // a truncated body
					return tt.failWith
				}
				_, err := w.Write(data(1, 100))
				return err
			}}
			h, err := p.Get(context.Background(), req)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Get: got %v, want %v", err, tt.wantErr)
			}
			if h != nil {
				if got := readAll(t, h); !bytes.Equal(got, data(1, 100)) {
					t.Errorf("content after retries differs")
				}
				h.Release()
			}
			if calls != tt.wantCalls || p.Stats().Retries != tt.wantRetries {
				t.Errorf("got %d calls and %d retries, want %d and %d", calls, p.Stats().Retries, tt.wantCalls, tt.wantRetries)
			}
			if c.Contains(key(1)) != (tt.wantErr == nil) {
				t.Errorf("cached after %v: got %v", err, c.Contains(key(1)))
			}
		})
	}
}

// blocker is a Fetch that waits for release or its context, reporting
// whether its context was cancelled.
type blocker struct {
	started   chan struct{}
	release   chan struct{}
	cancelled chan struct{}
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}), release: make(chan struct{}), cancelled: make(chan struct{})}
}

func (b *blocker) req(i int) Request {
	var once sync.Once
	return Request{Key: key(i), Size: 10, Name: fmt.Sprint(i), Fetch: func(ctx context.Context, w io.Writer) error {
		once.Do(func() { close(b.started) })
		select {
		case <-b.release:
			_, err := w.Write(data(i, 10))
			return err
		case <-ctx.Done():
			close(b.cancelled)
			return ctx.Err()
		}
	}}
}

func (b *blocker) wasCancelled() bool {
	select {
	case <-b.cancelled:
		return true
	default:
		return false
	}
}

// deadlineCtx is a context whose deadline passes when expire is called.
type deadlineCtx struct {
	context.Context // values
	done            chan struct{}
}

func newDeadlineCtx() *deadlineCtx {
	return &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.done }

func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (c *deadlineCtx) expire() { close(c.done) }

func TestCancelSemantics(t *testing.T) {
	t.Run("the last waiter leaves: the fetch goes on and fills the cache", func(t *testing.T) {
		c := newCache(t, 1<<20)
		p := newPrefetcher(t, Options{Cache: c})
		b := newBlocker()
		ctx, cancel := context.WithCancel(context.Background())
		first := getLater(ctx, p, b.req(1))
		<-b.started
		cancel()
		if err := (<-first).err; !errors.Is(err, context.Canceled) {
			t.Errorf("Get: got %v, want context.Canceled", err)
		}
		close(b.release)
		eventually(t, "the fetch to end", func() bool { return p.Stats().InFlight == 0 })
		if b.wasCancelled() {
			t.Errorf("fetch cancelled when its only waiter left")
		}
		if !c.Contains(key(1)) {
			t.Errorf("the fetch nobody waited for: not cached")
		}
		if st := c.Stats(); st.Pinned != 0 {
			t.Errorf("pinned blobs after the fetch ended: got %d, want 0", st.Pinned)
		}
	})

	t.Run("an interrupted Get that asks again joins the same fetch", func(t *testing.T) {
		// An interrupted open: the kernel cancels the FUSE request, the
		// reader's libc or Go runtime restarts the system call at once.
		c := newCache(t, 1<<20)
		p := newPrefetcher(t, Options{Cache: c})
		b := newBlocker()
		var fetches atomic.Int32
		req := b.req(1)
		fetch := req.Fetch
		req.Fetch = func(ctx context.Context, w io.Writer) error {
			fetches.Add(1)
			return fetch(ctx, w)
		}
		for i := range uint64(3) {
			ctx, cancel := context.WithCancel(context.Background())
			first := getLater(ctx, p, req)
			if i == 0 {
				<-b.started
			} else {
				eventually(t, "the Get to join the fetch", func() bool { return p.Stats().Joined == i })
			}
			cancel()
			if err := (<-first).err; !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted Get: got %v, want context.Canceled", err)
			}
		}
		again := getLater(context.Background(), p, req)
		eventually(t, "the Gets to join the fetch", func() bool { return p.Stats().Joined == 3 })
		close(b.release)
		wantBlob(t, "Get after three interruptions", <-again, data(1, 10))
		if got := fetches.Load(); got != 1 {
			t.Errorf("fetches for four Gets of one key, three of them interrupted: got %d, want 1", got)
		}
	})

	t.Run("the last waiter's deadline passes: the fetch is cancelled", func(t *testing.T) {
		c := newCache(t, 1<<20)
		p := newPrefetcher(t, Options{Cache: c})
		b := newBlocker()
		ctx := newDeadlineCtx()
		first := getLater(ctx, p, b.req(1))
		<-b.started
		ctx.expire()
		if err := (<-first).err; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Get: got %v, want context.DeadlineExceeded", err)
		}
		select {
		case <-b.cancelled:
		case <-time.After(5 * time.Second):
			t.Fatal("fetch not cancelled after its only waiter gave up")
		}
		eventually(t, "the call to end", func() bool { return p.Stats().InFlight == 0 })
		if c.Contains(key(1)) {
			t.Errorf("cancelled fetch was cached")
		}
		// A later Get starts afresh.
		h, err := p.Get(context.Background(), newSource().req(1, 10))
		if err != nil {
			t.Fatalf("Get after the cancelled fetch: %v", err)
		}
		h.Release()
	})

	t.Run("readahead of a key being fetched by a Get outlives the Get's deadline", func(t *testing.T) {
		c := newCache(t, 1<<20)
		p := newPrefetcher(t, Options{Cache: c})
		b := newBlocker()
		ctx := newDeadlineCtx()
		first := getLater(ctx, p, b.req(1))
		<-b.started
		p.Enqueue([]Request{b.req(1)})
		ctx.expire()
		if err := (<-first).err; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Get: got %v, want context.DeadlineExceeded", err)
		}
		close(b.release)
		eventually(t, "the fetch to finish", func() bool { return c.Contains(key(1)) })
		if b.wasCancelled() {
			t.Errorf("fetch cancelled although readahead asked for it")
		}
	})

	t.Run("one of two waiters leaves: fetch goes on", func(t *testing.T) {
		c := newCache(t, 1<<20)
		p := newPrefetcher(t, Options{Cache: c})
		b := newBlocker()
		ctx, cancel := context.WithCancel(context.Background())
		first := getLater(ctx, p, b.req(1))
		<-b.started
		stay := getLater(context.Background(), p, b.req(1))
		eventually(t, "the second Get to join", func() bool { return p.Stats().Joined == 1 })
		cancel()
		if err := (<-first).err; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Get: got %v, want context.Canceled", err)
		}
		close(b.release)
		wantBlob(t, "remaining Get", <-stay, data(1, 10))
		if b.wasCancelled() {
			t.Errorf("fetch cancelled while a waiter remained")
		}
	})

	t.Run("readahead outlives a Get that joined it", func(t *testing.T) {
		c := newCache(t, 1<<20)
		p := newPrefetcher(t, Options{Cache: c})
		b := newBlocker()
		p.Enqueue([]Request{b.req(1)})
		<-b.started
		ctx, cancel := context.WithCancel(context.Background())
		first := getLater(ctx, p, b.req(1))
		eventually(t, "the Get to join", func() bool { return p.Stats().Joined == 1 })
		cancel()
		if err := (<-first).err; !errors.Is(err, context.Canceled) {
			t.Errorf("Get: got %v, want context.Canceled", err)
		}
		close(b.release)
		eventually(t, "the readahead to finish", func() bool { return c.Contains(key(1)) })
		if b.wasCancelled() {
			t.Errorf("readahead cancelled by a Get leaving")
		}
		if got := p.Stats().WindowBytes; got != 10 {
			t.Errorf("window after an unread readahead: got %d, want 10", got)
		}
	})

	t.Run("fetch errors are wrapped", func(t *testing.T) {
		c := newCache(t, 1<<20)
		p := newPrefetcher(t, Options{Cache: c, Retries: -1})
		errBoom := errors.New("boom")
		_, err := p.Get(context.Background(), Request{Key: key(1), Size: 1, Fetch: func(context.Context, io.Writer) error { return errBoom }})
		if !errors.Is(err, errBoom) {
			t.Errorf("Get: got %v, want errors.Is(err, errBoom)", err)
		}
	})
}

func TestCloseStopsEverything(t *testing.T) {
	c := newCache(t, 1<<20)
	base := runtime.NumGoroutine()
	p, err := New(Options{Cache: c, Workers: 8, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	var blockers []*blocker
	var reqs []Request
	for i := range 50 {
		b := newBlocker()
		blockers = append(blockers, b)
		reqs = append(reqs, b.req(i))
	}
	p.Enqueue(reqs)
	getter := newBlocker()
	first := getLater(context.Background(), p, getter.req(100))
	<-getter.started
	eventually(t, "the workers to start", func() bool { return p.Stats().InFlight == 9 })

	p.Close()
	if err := (<-first).err; !errors.Is(err, ErrClosed) {
		t.Errorf("Get in flight at Close: got %v, want ErrClosed", err)
	}
	for i, b := range blockers[:8] {
		if !b.wasCancelled() {
			t.Errorf("readahead %d in flight at Close: not cancelled", i)
		}
	}
	if st := p.Stats(); st.Queued != 0 || st.InFlight != 0 {
		t.Errorf("after Close: got Queued %d InFlight %d, want 0 and 0", st.Queued, st.InFlight)
	}
	if _, err := p.Get(context.Background(), newSource().req(1, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: got %v, want ErrClosed", err)
	}
	p.Enqueue(reqs[:1])
	p.Close()
	eventually(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= base })
	if st := c.Stats(); st.Pinned != 0 || st.Reserved != 0 {
		t.Errorf("cache after Close: got Pinned %d Reserved %d, want 0 and 0", st.Pinned, st.Reserved)
	}
}
