package prefetch

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pictofs/pictofs/blobcache"
)

// Defaults of Options.
const (
	DefaultWorkers        = 16
	DefaultReadaheadShare = 0.25
	DefaultRetries        = 3
)

// baseBackoff is the wait before the first retry; it doubles per retry,
// with jitter.
const baseBackoff = 50 * time.Millisecond

// ErrClosed is returned (wrapped) by Get after Close, and by fetches that
// Close cancelled.
var ErrClosed = errors.New("prefetch: closed")

// Request describes one blob to fetch.
type Request struct {
	Key blobcache.Key
	// Size is the expected size in bytes, or -1 if unknown.
	Size int64
	// MaxAge > 0 treats a cached blob filled longer ago as missing
	// (annotation documents with a TTL); 0 means cached blobs never expire.
	MaxAge time.Duration
	// Fetch writes the blob's bytes to w. It may be called again on retry
	// and must return once ctx is done.
	Fetch func(ctx context.Context, w io.Writer) error
	// Name identifies the blob in logs and errors.
	Name string
}

func (r Request) name() string {
	if r.Name != "" {
		return r.Name
	}
	return string(r.Key)
}

// Options configures a Prefetcher. The zero value of each field means its
// default.
type Options struct {
	// Cache receives the blobs (required).
	Cache *blobcache.Cache
	// Workers is the number of readahead workers. Default 16.
	Workers int
	// ReadaheadShare bounds the bytes of prefetched blobs not yet read by a
	// Get, as a share of Cache.MaxBytes(). Default 0.25.
	ReadaheadShare float64
	// Retries is the number of fetch attempts after a failed one (a short
	// blob, a network error), with a small exponential backoff. Default 3;
	// negative means no retry.
	Retries int
	// Retryable reports whether a failed fetch is worth another attempt.
	// Default: every error but cancellation, blobcache.ErrNoSpace and
	// blobcache.ErrLongBlob. A caller that knows its errors (a 404 is final)
	// narrows it.
	Retryable func(error) bool
	// Logger receives readahead failures. Default slog.Default().
	Logger *slog.Logger
}

// Stats is a snapshot of the prefetcher's counters.
type Stats struct {
	Queued      int    // readahead requests waiting for a worker
	InFlight    int    // fetches running (on demand and readahead)
	Fetched     uint64 // fetches that filled the cache
	Failed      uint64 // fetches that failed after their retries
	Retries     uint64 // attempts after a failure
	Joined      uint64 // Gets that joined an in-flight fetch
	Hits        uint64 // Gets answered from the cache
	WindowBytes int64  // bytes prefetched (or being prefetched) and not yet read
	WindowLimit int64  // ReadaheadShare × the cache's MaxBytes
}

// call is one fetch of a key, shared by every Get and readahead of it.
// key, req, ctx, cancel and done never change; h and err are written before
// done is closed.
type call struct {
	key    blobcache.Key
	req    Request
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	h      *blobcache.Handle // held by the call until its last waiter has cloned it
	err    error

	// guarded by Prefetcher.mu:
	waiters   int  // Gets waiting for or taking the result
	readahead bool // asked for as a readahead: never abandoned by a Get
	windowed  bool // holds a window reservation under key
	finished  bool // h and err are set
}

// windowEntry is the window charge of one readahead key.
type windowEntry struct {
	bytes   int64
	fetched bool // in the cache and not yet read; false while in flight
	read    bool // a Get read it from the cache while the readahead was finishing
}

// Prefetcher schedules fetches into a blobcache.Cache. It is safe for
// concurrent use.
type Prefetcher struct {
	cache     *blobcache.Cache
	log       *slog.Logger
	retries   int
	retryable func(error) bool
	limit     int64 // window limit in bytes
	backoff   time.Duration

	ctx       context.Context // cancelled with ErrClosed by Close; parent of every fetch
	cancel    context.CancelCauseFunc
	wg        sync.WaitGroup // workers and on-demand fetches; Add only under mu while !closed
	stopEvict func()         // unregisters evicted from the cache

	mu sync.Mutex
	// guarded by mu:
	closed      bool
	calls       map[blobcache.Key]*call
	queue       *list.List // of Request, FIFO
	queued      map[blobcache.Key]*list.Element
	window      map[blobcache.Key]*windowEntry
	windowBytes int64
	changed     chan struct{} // closed and replaced when the queue, calls or window change
	stats       Stats         // counters; the gauges are filled in by Stats
}

