package blobcache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Errors returned (wrapped) by the cache.
var (
	// ErrNoSpace: the blob does not fit under MaxBytes or the free-space
	// floor even after evicting every unpinned blob.
	ErrNoSpace = errors.New("blobcache: no space")
	// ErrShortBlob: the fill function wrote fewer bytes than the expected size.
	ErrShortBlob = errors.New("blobcache: short blob")
	// ErrLongBlob: the fill function tried to write more than the expected size.
	ErrLongBlob = errors.New("blobcache: blob longer than its size")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("blobcache: closed")
	// ErrInvalidKey: a key that is not 64 lower-case hex digits.
	ErrInvalidKey = errors.New("blobcache: invalid key")
)

const (
	// DefaultMaxBytes is Options.MaxBytes when zero: 10 GiB.
	DefaultMaxBytes int64 = 10 << 30
	// DefaultMinFreeRatio is Options.MinFreeRatio when zero.
	DefaultMinFreeRatio = 0.05

	// touchEvery limits how often a Get rewrites a blob's atime, which is
	// what Open uses to restore the LRU order.
	touchEvery = time.Minute
	// growStep is the smallest reservation a fill of unknown size takes.
	growStep = 64 << 10
	// growMax caps a single reservation step of a fill of unknown size.
	growMax = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Key names a blob: the hex SHA-256 of what identifies it. It is safe as a
// file name.
type Key string

// KeyOf returns the SHA-256 of parts, each prefixed with its length so that
// ("ab", "c") and ("a", "bc") differ. Callers pass everything that identifies
// the blob and the account it belongs to (API host, organization id, dataset
// id, image id, size, kind…).
func KeyOf(parts ...string) Key {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		io.WriteString(h, p)
	}
	return Key(hex.EncodeToString(h.Sum(nil)))
}

