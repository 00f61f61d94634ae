package sharedcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/semaphore"
)

// Tier is a connection to the shared cache. Its methods are safe for
// concurrent use; none returns an error for a fault of the tier.
type Tier struct {
	opts   Options
	rdb    *redis.Client
	prefix string // of every key of this namespace
	health health
	stats  counters
	shut   atomic.Bool         // set by Close: reads are misses, publishes drops
	reads  *semaphore.Weighted // bytes of values being read, up to ReadBytes

	epoch      time.Time    // origin of lastAnswer
	lastAnswer atomic.Int64 // when the server last answered a call, in ns since epoch

	jobs    chan job
	stopCtx context.Context // cancelled by Close: in-flight writes stop
	stop    context.CancelFunc
	workers sync.WaitGroup

	qmu         sync.Mutex
	closed      bool          // guarded by qmu; jobs is closed
	pending     int           // guarded by qmu; jobs queued or being written
	queuedBytes int64         // guarded by qmu; payload bytes of pending jobs
	idle        chan struct{} // guarded by qmu; closed while pending is 0

	notesMu sync.Mutex
	noted   map[string]time.Time // guarded by notesMu; last warning per kind of event
}

// Stats is a snapshot of a Tier's counters.
type Stats struct {
	Hits    uint64 // Gets and GetMetas that returned verified bytes
	Misses  uint64 // Gets and GetMetas that did not, for any reason
	Corrupt uint64 // values refused: garbage, truncated, wrong checksum, version, kind or size
	Errors  uint64 // calls that failed: network, timeout, server error
	Skipped uint64 // calls not made because the tier was down (reads, publishes, leases)
	Busy    uint64 // reads that found no room under ReadBytes within their bound

	Publishes      uint64 // values written
	PublishPresent uint64 // blobs already in the tier, not sent again
	PublishDrops   uint64 // publishes dropped: queue full, or Close
	Oversize       uint64 // publishes refused by MaxBlobBytes or MaxMetaBytes

	BytesIn  uint64 // payload bytes of hits
	BytesOut uint64 // value bytes written

	Queued      int   // publishes waiting or being written
	QueuedBytes int64 // their payload bytes
	Up          bool  // the tier is considered reachable
}

type counters struct {
	hits, misses, corrupt, errors, skipped, busy atomic.Uint64
	publishes, present, drops, oversize          atomic.Uint64
	bytesIn, bytesOut                            atomic.Uint64
}

type jobOp int

const (
	opBlob   jobOp = iota // publish a blob unless present
	opMeta                // publish metadata unless a newer one is there
	opDelete              // remove a refused value
)

type job struct {
	op         jobOp
	key        string // Redis key
	payload    []byte
	producedAt time.Time
	ttl        time.Duration
}

// silenceLibraryLog stops go-redis's process-wide logger: everything it would
// print also comes back to us as an error, which we log once per outage.
var silenceLibraryLog sync.Once

type discardLog struct{}

func (discardLog) Printf(context.Context, string, ...any) {}

// New validates opts and returns a Tier. It does not connect: a tier that is
// down at start is a tier that is down (see Ping to check it). Errors are one
// line and never hold the password.
func New(opts Options) (*Tier, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ro, err := opts.redisOptions()
	if err != nil {
		return nil, err
	}
	silenceLibraryLog.Do(func() { redis.SetLogger(discardLog{}) })
	stopCtx, stop := context.WithCancel(context.Background())
	t := &Tier{
		opts:    opts,
		rdb:     redis.NewClient(ro),
		prefix:  keyPrefix(opts.Namespace),
		health:  health{retryAfter: opts.RetryAfter},
		reads:   semaphore.NewWeighted(opts.ReadBytes),
		epoch:   time.Now(),
		jobs:    make(chan job, opts.QueueLen),
		stopCtx: stopCtx,
		stop:    stop,
		idle:    make(chan struct{}),
		noted:   make(map[string]time.Time),
	}
	close(t.idle)
	t.workers.Add(opts.PublishWorkers)
	for range opts.PublishWorkers {
		go t.work()
	}
	return t, nil
}

func (t *Tier) blobKey(key string) string   { return t.prefix + "b:" + hashName(key) }
func (t *Tier) metaKey(name string) string  { return t.prefix + "m:" + hashName(name) }
func (t *Tier) leaseKey(name string) string { return t.prefix + "l:" + hashName(name) }

