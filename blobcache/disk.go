package blobcache

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const tmpName = "tmp"

func (c *Cache) tmpDir() string { return filepath.Join(c.dir, tmpName) }

func (c *Cache) shardDir(key Key) string { return filepath.Join(c.dir, string(key[:2])) }

// blobPath is the file of a complete blob: its record is in the name.
func (c *Cache) blobPath(key Key, size int64, crc uint32) string {
	return filepath.Join(c.shardDir(key), fmt.Sprintf("%s-%d-%08x", key, size, crc))
}

// parseName parses "<key>-<size>-<crc32c>".
func parseName(name string) (key Key, size int64, crc uint32, ok bool) {
	k, rest, ok1 := strings.Cut(name, "-")
	s, h, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || !Key(k).valid() || len(h) != 8 {
		return "", 0, 0, false
	}
	size, err := strconv.ParseInt(s, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != s {
		return "", 0, 0, false
	}
	c, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return "", 0, 0, false
	}
	return Key(k), size, uint32(c), true
}

// mkdir0700 creates dir 0700, or tightens an existing one of ours to 0700.
func mkdir0700(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("blobcache: %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// makeDirs creates Dir and tmp. An existing Dir keeps its mode (it may be
// shared, like a home directory); the directories below it are always 0700.
// Shard directories are created by the first fill that needs them.
func (c *Cache) makeDirs() error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("blobcache: %w", err)
	}
	if fi, err := os.Stat(c.dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		c.log.Debug("cache directory is open to other users; its subdirectories are 0700", "dir", c.dir, "mode", fi.Mode().Perm())
	}
	if err := mkdir0700(c.tmpDir()); err != nil {
		return fmt.Errorf("blobcache: %w", err)
	}
	return nil
}

// isShard reports whether name is a shard directory name: two lower-case
// hex digits.
func isShard(name string) bool { return len(name) == 2 && isLowerHex(name) }

// scan reads every shard and returns the complete blobs, least recently used
// first. It deletes blob files whose size does not match their name and, of
// several files of one key, keeps the newest.
func (c *Cache) scan() []*entry {
	byKey := make(map[Key]*entry)
	top, err := readDir(c.dir)
	if err != nil {
		c.log.Warn("read cache directory", "dir", c.dir, "err", err)
	}
	for _, de := range top {
		shard := de.Name()
		if !de.IsDir() || !isShard(shard) {
			continue
		}
		dir := filepath.Join(c.dir, shard)
		if err := mkdir0700(dir); err != nil {
			c.log.Warn("cache shard", "dir", dir, "err", err)
		}
		des, err := readDir(dir)
		if err != nil {
			c.log.Warn("read cache shard", "dir", dir, "err", err)
			continue
		}
		for _, de := range des {
			key, size, crc, ok := parseName(de.Name())
			if !ok || string(key[:2]) != shard || !de.Type().IsRegular() {
				continue // not a blob of ours: leave it alone
			}
			fi, err := de.Info()
			if err != nil {
				continue // vanished (another process evicted it)
			}
			path := filepath.Join(dir, de.Name())
			if fi.Size() != size {
				c.log.Warn("dropping truncated blob", "path", path, "size", fi.Size(), "want", size)
				removeFile(path)
				continue
			}
			e := &entry{key: key, path: path, size: size, crc: crc, filled: fi.ModTime()}
			e.touched = e.filled
			if at := accessTime(fi); at.After(e.touched) {
				e.touched = at
			}
			if old := byKey[key]; old != nil {
				if old.filled.After(e.filled) {
					old, e = e, old
				}
				removeFile(old.path)
			}
			byKey[key] = e
		}
	}
	out := make([]*entry, 0, len(byKey))
	for _, e := range byKey {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int {
		if d := a.touched.Compare(b.touched); d != 0 {
			return d
		}
		return strings.Compare(a.path, b.path)
	})
	return out
}