// valid reports whether k is 64 lower-case hex digits.
func (k Key) valid() bool { return len(k) == 2*sha256.Size && isLowerHex(string(k)) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Options configures a Cache. The zero value of each field means its default.
type Options struct {
	// Dir is the cache directory (required). It is created 0700 if missing;
	// its subdirectories are 0700 and its files 0600.
	Dir string
	// MaxBytes caps the bytes of blobs and in-flight fills. Default 10 GiB.
	MaxBytes int64
	// MinFreeRatio is the share of Dir's filesystem kept free (statfs);
	// eviction makes room for both limits. Default 0.05; negative disables.
	MinFreeRatio float64
	// Logger receives warnings (dropped corrupt files) and debug events.
	// Default slog.Default().
	Logger *slog.Logger
}

// Stats is a snapshot of the cache's counters.
type Stats struct {
	Bytes      int64  // bytes of blobs, including removed blobs still held open
	Reserved   int64  // bytes reserved by in-flight fills
	Count      int    // blobs in the index
	Pinned     int    // blobs with at least one open Handle
	Hits       uint64 // Gets that returned a handle
	Misses     uint64 // Gets that did not
	Evictions  uint64 // blobs evicted to make room
	Removed    uint64 // blobs dropped by Remove, replaced, vanished or corrupt
	Fills      uint64 // successful fills
	ShortFills uint64 // fills rejected as ErrShortBlob
}

// entry is one blob. key, path, size, crc and filled never change.
type entry struct {
	key    Key
	path   string
	size   int64
	crc    uint32
	filled time.Time // fill time (the file's mtime)

	// guarded by Cache.mu:
	pins     int       // open Handles, plus a Get opening the file
	detached bool      // no longer in Cache.entries; bytes charged until pins reach 0
	verified bool      // the CRC was checked, or this process wrote the file
	touched  time.Time // last atime written, for the LRU order across restarts
}

// Cache is an on-disk LRU of immutable blobs. It is safe for concurrent use.
type Cache struct {
	dir      string
	maxBytes int64
	minFree  float64
	log      *slog.Logger
	statfs   func(dir string) (avail, total uint64, err error)
	now      func() time.Time
	stage    *stage

	// ctx is cancelled by Close; in-flight fills observe it.
	ctx    context.Context
	cancel context.CancelFunc
	fills  sync.WaitGroup // in-flight Fill calls; Add only under mu while !closed

	mu sync.Mutex
	// guarded by mu:
	entries   map[Key]*entry              // every blob in the index, pinned or not
	lru       *simplelru.LRU[Key, *entry] // the unpinned entries of entries, oldest first out
	lruBytes  int64                       // bytes of the entries in lru: what eviction can free
	used      int64                       // entries + detached pinned entries + reserved
	reserved  int64                       // part of used reserved by in-flight fills
	pinned    int                         // entries (live or detached) with pins > 0
	unlinking map[string]int              // paths of evicted entries not yet unlinked; never adopted
	closed    bool
	stats     Stats // counters only; Bytes, Reserved, Count and Pinned are filled in by Stats

	// onEvict is the OnEvict functions: stored under mu (so registrations
	// do not race), read without it; the slice is replaced, never changed
	// in place.
	onEvict atomic.Pointer[[]*evictFunc]
}

// evictFunc is one function registered with OnEvict.
type evictFunc struct {
	fn      func(key Key, size int64)
	stopped atomic.Bool
}

// Open opens or creates the cache in opts.Dir and rebuilds its index from the
// files there: blobs whose size does not match the size in their name and
// the temporary files of dead instances are deleted, the LRU order is
// restored from the files' access times, and blobs beyond the cap are
// evicted.
func Open(opts Options) (*Cache, error) {
	return open(opts, sysStatfs, time.Now)
}

// Validate checks the values of opts (not Dir, which Open needs).
func (opts Options) Validate() error {
	if opts.MaxBytes < 0 {
		return fmt.Errorf("negative size cap %d", opts.MaxBytes)
	}
	if opts.MinFreeRatio >= 1 {
		return fmt.Errorf("free share %v: must be below 1", opts.MinFreeRatio)
	}
	return nil
}

func open(opts Options, statfs func(string) (uint64, uint64, error), now func() time.Time) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("blobcache: Options.Dir is required")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("blobcache: %w", err)
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MinFreeRatio == 0 {
		opts.MinFreeRatio = DefaultMinFreeRatio
	}
	if opts.MinFreeRatio < 0 {
		opts.MinFreeRatio = 0
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	lru, err := simplelru.NewLRU[Key, *entry](math.MaxInt, nil)
	if err != nil {
		return nil, fmt.Errorf("blobcache: %w", err)
	}
	c := &Cache{
		dir:       opts.Dir,
		maxBytes:  opts.MaxBytes,
		minFree:   opts.MinFreeRatio,
		log:       opts.Logger.With("component", "blobcache"),
		statfs:    statfs,
		now:       now,
		entries:   make(map[Key]*entry),
		unlinking: make(map[string]int),
		lru:       lru,
	}
	if err := c.makeDirs(); err != nil {
		return nil, err
	}
	c.cleanStages()
	st, err := newStage(c.tmpDir())
	if err != nil {
		return nil, err
	}
	c.stage = st
	c.ctx, c.cancel = context.WithCancel(context.Background())

	synced := c.readSyncedMark()
	found := c.scan()
	for _, e := range found {
		e.verified = !e.filled.After(synced)
		c.entries[e.key] = e
		c.lru.Add(e.key, e)
		c.lruBytes += e.size
		c.used += e.size
	}
	if err := c.reserve(0); err != nil {
		c.log.Warn("cache is over its limits and cannot shrink", "err", err)
	}
	c.log.Debug("opened", "dir", c.dir, "blobs", len(found), "bytes", c.used, "max_bytes", c.maxBytes)
	return c, nil
}

// MaxBytes returns the byte cap.
func (c *Cache) MaxBytes() int64 { return c.maxBytes }

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Bytes = c.used - c.reserved
	s.Reserved = c.reserved
	s.Count = len(c.entries)
	s.Pinned = c.pinned
	return s
}

// Contains reports whether key is in the index. It neither pins the blob
// nor touches the LRU order, and does no I/O.
func (c *Cache) Contains(key Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[key]
	return ok
}