// MaxWorkers is the most readahead workers a Prefetcher takes.
const MaxWorkers = 1024

// Validate checks the values of opts (not Cache, which New needs).
func (opts Options) Validate() error {
	switch {
	case opts.Workers < 0 || opts.Workers > MaxWorkers:
		return fmt.Errorf("%d workers: want 1 to %d (0 for the default, %d)", opts.Workers, MaxWorkers, DefaultWorkers)
	case opts.ReadaheadShare < 0 || opts.ReadaheadShare > 1:
		return fmt.Errorf("readahead share %v: want a share in (0, 1] (0 for the default, %v)", opts.ReadaheadShare, DefaultReadaheadShare)
	}
	return nil
}

// New validates opts and starts a Prefetcher and its workers.
func New(opts Options) (*Prefetcher, error) {
	if opts.Cache == nil {
		return nil, errors.New("prefetch: Options.Cache is required")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("prefetch: %w", err)
	}
	if opts.Workers == 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.ReadaheadShare == 0 {
		opts.ReadaheadShare = DefaultReadaheadShare
	}
	if opts.Retries == 0 {
		opts.Retries = DefaultRetries
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Retryable == nil {
		opts.Retryable = DefaultRetryable
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Prefetcher{
		cache:     opts.Cache,
		log:       opts.Logger.With("component", "prefetch"),
		retries:   opts.Retries,
		retryable: opts.Retryable,
		limit:     int64(opts.ReadaheadShare * float64(opts.Cache.MaxBytes())),
		backoff:   baseBackoff,
		calls:     make(map[blobcache.Key]*call),
		queue:     list.New(),
		queued:    make(map[blobcache.Key]*list.Element),
		window:    make(map[blobcache.Key]*windowEntry),
		changed:   make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancelCause(context.Background())
	p.stopEvict = opts.Cache.OnEvict(p.evicted)
	p.wg.Add(opts.Workers)
	for range opts.Workers {
		go p.worker()
	}
	return p, nil
}

// DefaultRetryable is the default Options.Retryable: every error but
// cancellation, a full cache and a blob longer than announced.
func DefaultRetryable(err error) bool {
	return !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, blobcache.ErrNoSpace) &&
		!errors.Is(err, blobcache.ErrLongBlob) &&
		!errors.Is(err, blobcache.ErrClosed)
}

// Get returns a pinned handle for req.Key: a cache hit at once; otherwise it
// joins the in-flight fetch of the key (on demand or readahead) or starts one
// at once, ahead of any queued readahead. The caller releases the handle.
//
// When ctx ends Get returns ctx's error. The fetch goes on, unless ctx's
// deadline passed and nobody else wants it (see the package comment,
// Cancellation). Fetch errors are returned wrapped, so errors.Is finds the
// error Fetch returned.
func (p *Prefetcher) Get(ctx context.Context, req Request) (*blobcache.Handle, error) {
	if req.Fetch == nil {
		return nil, fmt.Errorf("prefetch %s: Request.Fetch is nil", req.name())
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prefetch %s: %w", req.name(), err)
	}
	p.mu.Lock()
	closed := p.closed
	if we := p.window[req.Key]; we != nil && we.fetched {
		p.consumeLocked(req.Key) // hit or not, it is no longer readahead's
	}
	p.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("prefetch %s: %w", req.name(), ErrClosed)
	}
	if h, ok := p.cache.Get(req.Key, req.MaxAge); ok {
		p.mu.Lock()
		p.stats.Hits++
		p.consumeLocked(req.Key) // its readahead may have filled it just now
		p.mu.Unlock()
		return h, nil
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("prefetch %s: %w", req.name(), ErrClosed)
	}
	c := p.calls[req.Key]
	if c != nil {
		p.stats.Joined++
	} else {
		if el := p.queued[req.Key]; el != nil {
			p.queue.Remove(el)
			delete(p.queued, req.Key)
		}
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(p.ctx, cancel)
		c = p.newCallLocked(req, fctx, func() { stop(); cancel() })
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.execute(c)
		}()
	}
	c.waiters++
	p.mu.Unlock()
	return p.wait(ctx, c)
}

