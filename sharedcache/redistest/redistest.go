// Package redistest starts real redis-server processes for tests, and a
// loopback proxy that delays a server's replies. It decides whether a test
// that needs Redis may skip (testkit.Unavailable with RequireEnv), and nothing
// else: it knows nothing of pictofs's use of Redis.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

// RequireEnv names the variable that turns a Redis test's skip into a
// failure; .ci/run sets it, since a CI run that started no Redis has not
// tested the shared cache.
const RequireEnv = "PICTOFS_REQUIRE_REDIS"

// Binary is the server started by Start.
const Binary = "redis-server"

// startTimeout bounds the wait for a server to accept connections.
const startTimeout = 10 * time.Second

// Require skips t when redis-server is not installed, or fails it when
// RequireEnv is set. It returns the binary's path.
func Require(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath(Binary)
	if err == nil {
		return path
	}
	testkit.Unavailable(t, RequireEnv, fmt.Sprintf("%s not installed: %v", Binary, err))
	return ""
}

// Server is a redis-server on a loopback port, in its own temporary
// directory, without persistence. It is stopped when the test ends.
type Server struct {
	Addr string // 127.0.0.1:port; stays the same across Restart

	t    testing.TB
	bin  string
	dir  string
	args []string // beyond the defaults

	mu   sync.Mutex
	cmd  *exec.Cmd     // guarded by mu; nil while stopped
	done chan struct{} // guarded by mu; closed when cmd has exited
}

// Start starts a server with the defaults (--save ” --appendonly no, bound
// to 127.0.0.1 on a free port) and args appended, e.g. "--requirepass", "pw"
// or "--maxmemory", "1mb". It skips or fails t as Require does.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Require(t), dir: t.TempDir(), args: args}
	t.Cleanup(s.Kill)
	var err error
	for range 3 { // a free port can be taken between probing and binding
		if s.Addr, err = freePort(); err == nil {
			if err = s.start(); err == nil {
				return s
			}
		}
	}
	t.Fatalf("redistest: %v", err)
	return nil
}

// URL returns redis://127.0.0.1:port/0.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"--bind", "127.0.0.1", "--dir", s.dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", ""}
	if !s.hasArg("--tls-port") {
		args = append(args, "--port", port)
	} else {
		args = append(args, "--port", "0")
	}
	args = append(args, s.expand(port)...)
	cmd := exec.Command(s.bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	log := new(bytes.Buffer)
	var logMu sync.Mutex
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		s.mu.Lock()
		s.cmd, s.done = cmd, done
		s.mu.Unlock()
		return nil
	case <-done:
		logMu.Lock()
		defer logMu.Unlock()
		return fmt.Errorf("%s exited at start:\n%s", s.bin, log.String())
	case <-timer.C:
		cmd.Process.Kill()
		<-done
		logMu.Lock()
		defer logMu.Unlock()
		return fmt.Errorf("%s not ready after %s:\n%s", s.bin, startTimeout, log.String())
	}
}

// hasArg reports whether the extra args hold name.
func (s *Server) hasArg(name string) bool {
	for _, a := range s.args {
		if a == name {
			return true
		}
	}
	return false
}

// expand replaces "{port}" in the extra args (e.g. for --tls-port).
func (s *Server) expand(port string) []string {
	out := make([]string, len(s.args))
	for i, a := range s.args {
		out[i] = strings.ReplaceAll(a, "{port}", port)
	}
	return out
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts a stopped server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Proxy forwards loopback TCP connections to a target, delaying every chunk
// of the target's replies by a settable time: a slow server.
type Proxy struct {
	Addr string

	target string
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	delay time.Duration     // guarded by mu
	conns map[net.Conn]bool // guarded by mu
}

// NewProxy starts a proxy to target, closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, ctx: ctx, cancel: cancel,
		conns: make(map[net.Conn]bool)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// URL returns redis://ADDR/0 for the proxy.
func (p *Proxy) URL() string { return "redis://" + p.Addr + "/0" }

// SetDelay sets the delay of every reply chunk from now on.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

func (p *Proxy) currentDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.ctx.Err() != nil {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, true) || !p.track(server, true) {
			client.Close()
			server.Close()
			return
		}
		p.wg.Add(2)
		go p.pipe(server, client, false)
		go p.pipe(client, server, true)
	}
}

// pipe copies from src to dst, delaying each chunk if delayed, and closes
// both ends when either side ends.
func (p *Proxy) pipe(dst, src net.Conn, delayed bool) {
	defer p.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		p.track(src, false)
		p.track(dst, false)
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := p.currentDelay(); delayed && d > 0 {
				select {
				case <-time.After(d):
				case <-p.ctx.Done():
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Close stops the proxy and every connection through it.
func (p *Proxy) Close() {
	p.cancel()
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