// Get returns a pinned handle for a complete blob, or ok=false. With
// maxAge > 0 a blob filled longer ago than maxAge is treated as missing.
// A blob whose file was deleted behind the index (by another process sharing
// the directory) or fails its CRC check is dropped and reported as a miss.
func (c *Cache) Get(key Key, maxAge time.Duration) (h *Handle, ok bool) {
	h = c.get(key, maxAge)
	c.mu.Lock()
	if h != nil {
		c.stats.Hits++
	} else {
		c.stats.Misses++
	}
	c.mu.Unlock()
	return h, h != nil
}

func (c *Cache) get(key Key, maxAge time.Duration) *Handle {
	if !key.valid() {
		return nil
	}
	e, indexed, touch := c.pin(key, maxAge)
	if e == nil {
		if indexed {
			return nil // present but too old: the caller refills it
		}
		if e, touch = c.adopt(key, maxAge); e == nil {
			return nil
		}
	}
	if h := c.openHandle(e, touch); h != nil {
		return h
	}
	if e, touch = c.adopt(key, maxAge); e == nil {
		return nil
	}
	return c.openHandle(e, touch)
}

// pin pins the indexed entry of key if it is fresh. indexed reports whether
// an entry exists at all; touch whether the caller should rewrite its atime.
func (c *Cache) pin(key Key, maxAge time.Duration) (e *entry, indexed, touch bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, true, false
	}
	e = c.entries[key]
	if e == nil {
		return nil, false, false
	}
	now := c.now()
	if maxAge > 0 && now.Sub(e.filled) > maxAge {
		return nil, true, false
	}
	c.pinLocked(e)
	if now.Sub(e.touched) >= touchEvery {
		e.touched = now
		touch = true
	}
	return e, true, touch
}

func (c *Cache) pinLocked(e *entry) {
	if e.pins == 0 {
		c.pinned++
		if !e.detached {
			c.lru.Remove(e.key)
			c.lruBytes -= e.size
		}
	}
	e.pins++
}

func (c *Cache) unpin(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.pins--
	if e.pins > 0 {
		return
	}
	c.pinned--
	if e.detached {
		c.used -= e.size
		return
	}
	c.lru.Add(e.key, e)
	c.lruBytes += e.size
}

// detachLocked takes e out of the index. Its bytes stay charged until its
// last pin is released. It reports whether e was still in the index.
func (c *Cache) detachLocked(e *entry) bool {
	if e.detached || c.entries[e.key] != e {
		return false
	}
	delete(c.entries, e.key)
	e.detached = true
	if e.pins == 0 {
		c.lru.Remove(e.key)
		c.lruBytes -= e.size
		c.used -= e.size
	}
	return true
}

// drop takes a pinned entry whose file is gone or corrupt out of the index,
// unpins it and, if corrupt, deletes the file.
func (c *Cache) drop(e *entry, corrupt bool) {
	c.mu.Lock()
	detached := c.detachLocked(e)
	if detached {
		c.stats.Removed++
	}
	c.mu.Unlock()
	c.unpin(e)
	if corrupt {
		removeFile(e.path)
	}
	if detached {
		c.reportEvicted(e)
	}
}

// openHandle opens the file of pinned entry e. It verifies the CRC of a blob
// this process did not write, and rewrites the atime when touch is set. On
// failure it drops e and returns nil.
func (c *Cache) openHandle(e *entry, touch bool) *Handle {
	f, err := os.Open(e.path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("open cached blob", "key", e.key, "err", err)
		}
		c.drop(e, false)
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != e.size {
		f.Close()
		c.log.Warn("cached blob has the wrong size; dropped", "key", e.key, "path", e.path)
		c.drop(e, true)
		return nil
	}
	c.mu.Lock()
	verified := e.verified
	c.mu.Unlock()
	if !verified {
		h := crc32.New(castagnoli)
		_, err := io.Copy(h, io.NewSectionReader(f, 0, e.size))
		if err != nil || h.Sum32() != e.crc {
			f.Close()
			c.log.Warn("cached blob fails its CRC check; dropped", "key", e.key, "path", e.path, "err", err)
			c.drop(e, true)
			return nil
		}
		c.mu.Lock()
		e.verified = true
		c.mu.Unlock()
	}
	if touch {
		// Best effort: the atime only orders the LRU after a restart.
		_ = os.Chtimes(e.path, c.now(), time.Time{})
	}
	return &Handle{c: c, e: e, f: f}
}