// newCallLocked registers a call for req.Key. p.mu must be held.
func (p *Prefetcher) newCallLocked(req Request, ctx context.Context, cancel context.CancelFunc) *call {
	c := &call{key: req.Key, req: req, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	p.calls[req.Key] = c
	p.notifyLocked()
	return c
}

// wait waits for c on behalf of one Get and hands it its own handle.
func (p *Prefetcher) wait(ctx context.Context, c *call) (*blobcache.Handle, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		p.mu.Lock()
		c.waiters--
		var release *blobcache.Handle
		if c.finished && c.waiters == 0 {
			release = c.h
		}
		gaveUp := errors.Is(ctx.Err(), context.DeadlineExceeded)
		abandon := gaveUp && !c.finished && c.waiters == 0 && !c.readahead
		if abandon && p.calls[c.key] == c {
			delete(p.calls, c.key) // a later Get starts afresh
			p.notifyLocked()
		}
		p.mu.Unlock()
		if abandon {
			c.cancel()
		}
		if release != nil {
			release.Release()
		}
		return nil, fmt.Errorf("prefetch %s: %w", c.req.name(), ctx.Err())
	}
	var h *blobcache.Handle
	err := c.err
	if err == nil {
		h, err = c.h.Clone()
	}
	p.mu.Lock()
	c.waiters--
	last := c.waiters == 0
	if err == nil {
		p.consumeLocked(c.key)
	}
	p.mu.Unlock()
	if last && c.h != nil {
		c.h.Release()
	}
	return h, err
}

// execute runs c's fetch and publishes the result.
func (p *Prefetcher) execute(c *call) {
	defer c.cancel()
	h, fetched, err := p.fetch(c.ctx, c.req)
	if err != nil && p.ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}

	p.mu.Lock()
	if p.calls[c.key] == c {
		delete(p.calls, c.key)
	}
	c.h, c.err, c.finished = h, err, true
	switch {
	case err != nil:
		p.stats.Failed++
	case fetched:
		p.stats.Fetched++
	}
	charged := false
	if we := p.window[c.key]; c.windowed && we != nil {
		p.windowBytes -= we.bytes
		if fetched && !we.read {
			we.bytes, we.fetched = h.Size(), true
			p.windowBytes += we.bytes
			charged = true
		} else {
			delete(p.window, c.key) // failed, already read, or cached by someone else
		}
	}
	waiters := c.waiters
	p.notifyLocked()
	p.mu.Unlock()
	if charged && !p.cache.Contains(c.key) {
		// Removed between the fill and the charge above: its OnEvict call
		// found nothing to release.
		p.evicted(c.key, h.Size())
	}
	close(c.done)
	if waiters == 0 && h != nil {
		h.Release()
	}
}

// fetch returns a handle for req: from the cache if it got there meanwhile
// (fetched=false), or from req.Fetch with retries.
func (p *Prefetcher) fetch(ctx context.Context, req Request) (h *blobcache.Handle, fetched bool, err error) {
	if h, ok := p.cache.Get(req.Key, req.MaxAge); ok {
		return h, false, nil
	}
	for attempt := 1; ; attempt++ {
		h, err := p.cache.Fill(ctx, req.Key, req.Size, req.Fetch)
		if err == nil {
			return h, true, nil
		}
		if attempt > p.retries || ctx.Err() != nil || !p.retryable(err) {
			return nil, false, fmt.Errorf("prefetch %s: %d attempt(s): %w", req.name(), attempt, err)
		}
		p.mu.Lock()
		p.stats.Retries++
		p.mu.Unlock()
		d := p.backoff << (attempt - 1)
		d += rand.N(d/2 + 1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, false, fmt.Errorf("prefetch %s: %d attempt(s): %w (then %w)", req.name(), attempt, err, ctx.Err())
		}
	}
}