// Get returns the blob published under key if the tier has it, it verifies,
// and it is size bytes long (size < 0: any length). key is the caller's
// content key (the blobcache key), never a URL. It waits at most OpTimeout;
// any fault is a miss.
func (t *Tier) Get(ctx context.Context, key string, size int64) ([]byte, bool) {
	if key == "" || size > t.opts.MaxBlobBytes {
		t.stats.misses.Add(1)
		return nil, false
	}
	weight := t.opts.MaxBlobBytes
	if size >= 0 {
		weight = size
	}
	data, _, ok := t.read(ctx, t.blobKey(key), kindBlob, size, weight+headerLen, t.opts.OpTimeout)
	return data, ok
}

// GetMeta returns the metadata snapshot published under name and the time
// it was produced. It waits at most MetaTimeout; any fault is a miss.
func (t *Tier) GetMeta(ctx context.Context, name string) (data []byte, producedAt time.Time, ok bool) {
	return t.read(ctx, t.metaKey(name), kindMeta, -1, min(t.opts.MaxMetaBytes+headerLen, t.opts.ReadBytes),
		t.opts.MetaTimeout)
}

// read gets the value under key, reserving weight bytes of ReadBytes, and
// returns its payload if it verifies, all within timeout.
func (t *Tier) read(ctx context.Context, key string, kind byte, size, weight int64, timeout time.Duration) ([]byte, time.Time, bool) {
	if !t.admit(ctx) {
		t.stats.misses.Add(1)
		return nil, time.Time{}, false
	}
	start := time.Now()
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := t.reads.Acquire(callCtx, weight); err != nil {
		if ctx.Err() == nil {
			t.stats.busy.Add(1)
		}
		t.stats.misses.Add(1)
		return nil, time.Time{}, false
	}
	defer t.reads.Release(weight)
	raw, err := t.rdb.Get(callCtx, key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.fault(ctx, "read", key, start, err)
		t.stats.misses.Add(1)
		return nil, time.Time{}, false
	}
	t.answered(start)
	if errors.Is(err, redis.Nil) {
		t.stats.misses.Add(1)
		return nil, time.Time{}, false
	}
	data, producedAt, err := decode(raw, key, kind, size)
	if err != nil {
		t.stats.corrupt.Add(1)
		t.stats.misses.Add(1)
		t.note("corrupt", "shared cache: refused a value", slog.String("key", key), slog.String("reason", err.Error()))
		if errors.Is(err, errMalformed) {
			t.enqueue(job{op: opDelete, key: key})
		}
		return nil, time.Time{}, false
	}
	t.stats.hits.Add(1)
	t.stats.bytesIn.Add(uint64(len(data)))
	return data, producedAt, true
}

// Publish writes data under key in the background, unless it is over
// MaxBlobBytes, the queue is full, or the tier already holds it. key must
// name the content exactly (the blobcache key: API host, organization, image
// id, size); data must be the complete, verified blob. Callers must never
// pass URLs, signed or not, or credentials, as keys or data. Publish keeps
// data until it is written: the caller must not modify it afterwards.
func (t *Tier) Publish(key string, data []byte) {
	if int64(len(data)) > t.opts.MaxBlobBytes {
		t.stats.oversize.Add(1)
		return
	}
	if key == "" {
		return
	}
	t.enqueue(job{op: opBlob, key: t.blobKey(key), payload: data, ttl: t.opts.BlobTTL})
}

// PublishMeta writes a metadata snapshot (a dataset listing, an annotation
// export) under name in the background, with the time it was produced, unless
// the tier holds one produced later. ttl > 0 expires it. The snapshot must
// hold no signed URL and no credential. PublishMeta keeps data until it is
// written: the caller must not modify it afterwards.
func (t *Tier) PublishMeta(name string, data []byte, producedAt time.Time, ttl time.Duration) {
	if int64(len(data)) > t.opts.MaxMetaBytes {
		t.stats.oversize.Add(1)
		return
	}
	if name == "" || producedAt.IsZero() {
		return
	}
	ttl = max(ttl, 0)
	if ttl > 0 {
		ttl = max(ttl, time.Millisecond)
	}
	t.enqueue(job{op: opMeta, key: t.metaKey(name), payload: data, producedAt: producedAt, ttl: ttl})
}

// enqueue queues j unless the queue is full or closed; it never blocks.
func (t *Tier) enqueue(j job) {
	if t.shut.Load() {
		t.stats.drops.Add(1)
		return
	}
	size := int64(len(j.payload))
	t.qmu.Lock()
	if t.closed || len(t.jobs) == cap(t.jobs) || t.queuedBytes+size > t.opts.QueueBytes {
		t.qmu.Unlock()
		t.stats.drops.Add(1)
		return
	}
	if t.pending == 0 {
		t.idle = make(chan struct{})
	}
	t.pending++
	t.queuedBytes += size
	t.jobs <- j // cannot block: only enqueue sends, under qmu, after checking the room
	t.qmu.Unlock()
}

