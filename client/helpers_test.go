package client

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

const testKey = "pk_live_secret"

// sleeps records the waits of a client's Sleep without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// newTestClient starts an API server with h and a client for it with instant
// sleeps and a jitter of 0.5 (factor 1.0). mod may change the options.
func newTestClient(t *testing.T, h http.HandlerFunc, mod ...func(*Options)) (*Client, *httptest.Server, *sleeps) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s := &sleeps{}
	opts := Options{BaseURL: srv.URL, APIKey: testKey, Sleep: s.sleep, Jitter: func() float64 { return 0.5 },
		Logger: slog.New(slog.DiscardHandler)}
	for _, m := range mod {
		m(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, srv, s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func errorBody(code, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": msg}, "detail": msg}
}