// Enqueue appends readahead requests to the queue, in order. Requests for
// keys already queued, in flight, prefetched and unread, or cached are
// skipped, as are requests larger than the window. A request for a key that
// an on-demand Get is fetching makes that fetch outlive the Get's deadline.
func (p *Prefetcher) Enqueue(reqs []Request) {
	fresh := make([]Request, 0, len(reqs))
	for _, r := range reqs {
		switch {
		case r.Fetch == nil:
		case r.Size > p.limit:
			p.log.Debug("readahead skipped: larger than the window", "name", r.name(), "size", r.Size, "window", p.limit)
		case r.MaxAge == 0 && p.cache.Contains(r.Key):
		default:
			fresh = append(fresh, r)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	for _, r := range fresh {
		if c := p.calls[r.Key]; c != nil {
			c.readahead = true
			continue
		}
		if p.queued[r.Key] != nil || p.window[r.Key] != nil {
			continue
		}
		p.queued[r.Key] = p.queue.PushBack(r)
	}
	p.notifyLocked()
}

// Stats returns a snapshot of the counters.
func (p *Prefetcher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Queued = p.queue.Len()
	s.InFlight = len(p.calls)
	s.WindowBytes = p.windowBytes
	s.WindowLimit = p.limit
	return s
}

// Close drops the queue, cancels every fetch (readahead and on demand; their
// Gets fail with ErrClosed) and waits for the workers and fetches to stop.
// Later Gets fail with ErrClosed. Handles already returned stay valid.
func (p *Prefetcher) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.queue.Init()
	clear(p.queued)
	p.notifyLocked()
	p.mu.Unlock()
	p.stopEvict()
	p.cancel(ErrClosed)
	p.wg.Wait()
}

// consumeLocked releases the window charge of a prefetched blob that a Get
// reads, or marks a readahead still finishing as read. p.mu must be held.
func (p *Prefetcher) consumeLocked(key blobcache.Key) {
	we := p.window[key]
	switch {
	case we == nil:
	case we.fetched:
		p.releaseLocked(key, we)
	default:
		we.read = true
	}
}

// evicted is the cache's OnEvict function: a prefetched blob that left the
// cache unread no longer takes room in the window. A readahead still in
// flight keeps its charge: the blob that left is an older one.
func (p *Prefetcher) evicted(key blobcache.Key, _ int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if we := p.window[key]; we != nil && we.fetched {
		p.releaseLocked(key, we)
	}
}

// releaseLocked drops the window charge of a fetched readahead and wakes
// the workers. p.mu must be held.
func (p *Prefetcher) releaseLocked(key blobcache.Key, we *windowEntry) {
	delete(p.window, key)
	p.windowBytes -= we.bytes
	p.notifyLocked()
}

// notifyLocked wakes every goroutine waiting for a change. p.mu must be held.
func (p *Prefetcher) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Prefetcher) worker() {
	defer p.wg.Done()
	for {
		c, ok := p.next()
		if !ok {
			return
		}
		p.execute(c)
		if err := c.err; err != nil {
			if errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) {
				p.log.Debug("readahead cancelled", "name", c.req.name(), "err", err)
			} else {
				p.log.Warn("readahead failed", "name", c.req.name(), "err", err)
			}
		}
	}
}

// next blocks until the head of the queue fits in the window, and returns it
// as a registered readahead call holding its window reservation; ok is
// false once the Prefetcher is closed. It waits for p.changed: whatever frees
// window room (a Get reading a prefetched blob, the cache evicting one, a
// fetch ending) or adds to the queue signals it.
func (p *Prefetcher) next() (c *call, ok bool) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, false
		}
		if el := p.queue.Front(); el != nil {
			req := el.Value.(Request)
			if p.calls[req.Key] != nil || p.window[req.Key] != nil {
				p.queue.Remove(el)
				delete(p.queued, req.Key)
				continue
			}
			if p.fitsLocked(req.Size) {
				p.queue.Remove(el)
				delete(p.queued, req.Key)
				bytes := max(req.Size, 0)
				p.window[req.Key] = &windowEntry{bytes: bytes}
				p.windowBytes += bytes
				ctx, cancel := context.WithCancel(p.ctx)
				c := p.newCallLocked(req, ctx, cancel)
				c.readahead, c.windowed = true, true
				p.mu.Unlock()
				return c, true
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.ctx.Done():
		}
		p.mu.Lock()
	}
}

func (p *Prefetcher) fitsLocked(size int64) bool {
	if size < 0 {
		return p.windowBytes < p.limit
	}
	return p.windowBytes+size <= p.limit
}
