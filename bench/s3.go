package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// s3Bucket is the bucket the FUSE peers mount.
const s3Bucket = "bench"

// s3Server is an in-memory S3-compatible server (gofakes3) holding a copy of
// a dataset folder, behind the same injected latency and per-response
// bandwidth cap as the devserver's storage host.
type s3Server struct {
	url      string
	srv      *http.Server
	requests atomic.Int64 // every request, any method
	gets     atomic.Int64 // GET of an object (not a listing)
	bytes    atomic.Int64 // response body bytes
}

// startS3 loads every file under root into the bucket as <relative path>,
// and serves it on a free loopback port.
func startS3(ctx context.Context, root string, latency time.Duration, bandwidth int64) (*s3Server, error) {
	backend := s3mem.New()
	// What gofakes3's own PUT handler adds: s3fs needs Last-Modified (without
	// it, it serves zeros from its cache).
	modified := time.Now().UTC().Format(http.TimeFormat)
	if err := backend.CreateBucket(s3Bucket); err != nil {
		return nil, fmt.Errorf("s3: create bucket: %w", err)
	}
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel, err := filepath.Rel(root, path); err == nil && rel != "." {
				dirs = append(dirs, filepath.ToSlash(rel))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(filepath.Ext(path))
		if ct == "" {
			ct = "application/octet-stream"
		}
		meta := map[string]string{"Content-Type": ct, "Last-Modified": modified}
		_, err = backend.PutObject(s3Bucket, filepath.ToSlash(rel), meta, bytes.NewReader(b), int64(len(b)), nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("s3: load %s: %w", root, err)
	}
	// Directory objects ("dir/", empty), as s3fs makes them on mkdir: with
	// notsup_compat_dir (one of its fast flags) s3fs sees only folders that
	// have one. rclone skips them in listings.
	for _, d := range dirs {
		meta := map[string]string{"Content-Type": "application/x-directory", "Last-Modified": modified}
		if _, err := backend.PutObject(s3Bucket, d+"/", meta, bytes.NewReader(nil), 0, nil); err != nil {
			return nil, fmt.Errorf("s3: directory object %s/: %w", d, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("s3: listen: %w", err)
	}
	s := &s3Server{url: "http://" + ln.Addr().String()}
	fake := gofakes3.New(backend, gofakes3.WithAutoBucket(false))
	// ErrorLog: gofakes3 writes an error status after a client hangs up
	// mid-body (readers cancel), which net/http logs as superfluous.
	s.srv = &http.Server{Handler: s.throttle(fake.Server(), latency, bandwidth), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "bench: s3 server: %v\n", err)
		}
	}()
	return s, nil
}

func (s *s3Server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("s3: shutdown: %w", errors.Join(err, s.srv.Close()))
	}
	return nil
}

// throttle delays every response's first byte by latency and paces its body
// at bandwidth bytes/s (0 = unlimited), as the devserver's storage does.
func (s *s3Server) throttle(next http.Handler, latency time.Duration, bandwidth int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "" && len(r.URL.Query()) == 0 {
			s.gets.Add(1)
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(latency):
		}
		next.ServeHTTP(&pacedWriter{ResponseWriter: w, ctx: r.Context(), bandwidth: bandwidth, start: time.Now(), count: &s.bytes}, r)
	})
}

// pacedWriter caps the rate of one response body.
type pacedWriter struct {
	http.ResponseWriter
	ctx       context.Context
	bandwidth int64 // bytes/s; 0 = unlimited
	start     time.Time
	sent      int64
	count     *atomic.Int64
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		chunk := p
		if w.bandwidth > 0 {
			chunk = p[:min(int64(len(p)), max(w.bandwidth/20, 1024))]
		}
		n, err := w.ResponseWriter.Write(chunk)
		total += n
		w.sent += int64(n)
		w.count.Add(int64(n))
		if err != nil {
			return total, err
		}
		p = p[n:]
		if w.bandwidth > 0 {
			due := w.start.Add(time.Duration(float64(w.sent) / float64(w.bandwidth) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-w.ctx.Done():
					return total, w.ctx.Err()
				case <-time.After(d):
				}
			}
		}
	}
	return total, nil
}

func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
