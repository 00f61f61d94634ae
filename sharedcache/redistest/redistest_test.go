package redistest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pictofs/pictofs/internal/testenv/testkit"
)

func TestRequireWithoutTheBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	testkit.WantSkipRule(t, RequireEnv, Binary+" not installed", func(tb testing.TB) { Require(tb) })
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
