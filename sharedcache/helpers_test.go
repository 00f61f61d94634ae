package sharedcache

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pictofs/pictofs/internal/testenv/testkit"
	"github.com/pictofs/pictofs/sharedcache/redistest"
)

// testNamespace is the namespace of tiers made by newTier.
const testNamespace = "https://api.pictograph.test|org-1"

// logBuffer collects a tier's log lines, at debug level, for assertions.
type logBuffer struct{ testkit.Buffer }

// warnings counts the warnings whose message starts with msg.
func (l *logBuffer) warnings(msg string) int {
	return strings.Count(l.String(), `level=WARN msg="`+msg)
}

// infos counts the info lines whose message starts with msg.
func (l *logBuffer) infos(msg string) int {
	return strings.Count(l.String(), `level=INFO msg="`+msg)
}

// newTier returns a Tier on url with test defaults (testNamespace, a log
// buffer) for the zero fields of opts, closed when the test ends.
func newTier(t testing.TB, url string, opts Options) (*Tier, *logBuffer) {
	t.Helper()
	logs := new(logBuffer)
	opts.URL = url
	if opts.Namespace == "" {
		opts.Namespace = testNamespace
	}
	if opts.Logger == nil {
		opts.Logger = logs.Logger()
	}
	tier, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { tier.Close() })
	return tier, logs
}

// rawClient returns a plain go-redis client to s, to plant and inspect values.
func rawClient(t *testing.T, s *redistest.Server, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: password, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// flush waits for tier's publish queue to drain.
func flush(t testing.TB, tier *Tier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tier.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v (stats %+v)", err, tier.Stats())
	}
}

// blob returns n deterministic bytes that differ per name.
func blob(name string, n int) []byte {
	b := make([]byte, n)
	seed := hashName(name)
	for i := range b {
		b[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
	return b
}

// readSlack is what a read may overrun its bound by on a loaded test
// machine: scheduling, not waiting on the server.
const readSlack = 150 * time.Millisecond

// timedGet returns Get's result and how long it took.
func timedGet(tier *Tier, key string, size int64) (bool, time.Duration) {
	start := time.Now()
	_, ok := tier.Get(context.Background(), key, size)
	return ok, time.Since(start)
}

func mustEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes %s, want %d bytes %s", what, len(got), preview(got), len(want), preview(want))
	}
}

func preview(b []byte) string {
	if len(b) > 16 {
		return fmt.Sprintf("%x…", b[:16])
	}
	return fmt.Sprintf("%x", b)
}