// findOnDisk returns the newest complete file of key, as an unverified entry,
// and the files of key whose size does not match their name.
func (c *Cache) findOnDisk(key Key) (found *entry, bad []string) {
	dir := c.shardDir(key)
	names, err := readDirNames(dir)
	if err != nil {
		return nil, nil
	}
	for _, name := range names {
		k, size, crc, ok := parseName(name)
		if !ok || k != key {
			continue
		}
		path := filepath.Join(dir, name)
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if fi.Size() != size {
			bad = append(bad, path)
			continue
		}
		if found != nil && !fi.ModTime().After(found.filled) {
			continue
		}
		found = &entry{key: key, path: path, size: size, crc: crc, filled: fi.ModTime(), touched: c.now()}
	}
	return found, bad
}

// filesOf returns every blob file of key on disk.
func (c *Cache) filesOf(key Key) []string {
	dir := c.shardDir(key)
	names, err := readDirNames(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range names {
		if k, _, _, ok := parseName(name); ok && k == key {
			out = append(out, filepath.Join(dir, name))
		}
	}
	return out
}

func readDir(dir string) ([]fs.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// removeFile deletes path; a file already gone is not an error, and other
// errors leave a file that the next Open or Remove deletes.
func removeFile(path string) {
	_ = os.Remove(path)
}

// stage is a Cache instance's private directory for temporary files,
// Dir/tmp/<id>/, guarded by an flock on Dir/tmp/<id>.lock held for the
// instance's lifetime. A stage whose lock can be taken belongs to a dead
// instance and is removed by the next Open.
type stage struct {
	dir      string
	lockPath string
	lock     *os.File
}

func newStage(tmp string) (*stage, error) {
	for range 8 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("blobcache: %w", err)
		}
		id := hex.EncodeToString(b[:])
		lockPath := filepath.Join(tmp, id+".lock")
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("blobcache: %w", err)
		}
		if err := flock(f); errors.Is(err, unix.EWOULDBLOCK) {
			f.Close() // an Open cleaning up took it first; it deletes the file
			continue
		}
		// Without flock support the stage is simply never cleaned by others.
		// Make sure the file locked is still the one at lockPath: a cleaner
		// may have removed it between our create and our lock.
		fi, err1 := f.Stat()
		li, err2 := os.Lstat(lockPath)
		if err1 != nil || err2 != nil || !os.SameFile(fi, li) {
			f.Close()
			continue
		}
		dir := filepath.Join(tmp, id)
		if err := os.Mkdir(dir, 0o700); err != nil {
			f.Close()
			removeFile(lockPath)
			return nil, fmt.Errorf("blobcache: %w", err)
		}
		return &stage{dir: dir, lockPath: lockPath, lock: f}, nil
	}
	return nil, errors.New("blobcache: could not create a staging directory")
}

func (s *stage) close() error {
	err := os.RemoveAll(s.dir)
	removeFile(s.lockPath)
	s.lock.Close()
	if err != nil {
		return fmt.Errorf("blobcache: %w", err)
	}
	return nil
}

// cleanStages removes the staging directories of dead instances: those
// whose lock file can be locked, and those with no lock file at all (a live
// instance creates its lock file before its directory and removes it after).
func (c *Cache) cleanStages() {
	tmp := c.tmpDir()
	des, err := readDir(tmp)
	if err != nil {
		c.log.Warn("read staging directory", "dir", tmp, "err", err)
		return
	}
	for _, de := range des {
		name := de.Name()
		if id, ok := strings.CutSuffix(name, ".lock"); ok {
			c.cleanStage(tmp, id)
			continue
		}
		if !de.IsDir() {
			continue
		}
		if _, err := os.Lstat(filepath.Join(tmp, name+".lock")); errors.Is(err, fs.ErrNotExist) {
			c.log.Debug("removing orphaned staging directory", "dir", name)
			_ = os.RemoveAll(filepath.Join(tmp, name))
		}
	}
}

func (c *Cache) cleanStage(tmp, id string) {
	lockPath := filepath.Join(tmp, id+".lock")
	f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if flock(f) != nil {
		return // alive, or locks unsupported: leave it
	}
	c.log.Debug("removing staging directory of a dead instance", "id", id)
	_ = os.RemoveAll(filepath.Join(tmp, id))
	removeFile(lockPath)
}

// flock takes an exclusive, non-blocking lock on f.
func flock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lockErr error
	if err := rc.Control(func(fd uintptr) {
		for {
			lockErr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if lockErr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return lockErr
}
