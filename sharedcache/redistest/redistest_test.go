package redistest

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// recordingTB records what Require asks of a test instead of doing it.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                      {}
func (r *recordingTB) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }
func (r *recordingTB) Fatalf(f string, args ...any) { r.failed = fmt.Sprintf(f, args...) }

func TestRequireWithoutTheBinary(t *testing.T) {
	tests := []struct {
		name         string
		require      string
		skip, failed bool
	}{
		{"skips by default", "", true, false},
		{"fails when required", "1", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir())
			t.Setenv(RequireEnv, tt.require)
			r := &recordingTB{TB: t}
			Require(r)
			if (r.skipped != "") != tt.skip || (r.failed != "") != tt.failed {
				t.Errorf("got skipped %q failed %q, want skip %v fail %v", r.skipped, r.failed, tt.skip, tt.failed)
			}
		})
	}
}

func TestServerRestartsOnItsPort(t *testing.T) {
	s := Start(t)
	ping := func() error {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		buf := make([]byte, 7)
		n, err := c.Read(buf)
		if string(buf[:n]) != "+PONG\r\n" {
			return fmt.Errorf("got %q, %v; want +PONG", buf[:n], err)
		}
		return nil
	}
	if err := ping(); err != nil {
		t.Fatalf("started server: %v", err)
	}
	s.Kill()
	if err := ping(); err == nil {
		t.Fatalf("killed server still answers")
	}
	s.Restart()
	if err := ping(); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
}

func TestProxyDelaysReplies(t *testing.T) {
	s := Start(t)
	p := NewProxy(t, s.Addr)
	const delay = 200 * time.Millisecond
	p.SetDelay(delay)
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.Write([]byte("PING\r\n"))
	buf := make([]byte, 7)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(buf); string(buf[:n]) != "+PONG\r\n" {
		t.Fatalf("got %q, %v; want +PONG", buf[:n], err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("reply after %s, want at least %s", took, delay)
	}
}