// done releases j's place in the queue.
func (t *Tier) done(j job) {
	t.qmu.Lock()
	defer t.qmu.Unlock()
	t.pending--
	t.queuedBytes -= int64(len(j.payload))
	if t.pending == 0 {
		close(t.idle)
	}
}

// Flush waits until every publish queued so far is written or dropped, or
// ctx ends.
func (t *Tier) Flush(ctx context.Context) error {
	t.qmu.Lock()
	idle := t.idle
	t.qmu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sharedcache: flush: %w", ctx.Err())
	}
}

func (t *Tier) work() {
	defer t.workers.Done()
	for j := range t.jobs {
		if t.stopCtx.Err() != nil {
			t.stats.drops.Add(1)
		} else {
			t.write(j)
		}
		t.done(j)
	}
}

// metaScript sets KEYS[1] to ARGV[1] (with a TTL of ARGV[2] ms if positive)
// unless it holds a value of the same format whose produced-at time, bytes
// 17–24 as a big-endian integer, is not older. It compares byte by byte:
// Lua's string comparison follows the server's locale.
var metaScript = redis.NewScript(`
local new = ARGV[1]
local head = redis.call('GETRANGE', KEYS[1], 0, 23)
if #head == 24 and string.sub(head, 1, 6) == string.sub(new, 1, 6) then
  local older = false
  for i = 17, 24 do
    local a, b = string.byte(head, i), string.byte(new, i)
    if a ~= b then older = a < b; break end
  end
  if not older then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], new)
end
return 1
`)

// write performs one job.
func (t *Tier) write(j job) {
	if !t.admit(t.stopCtx) {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.stopCtx, t.opts.PublishTimeout)
	defer cancel()
	var err error
	switch j.op {
	case opDelete:
		err = t.rdb.Del(ctx, j.key).Err()
	case opBlob:
		err = t.writeBlob(ctx, j)
	case opMeta:
		v := encode(j.key, kindMeta, j.payload, j.producedAt)
		var set int64
		set, err = metaScript.Run(ctx, t.rdb, []string{j.key}, v, j.ttl.Milliseconds()).Int64()
		if err == nil && set == 1 {
			t.stats.publishes.Add(1)
			t.stats.bytesOut.Add(uint64(len(v)))
		}
	}
	if err != nil {
		t.fault(t.stopCtx, "write", j.key, start, err)
		return
	}
	t.answered(start)
}

// writeBlob stores a blob only if the tier lacks it (SET NX): when several
// nodes read the same image, the first one's copy serves the others. A
// publish follows a miss under the fetch lease, so the key is almost always
// absent and no separate check is worth its round trip.
func (t *Tier) writeBlob(ctx context.Context, j job) error {
	v := encode(j.key, kindBlob, j.payload, time.Time{})
	err := t.rdb.SetArgs(ctx, j.key, v, redis.SetArgs{Mode: "NX", TTL: j.ttl}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		t.stats.present.Add(1)
		return nil
	case err != nil:
		return err
	}
	t.stats.publishes.Add(1)
	t.stats.bytesOut.Add(uint64(len(v)))
	return nil
}

// admit reports whether a call may use the tier now, counting the skip if not.
func (t *Tier) admit(ctx context.Context) bool {
	if t.shut.Load() || ctx.Err() != nil {
		return false
	}
	if !t.health.allow(time.Now()) {
		t.stats.skipped.Add(1)
		return false
	}
	return true
}

// answered records that a call started at start got an answer from the
// server, and logs the end of an outage.
func (t *Tier) answered(start time.Time) {
	t.lastAnswer.Store(int64(time.Since(t.epoch)))
	if outage := t.health.succeeded(start); outage > 0 {
		t.opts.Logger.Info("shared cache reachable again", slog.String("url", t.opts.Redacted()),
			slog.Duration("outage", outage.Round(time.Millisecond)))
	}
}

