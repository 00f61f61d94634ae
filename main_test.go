package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/fs"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// TestMountRefusesBadInput checks that every bad input gets one clear error
// and leaves nothing mounted.
func TestMountRefusesBadInput(t *testing.T) {
	testkit.RequireFUSE(t) // the checks after the mount point's cannot be reached without FUSE
	srv := testenv.StartServer(t, devserver.Options{})

	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("PICTOGRAPH_API_KEY", "")
	t.Setenv("PICTOGRAPH_BASE_URL", "")
	t.Setenv("PICTOGRAPH_MAX_RETRIES", "0")
	empty := t.TempDir()
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "mine.txt"), []byte("keep"), 0o644)
	cache := "--cache-dir=" + t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o600)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no mount point", []string{"mount"}, "exactly one argument"},
		{"missing mount point", []string{"mount", "--api-key=k", filepath.Join(empty, "nope")}, "does not exist"},
		{"non-empty mount point", []string{"mount", "--api-key=k", full}, "not empty"},
		{"no key", []string{"mount", "--api-url=" + srv.APIURL(), empty}, "PICTOGRAPH_API_KEY"},
		{"bad base URL", []string{"mount", "--api-key=k", "--api-url=localhost", empty}, "base URL"},
		{"unreachable API", []string{"mount", "--api-key=k", "--api-url=http://127.0.0.1:1", cache, empty}, "cannot reach"},
		{"rejected key", []string{"mount", "--api-key=pk_live_wrong", "--api-url=" + srv.APIURL(), cache, empty}, "rejected"},
		{"bad cache size", []string{"mount", "--api-key=" + srv.AdminKey(), "--api-url=" + srv.APIURL(), "--cache-size=lots", cache, empty}, "--cache-size"},
		{"bad log level", []string{"mount", "--log-level=loud", empty}, "--log-level"},
		{"cache dir under a file", []string{"mount", "--api-key=" + srv.AdminKey(), "--api-url=" + srv.APIURL(), "--cache-dir=" + notDir + "/c", empty}, "--cache-dir " + notDir + "/c: "},
		{"metrics address in use (after mounting)", []string{"mount", "--api-key=" + srv.AdminKey(), "--api-url=" + srv.APIURL(), cache, "--metrics-addr=" + busy.Addr().String(), empty}, "--metrics-addr"},
		{"bad status", []string{"mount", "--status=done", empty}, "--status"},
		{"unmount of a plain directory", []string{"unmount", empty}, "not mounted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newApp().Run(append([]string{"pictofs"}, tt.args...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("pictofs %s: got error %v, want one containing %q", strings.Join(tt.args, " "), err, tt.want)
			}
			if mounted, _ := fs.IsMountpoint(empty); mounted {
				fs.Unmount(empty, true)
				t.Errorf("pictofs %s left %s mounted", strings.Join(tt.args, " "), empty)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(full, "mine.txt")); string(b) != "keep" {
		t.Errorf("the user's file: got %q, want %q", b, "keep")
	}
}
