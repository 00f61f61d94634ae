// Package control is the local control socket of a running mount: where the
// socket of each mount point lives, the messages exchanged on it, and the
// plumbing to serve and call it (HTTP over a Unix socket). `pictofs status`
// and `pictofs warm` talk to a daemon through it.
//
// It owns the socket directory and file permissions (directory 0700, socket
// 0600: only the mounting user can connect) and the wire types. It must not
// know what a mount is made of: the daemon fills in the answers.
package control

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Routes served on the socket.
const (
	StatusPath = "/v1/status"
	WarmPath   = "/v1/warm"
)

// Dir is the directory of the control sockets of this user's mounts:
// $XDG_RUNTIME_DIR/pictofs, else /run/pictofs for root, else
// <temp dir>/pictofs-<uid>.
func Dir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "pictofs")
	}
	if os.Geteuid() == 0 {
		return "/run/pictofs"
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("pictofs-%d", os.Geteuid()))
}

// SocketPath is the socket of the mount at the absolute path mountpoint:
// named by a hash of the path, since socket paths are limited to 108 bytes.
func SocketPath(dir, mountpoint string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(mountpoint)))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".sock")
}

// Listen creates dir (0700) if needed and listens on the socket of
// mountpoint (0600). A socket left by a dead daemon is replaced; one that
// answers is an error.
func Listen(dir, mountpoint string) (net.Listener, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, "", fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return nil, "", fmt.Errorf("control socket directory %s belongs to uid %d, not to this user", dir, sys.Uid)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, "", fmt.Errorf("control socket directory %s: %w", dir, err)
		}
	}
	path := SocketPath(dir, mountpoint)
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, "", fmt.Errorf("control socket %s: another pictofs daemon serves %s", path, mountpoint)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, "", fmt.Errorf("control socket %s: %w", path, err)
	}
	return l, path, nil
}

// Client returns an HTTP client whose every request goes to the socket at
// path (the URL's host is ignored; use "http://pictofs").
func Client(path string) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression: true,
	}}
}

// URL is the URL of a route on a control socket.
func URL(route string) string { return "http://pictofs" + route }

// RefusedError is a daemon's answer with a status other than 200: its
// message.
type RefusedError struct{ Message string }

func (e *RefusedError) Error() string { return e.Message }

// Call sends method route to the daemon behind the socket at sock, with
// body (JSON) if it is not nil. An answer other than 200 is a
// *RefusedError carrying the daemon's message; a 200's body is the caller's to read and
// close.
func Call(ctx context.Context, sock, method, route string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, URL(route), r)
	if err != nil {
		return nil, err
	}
	resp, err := Client(sock).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &RefusedError{Message: strings.TrimSpace(string(msg))}
	}
	return resp, nil
}

// Sockets lists the control sockets in dir, sorted.
func Sockets(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sock") && e.Type()&os.ModeSocket != 0 {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Status is a running mount's answer to StatusPath.
type Status struct {
	Mountpoint   string    `json:"mountpoint"`
	PID          int       `json:"pid"`
	Version      string    `json:"version"`
	API          string    `json:"api"` // host of the API
	Organization string    `json:"organization"`
	Started      time.Time `json:"started"`
	Passthrough  bool      `json:"passthrough"`
	Datasets     []string  `json:"datasets"` // as listed by the mount so far
	Cache        struct {
		Dir       string `json:"dir"`
		Bytes     int64  `json:"bytes"`
		Cap       int64  `json:"cap"`
		Blobs     int    `json:"blobs"`
		Hits      uint64 `json:"hits"`
		Misses    uint64 `json:"misses"`
		Evictions uint64 `json:"evictions"`
	} `json:"cache"`
	Requests struct {
		LastHour   int   `json:"last_hour"`   // API attempts in the last hour
		Budget     int   `json:"budget"`      // --requests-per-hour; 0 = none
		BudgetLeft int   `json:"budget_left"` // meaningful when Budget > 0
		API        int64 `json:"api"`         // API attempts since the mount started
		Storage    int64 `json:"storage"`     // signed-URL requests since the mount started
	} `json:"requests"`
	Prefetch struct {
		Queued   int    `json:"queued"`
		InFlight int    `json:"in_flight"`
		Fetched  uint64 `json:"fetched"`
		Failed   uint64 `json:"failed"`
	} `json:"prefetch"`
}

// WarmRequest asks a daemon to warm a dataset or a folder of it.
type WarmRequest struct {
	Dataset string `json:"dataset"` // the entry name under the mount point
	Subdir  string `json:"subdir"`  // a folder under images/ (entry names), "" for all
}

// WarmProgress is where a warm stands.
type WarmProgress struct {
	Files      int64 `json:"files"`
	Bytes      int64 `json:"bytes"`
	TotalFiles int64 `json:"total_files"`
	TotalBytes int64 `json:"total_bytes"`
	Failed     int64 `json:"failed"`
}

// WarmResult is how a warm ended.
type WarmResult struct {
	WarmProgress
	// FailedPaths are some of the files that failed (at most 20), with why.
	FailedPaths []string `json:"failed_paths,omitempty"`
}

// WarmLine is one line of the NDJSON answer to WarmPath: progress lines,
// then one line with Result or Error.
type WarmLine struct {
	Progress *WarmProgress `json:"progress,omitempty"`
	Result   *WarmResult   `json:"result,omitempty"`
	Error    string        `json:"error,omitempty"`
}