// adopt looks for a complete file of key on disk that is not in the index
// (another process wrote it, or the indexed file vanished) and adds it,
// pinned. It returns nil if there is none or it is older than maxAge.
func (c *Cache) adopt(key Key, maxAge time.Duration) (*entry, bool) {
	found, stale := c.findOnDisk(key)
	for _, p := range stale {
		removeFile(p)
	}
	if found == nil {
		return nil, false
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false
	}
	if e := c.entries[key]; e != nil {
		// Indexed meanwhile (a concurrent fill or adoption): use that one.
		fresh := maxAge <= 0 || c.now().Sub(e.filled) <= maxAge
		if fresh {
			c.pinLocked(e)
		}
		c.mu.Unlock()
		if !fresh {
			return nil, false
		}
		return e, false
	}
	if maxAge > 0 && c.now().Sub(found.filled) > maxAge {
		c.mu.Unlock()
		return nil, false
	}
	// Not a file this process is about to unlink (an eviction victim), and
	// only if it fits: an adopted blob is charged like a fill.
	need := c.used + found.size - c.maxBytes
	if c.unlinking[found.path] > 0 || found.size > c.maxBytes || need > c.lruBytes {
		c.mu.Unlock()
		return nil, false
	}
	victims := c.evictLocked(need)
	c.entries[found.key] = found
	c.used += found.size
	// Pinned for the caller from the start: it was never in the LRU, so
	// pinLocked, which takes an entry out of it, must not count it.
	found.pins = 1
	c.pinned++
	c.mu.Unlock()
	c.unlink(victims)
	return found, true
}

// evictLocked evicts least-recently-used unpinned entries until at least
// need bytes are freed, and returns them to pass to unlink once mu is
// released.
func (c *Cache) evictLocked(need int64) []*entry {
	var victims []*entry
	for freed := int64(0); freed < need; {
		_, e, ok := c.lru.RemoveOldest()
		if !ok {
			break
		}
		delete(c.entries, e.key)
		e.detached = true
		c.lruBytes -= e.size
		c.used -= e.size
		c.stats.Evictions++
		freed += e.size
		victims = append(victims, e)
		c.unlinking[e.path]++
	}
	return victims
}

// unlink deletes the files of evicted entries, then reports them to the
// OnEvict functions. It runs without mu. A fill of the same key that
// renames a new file to the same name in between loses it: its next Get is
// a miss (the file vanished) and the blob is fetched again.
func (c *Cache) unlink(victims []*entry) {
	if len(victims) == 0 {
		return
	}
	for _, e := range victims {
		removeFile(e.path)
	}
	c.mu.Lock()
	for _, e := range victims {
		if c.unlinking[e.path]--; c.unlinking[e.path] <= 0 {
			delete(c.unlinking, e.path)
		}
	}
	c.mu.Unlock()
	c.reportEvicted(victims...)
}

// OnEvict registers fn to be called once for every blob that leaves the
// index: evicted to make room (by a Fill, or by a Get adopting another
// process's file), removed by Remove, or dropped because its file vanished
// or failed its check. A Fill that replaces a blob with a new one of the
// same key does not call it: the key stays cached.
//
// fn runs after the cache's lock is released, on the goroutine of the Fill,
// Get or Remove that evicted, before that call returns; so fn may call the
// Cache, and must not block for long. Calls for different blobs may run
// concurrently. stop unregisters fn: once it returns, no new call of fn
// starts, though one already started may still be running.
func (c *Cache) OnEvict(fn func(key Key, size int64)) (stop func()) {
	f := &evictFunc{fn: fn}
	c.mu.Lock()
	fns := append(c.evictFuncs(), f)
	c.onEvict.Store(&fns)
	c.mu.Unlock()
	return sync.OnceFunc(func() {
		f.stopped.Store(true)
		c.mu.Lock()
		fns := slices.DeleteFunc(c.evictFuncs(), func(g *evictFunc) bool { return g == f })
		c.onEvict.Store(&fns)
		c.mu.Unlock()
	})
}

