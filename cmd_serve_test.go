package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// runServe runs `pictofs serve args…` until the data directory holds its
// key file (the server is made) and the server printed its addresses, then
// stops it; it returns the error and what it printed.
func runServe(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out, errOut testkit.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, append([]string{"pictofs", "serve", "--addr", "127.0.0.1:0", "--storage-addr", "127.0.0.1:0"}, args...))
	}()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(out.String(), "admin key:") {
		select {
		case err := <-done:
			return out.String() + errOut.String(), err
		case <-deadline:
			t.Fatalf("serve did not start in 20 s: %s %s", out.String(), errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		return out.String() + errOut.String(), err
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop in 20 s")
	}
	return "", nil
}

func TestServeRelativeAndHomePaths(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	wd := t.TempDir()
	t.Chdir(wd)
	imports := filepath.Join(home, "pics")
	if err := os.MkdirAll(filepath.Join(imports, "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantDir string
	}{
		{"relative --data", []string{"--data", "sv"}, filepath.Join(wd, "sv")},
		{"~ in --data and --import", []string{"--data", "~/state", "--import", "pics=~/pics"}, filepath.Join(home, "state")},
	}
	for _, tt := range tests {
		out, err := runServe(t, tt.args...)
		if err != nil {
			t.Errorf("%s: got %v (%s), want the server to start and stop", tt.name, err, out)
			continue
		}
		if _, err := os.Stat(filepath.Join(tt.wantDir, "pictograph.db")); err != nil {
			t.Errorf("%s: no database in %s: %v", tt.name, tt.wantDir, err)
		}
		if !strings.Contains(out, filepath.Join(tt.wantDir, "keys.json")) {
			t.Errorf("%s: the output does not name the key file in %s:\n%s", tt.name, tt.wantDir, out)
		}
	}
}

func TestServePathErrors(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	if err := os.WriteFile("file", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string // parts of the one-line message
	}{
		{"data under a file", []string{"--data", "file/sub"}, []string{"--data file/sub", filepath.Join(wd, "file", "sub"), "not a directory"}},
		{"data is a file", []string{"--data", "file"}, []string{"--data file", "not a directory"}},
		{"missing import", []string{"--data", "sv", "--import", "x=nope"}, []string{"--import x=nope", filepath.Join(wd, "nope"), "no such file or directory"}},
		{"import of a file", []string{"--data", "sv", "--import", "x=file"}, []string{"--import x=file", "not a directory"}},
		{"unknown user's home", []string{"--data", "~no-such-user-xyz/x"}, []string{"--data ~no-such-user-xyz/x", "no such user"}},
		{"empty data", []string{"--data", " "}, []string{"--data", "is empty"}},
		{"negative export delay", []string{"--data", "sv", "--export-delay", "-1s"}, []string{"--export-delay"}},
		{"bad log level", []string{"--data", "sv", "--log-level", "loud"}, []string{`--log-level "loud"`, "want debug, info, warn or error"}},
		{"export fail rate", []string{"--data", "sv", "--export-fail-rate", "2"}, []string{"--export-fail-rate 2"}},
	}
	for _, tt := range tests {
		out, err := runServe(t, tt.args...)
		if err == nil {
			t.Errorf("%s: got no error (%s)", tt.name, out)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: got a message of several lines: %q", tt.name, msg)
		}
		for _, w := range tt.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: got %q, want it to say %q", tt.name, msg, w)
			}
		}
	}
}
