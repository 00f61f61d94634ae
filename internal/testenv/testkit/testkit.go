// Package testkit is the part of testenv that imports nothing of pictofs,
// so that the tests inside the packages testenv is built on (client,
// devserver, blobcache, prefetch, sharedcache, catalog) can use it as well
// as every other: the one rule that lets a test skip (Unavailable), a
// logger that is quiet unless the tests run with -v, a buffer for logs and
// output, waits with a deadline, and the members of a ZIP.
package testkit

import (
	"archive/zip"
	"bytes"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// Logger is the logger every part gets in tests: debug level to stderr
// when the tests run with -v, nothing otherwise.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers: a sink
// for a process's output or a logger's lines that a test reads meanwhile.
type Buffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Logger returns a debug-level text logger that writes into s.
func (s *Buffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// WaitFor checks cond every 10 ms until it holds, and fails the test if it
// does not within timeout. It is for counters and states that have no
// event to wait on (another process's, the devserver's); what is waited for
// is named in the failure.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ZipMembers reads every member of a ZIP, keyed by name; a name that
// appears twice is an error of the test.
func ZipMembers(t testing.TB, zr *zip.Reader) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte, len(zr.File))
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("member %s: %v", f.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("member %s: %v", f.Name, err)
		}
		if _, dup := out[f.Name]; dup {
			t.Errorf("member %s twice", f.Name)
		}
		out[f.Name] = b
	}
	return out
}