// evictFuncs is a copy of the registered OnEvict functions.
func (c *Cache) evictFuncs() []*evictFunc {
	if p := c.onEvict.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// reportEvicted calls the OnEvict functions for entries that left the
// index. mu must not be held.
func (c *Cache) reportEvicted(gone ...*entry) {
	p := c.onEvict.Load()
	if p == nil {
		return
	}
	for _, e := range gone {
		for _, f := range *p {
			if !f.stopped.Load() {
				f.fn(e.key, e.size)
			}
		}
	}
}

// reserve charges n bytes to an in-flight fill, evicting unpinned blobs
// first so that neither MaxBytes nor the free-space floor is crossed.
// reserve(0) only restores the limits.
func (c *Cache) reserve(n int64) error {
	fsFloor, fsAvail, haveFS := c.fsState()
	c.mu.Lock()
	if c.closed && n > 0 {
		c.mu.Unlock()
		return ErrClosed
	}
	need := c.used + n - c.maxBytes
	fsNeed := int64(0)
	if haveFS {
		// Other reservations may not have been written yet: count them as
		// still to come out of the free space.
		fsNeed = n + fsFloor + c.reserved - fsAvail
		need = max(need, fsNeed)
	}
	if n > c.maxBytes || need > c.lruBytes {
		err := fmt.Errorf("reserve %d bytes: %d of %d bytes used, %d evictable, %d short of the free-space floor: %w",
			n, c.used, c.maxBytes, c.lruBytes, max(fsNeed, 0), ErrNoSpace)
		var victims []*entry
		if n == 0 {
			victims = c.evictLocked(c.lruBytes) // shrink as far as possible
		}
		c.mu.Unlock()
		c.unlink(victims)
		return err
	}
	victims := c.evictLocked(need)
	c.used += n
	c.reserved += n
	c.mu.Unlock()
	c.unlink(victims)
	return nil
}

func (c *Cache) unreserve(n int64) {
	c.mu.Lock()
	c.used -= n
	c.reserved -= n
	c.mu.Unlock()
}

// fsState returns the free-space floor and the available bytes of Dir's
// filesystem; ok is false when the floor is disabled or statfs failed.
func (c *Cache) fsState() (floor, avail int64, ok bool) {
	if c.minFree <= 0 {
		return 0, 0, false
	}
	a, t, err := c.statfs(c.dir)
	if err != nil {
		c.log.Debug("statfs failed; free-space floor not enforced", "err", err)
		return 0, 0, false
	}
	return int64(c.minFree * float64(min(t, math.MaxInt64))), int64(min(a, math.MaxInt64)), true
}

// Remove drops key from the index and deletes its files, including copies
// written by other processes sharing the directory. Open handles keep
// working; their bytes stay charged until released. The OnEvict functions
// are called if key was in the index.
func (c *Cache) Remove(key Key) {
	if !key.valid() {
		return
	}
	c.mu.Lock()
	e := c.entries[key]
	removed := e != nil && c.detachLocked(e)
	if removed {
		c.stats.Removed++
	}
	c.mu.Unlock()
	for _, p := range c.filesOf(key) {
		removeFile(p)
	}
	if removed {
		c.reportEvicted(e)
	}
}

// Close stops the cache: later Gets miss and Fills fail with ErrClosed;
// in-flight fills are cancelled and waited for; the staging directory is
// removed. Handles still open stay valid until released.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.fills.Wait()
	if err := c.writeSyncedMark(); err != nil {
		c.log.Warn("cache not marked clean; blobs will be verified on next start", "err", err)
	}
	return c.stage.close()
}
