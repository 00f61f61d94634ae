package blobcache

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
)

// Fill writes the blob of key and returns a pinned handle to it.
//
// It reserves size bytes first, evicting unpinned least-recently-used blobs
// before anything is written; if that cannot make room it returns
// ErrNoSpace (wrapped). It then calls fill with a writer to a temporary file
// in the cache directory. With size >= 0, exactly size bytes must be written:
// fewer is ErrShortBlob and more is ErrLongBlob (both wrapped), and the
// temporary file is removed, never cached. With size < 0 the size is unknown:
// the reservation grows as bytes arrive, still never past the cap.
// The file is then renamed into place atomically, replacing any blob of the
// same key (handles open on the old one keep reading the old bytes).
//
// Fill does not fsync (see the package comment). fill must return once ctx
// is done; Close cancels ctx and waits for in-flight fills. An error from fill
// is returned wrapped.
func (c *Cache) Fill(ctx context.Context, key Key, size int64, fill func(ctx context.Context, w io.Writer) error) (*Handle, error) {
	if !key.valid() {
		return nil, fmt.Errorf("fill %q: %w", key, ErrInvalidKey)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("fill %s: %w", key, ErrClosed)
	}
	c.fills.Add(1)
	c.mu.Unlock()
	defer c.fills.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()

	w := &fillWriter{c: c, ctx: ctx, size: size, crc: crc32.New(castagnoli)}
	if size >= 0 {
		if err := c.reserve(size); err != nil {
			return nil, fmt.Errorf("fill %s: %w", key, err)
		}
		w.reserved = size
	}
	h, err := c.fill(ctx, key, w, fill)
	if err != nil {
		c.unreserve(w.reserved)
		if errors.Is(err, ErrShortBlob) {
			c.mu.Lock()
			c.stats.ShortFills++
			c.mu.Unlock()
		}
		return nil, fmt.Errorf("fill %s: %w", key, err)
	}
	return h, nil
}

// fill writes, checks and publishes the blob; on error the caller releases
// w.reserved. On success the reservation has become the entry's charge.
func (c *Cache) fill(ctx context.Context, key Key, w *fillWriter, fill func(context.Context, io.Writer) error) (*Handle, error) {
	f, err := os.CreateTemp(c.stage.dir, string(key)+"-*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	w.f = f
	published := false
	defer func() {
		if !published {
			removeFile(tmp)
		}
	}()

	err = fill(ctx, w)
	if err == nil {
		// A fill that ignored a failed Write must not publish a blob with a
		// hole, least of all one of unknown size.
		err = w.err
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	if w.size >= 0 && w.n != w.size {
		return nil, fmt.Errorf("wrote %d of %d bytes: %w", w.n, w.size, ErrShortBlob)
	}

	now := c.now()
	if err := os.Chtimes(tmp, now, now); err != nil {
		return nil, err
	}
	// Open read-only before the rename: the descriptor follows the inode even
	// if another process evicts the blob right after it is published.
	rf, err := os.Open(tmp)
	if err != nil {
		return nil, err
	}
	crc := w.crc.Sum32()
	final := c.blobPath(key, w.n, crc)
	if err := os.Rename(tmp, final); err != nil {
		// Shard directories are created on first use (or were removed).
		if mkErr := mkdir0700(c.shardDir(key)); mkErr != nil {
			err = mkErr
		} else {
			err = os.Rename(tmp, final)
		}
		if err != nil {
			rf.Close()
			return nil, err
		}
	}
	published = true

	e := &entry{key: key, path: final, size: w.n, crc: crc, filled: now, pins: 1, verified: true, touched: now}
	var replaced string
	c.mu.Lock()
	c.reserved -= w.reserved
	c.used -= w.reserved - w.n // an unknown-size fill may have reserved more than it wrote
	if old := c.entries[key]; old != nil {
		c.detachLocked(old)
		c.stats.Removed++
		if old.path != final {
			replaced = old.path
		}
	}
	c.entries[key] = e
	c.pinned++
	c.stats.Fills++
	c.mu.Unlock()
	if replaced != "" {
		removeFile(replaced)
	}
	return &Handle{c: c, e: e, f: rf}, nil
}

// fillWriter writes to the temporary file, counting bytes and the CRC32C and
// growing the reservation of an unknown-size fill. It is used by a single
// fill goroutine.
type fillWriter struct {
	c        *Cache
	ctx      context.Context
	f        *os.File
	crc      hash.Hash32
	size     int64 // expected size, or -1
	n        int64 // bytes written
	reserved int64 // bytes reserved so far
	err      error // first Write error
}

func (w *fillWriter) Write(p []byte) (int, error) {
	n, err := w.write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

func (w *fillWriter) write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	end := w.n + int64(len(p))
	if w.size >= 0 && end > w.size {
		return 0, fmt.Errorf("write past %d bytes: %w", w.size, ErrLongBlob)
	}
	if end > w.reserved {
		if err := w.grow(end - w.reserved); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.crc.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// grow reserves at least need more bytes: a step that doubles with the
// blob, or exactly need if the step does not fit.
func (w *fillWriter) grow(need int64) error {
	step := max(need, min(max(w.reserved, growStep), growMax))
	err := w.c.reserve(step)
	if err != nil && step > need {
		step = need
		err = w.c.reserve(step)
	}
	if err != nil {
		return err
	}
	w.reserved += step
	return nil
}

var _ io.Writer = (*fillWriter)(nil)