// fault handles a call started at start that failed. A call the caller gave
// up on says nothing of the tier. A call that ran out of time while the
// server answered others was queued behind them: the server is busy, not
// gone. A server's refusal to store (OOM under maxmemory-policy noeviction)
// or a key of another type is counted and logged, but leaves the tier up:
// reads still work. Anything else (unreachable, silent, refused password,
// loading, read-only replica) takes the tier down for RetryAfter, with one
// warning per outage.
func (t *Tier) fault(caller context.Context, op, key string, start time.Time, err error) {
	if gaveUp(caller) {
		return
	}
	t.stats.errors.Add(1)
	msg := t.opts.scrub(err.Error())
	if isTimeout(err) && time.Duration(t.lastAnswer.Load()) > start.Sub(t.epoch) {
		t.note("busy", "shared cache busy: a call ran out of time while the server answered others",
			slog.String("op", op), slog.Duration("op_timeout", t.opts.OpTimeout))
		return
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		switch {
		case strings.HasPrefix(msg, "WRONGTYPE"):
			t.stats.corrupt.Add(1)
			t.enqueue(job{op: opDelete, key: key})
			t.note("wrongtype", "shared cache: a key of another type in our namespace", slog.String("key", key))
			return
		case strings.HasPrefix(msg, "OOM"):
			t.note("oom", "shared cache refuses writes (out of memory): set maxmemory-policy allkeys-lru, or raise maxmemory",
				slog.String("error", msg))
			return
		}
	}
	if t.health.failed(time.Now()) {
		t.opts.Logger.Warn("shared cache unavailable; reading around it", slog.String("url", t.opts.Redacted()),
			slog.String("op", op), slog.String("error", msg), slog.Duration("retry_after", t.opts.RetryAfter))
		return
	}
	t.opts.Logger.Debug("shared cache still unavailable", slog.String("op", op), slog.String("error", msg))
}

// gaveUp reports whether the caller's context is done or past its deadline
// (a socket deadline taken from it can fire before the context notices).
func gaveUp(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(deadline))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// noteEvery is how often an event that is not an outage is warned about;
// in between it is logged at debug level.
const noteEvery = time.Minute

// note logs an event as a warning at most once per noteEvery per kind.
func (t *Tier) note(kind, msg string, attrs ...any) {
	now := time.Now()
	t.notesMu.Lock()
	last, seen := t.noted[kind]
	warn := !seen || now.Sub(last) >= noteEvery
	if warn {
		t.noted[kind] = now
	}
	t.notesMu.Unlock()
	if warn {
		t.opts.Logger.Warn(msg, attrs...)
		return
	}
	t.opts.Logger.Debug(msg, attrs...)
}

// Ping checks that the tier answers within OpTimeout. It is for a start-up
// check or a status line: the other methods need no Ping. The error never
// holds the password.
func (t *Tier) Ping(ctx context.Context) error {
	if t.shut.Load() {
		return errors.New("sharedcache: closed")
	}
	start := time.Now()
	callCtx, cancel := context.WithTimeout(ctx, t.opts.OpTimeout)
	defer cancel()
	if err := t.rdb.Ping(callCtx).Err(); err != nil {
		t.fault(ctx, "ping", "", start, err)
		return fmt.Errorf("sharedcache: %s: %s", t.opts.Redacted(), t.opts.scrub(err.Error()))
	}
	t.answered(start)
	return nil
}

// KeyPattern returns the pattern every key of this tier matches, e.g. for a
// Redis ACL user of this organization alone: ACL SETUSER org on >password
// ~PATTERN +@all -@dangerous.
func (t *Tier) KeyPattern() string { return t.prefix + "*" }

// Up reports whether the tier is considered reachable: false from a failure
// until a later call succeeds.
func (t *Tier) Up() bool { return t.health.up() }

// Stats returns a snapshot of the counters.
func (t *Tier) Stats() Stats {
	t.qmu.Lock()
	queued, queuedBytes := t.pending, t.queuedBytes
	t.qmu.Unlock()
	c := &t.stats
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Corrupt: c.corrupt.Load(), Errors: c.errors.Load(),
		Skipped: c.skipped.Load(), Busy: c.busy.Load(), Publishes: c.publishes.Load(), PublishPresent: c.present.Load(),
		PublishDrops: c.drops.Load(), Oversize: c.oversize.Load(), BytesIn: c.bytesIn.Load(),
		BytesOut: c.bytesOut.Load(), Queued: queued, QueuedBytes: queuedBytes, Up: t.health.up(),
	}
}

// Close stops the tier: queued publishes are dropped (Flush first to keep
// them), in-flight ones cancelled, and later calls are misses. It waits for
// the writers and closes the connections.
func (t *Tier) Close() error {
	t.qmu.Lock()
	if t.closed {
		t.qmu.Unlock()
		return nil
	}
	t.closed = true
	t.shut.Store(true)
	close(t.jobs)
	t.qmu.Unlock()
	t.stop()
	t.workers.Wait()
	if err := t.rdb.Close(); err != nil {
		return fmt.Errorf("sharedcache: close: %s", t.opts.scrub(err.Error()))
	}
	return nil
}

// MaxBlobBytes is the largest blob Publish takes: a caller can skip
// buffering a larger one.
func (t *Tier) MaxBlobBytes() int64 { return t.opts.MaxBlobBytes }

// MaxMetaBytes is the largest snapshot PublishMeta takes.
func (t *Tier) MaxMetaBytes() int64 { return t.opts.MaxMetaBytes }
