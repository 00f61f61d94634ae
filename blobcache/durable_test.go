package blobcache

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCleanCloseSkipsVerification checks both sides of the synced marker: a
// cache closed cleanly is trusted on the next Open (no CRC read, so a blob
// damaged behind its back is served as is), and a cache that was not closed
// (a crash) verifies every blob on first use and drops a damaged one.
func TestCleanCloseSkipsVerification(t *testing.T) {
	tests := []struct {
		name      string
		clean     bool
		wantFound bool
	}{
		{"after a clean close blobs are trusted", true, true},
		{"after a crash blobs are verified", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := open(Options{Dir: dir, MaxBytes: 1 << 20, Logger: discard}, plentyFree, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			k := key(1)
			data := blobData(k, 4096)
			mustFill(t, c, k, data).Release()
			paths, _ := filepath.Glob(filepath.Join(dir, string(k[:2]), string(k)+"-*"))
			if len(paths) != 1 {
				t.Fatalf("blob files of the key: got %v, want one", paths)
			}
			path := paths[0]
			if tt.clean {
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				os.Remove(filepath.Join(dir, syncedName))
			}
			if _, err := os.Stat(filepath.Join(dir, syncedName)); (err == nil) != tt.clean {
				t.Fatalf("synced marker present: got %v, want %v", err == nil, tt.clean)
			}
			damaged := append([]byte(nil), data...)
			damaged[100] ^= 0xff
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			past := time.Now().Add(-time.Hour)
			os.Chtimes(path, past, past)

			again := openTest(t, dir, 1<<20, testOpt{})
			h2, ok := again.Get(k, 0)
			if ok != tt.wantFound {
				t.Fatalf("Get after reopen: got found=%v, want %v", ok, tt.wantFound)
			}
			if ok {
				h2.Release()
			}
			if _, err := os.Stat(filepath.Join(dir, syncedName)); err == nil {
				t.Errorf("synced marker still present after Open: got present, want removed (it is good for one Open)")
			}
		})
	}
}
