package devserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// blobStore keeps immutable, content-addressed blobs under root, sharded by
// the first byte of their SHA-256 as root/ab/abcd…(hex); the 256 shard
// directories are made once, up front. Writes go to a temp file that is renamed into
// place, so a reader never sees a partial blob. It has no mutable state.
type blobStore struct {
	root string
}

func newBlobStore(root string) (*blobStore, error) {
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("%02x", i)), 0o700); err != nil {
			return nil, fmt.Errorf("create blob dir: %w", err)
		}
	}
	return &blobStore{root: root}, nil
}

func (b *blobStore) path(sum []byte) string {
	h := hex.EncodeToString(sum)
	return filepath.Join(b.root, h[:2], h)
}

// put stores data and returns its SHA-256.
func (b *blobStore) put(data []byte) ([]byte, error) {
	s := sha256.Sum256(data)
	sum := s[:]
	p := b.path(sum)
	if _, err := os.Stat(p); err == nil {
		return sum, nil
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create blob temp: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("write blob: %w", err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("rename blob: %w", err)
	}
	return sum, nil
}

// putReader streams r into the store (at most limit bytes) and returns its
// SHA-256 and size.
func (b *blobStore) putReader(r io.Reader, limit int64) ([]byte, int64, error) {
	f, err := os.CreateTemp(b.root, ".upload-*")
	if err != nil {
		return nil, 0, fmt.Errorf("create upload temp: %w", err)
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, 0, fmt.Errorf("write upload: %w", err)
	}
	if n > limit {
		return nil, 0, fmt.Errorf("upload larger than %d bytes", limit)
	}
	sum := h.Sum(nil)
	if err := os.Rename(f.Name(), b.path(sum)); err != nil {
		return nil, 0, fmt.Errorf("rename upload: %w", err)
	}
	return sum, n, nil
}

func (b *blobStore) open(sum []byte) (*os.File, error) {
	f, err := os.Open(b.path(sum))
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	return f, nil
}

func (b *blobStore) remove(sum []byte) error {
	err := os.Remove(b.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// blobWriter is a blob being written from a stream: Commit moves it into
// place under its SHA-256, Abort drops it.
type blobWriter struct {
	b *blobStore
	f *os.File
	h hash.Hash
	n int64
}

// create starts a blob written by the caller.
func (b *blobStore) create() (*blobWriter, error) {
	f, err := os.CreateTemp(b.root, ".build-*")
	if err != nil {
		return nil, fmt.Errorf("create blob temp: %w", err)
	}
	return &blobWriter{b: b, f: f, h: sha256.New()}, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Commit closes the blob and renames it to its SHA-256; it returns the sum
// and the size.
func (w *blobWriter) Commit() ([]byte, int64, error) {
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return nil, 0, fmt.Errorf("write blob: %w", err)
	}
	sum := w.h.Sum(nil)
	if err := os.Rename(w.f.Name(), w.b.path(sum)); err != nil {
		os.Remove(w.f.Name())
		return nil, 0, fmt.Errorf("rename blob: %w", err)
	}
	return sum, w.n, nil
}

// Abort closes and removes the unfinished blob.
func (w *blobWriter) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}
