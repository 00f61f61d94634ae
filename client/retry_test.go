package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var okDataset = map[string]any{"data": map[string]any{"id": "d1", "name": "x", "created_at": "2024-01-01T00:00:00Z"}}

func TestRetryCounts(t *testing.T) {
	tests := []struct {
		status       int
		maxRetries   int
		wantAttempts int
	}{
		{408, 0, 4}, {429, 0, 4}, {500, 0, 4}, {502, 0, 4}, {503, 0, 4}, {504, 0, 4},
		{400, 0, 1}, {401, 0, 1}, {403, 0, 1}, {404, 0, 1}, {409, 0, 1}, {501, 0, 1},
		{503, -1, 1}, {503, 1, 2}, {503, 5, 6},
	}
	for _, tt := range tests {
		var n atomic.Int32
		c, _, s := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			writeJSON(w, tt.status, errorBody("x", "no"))
		}, func(o *Options) { o.MaxRetries = tt.maxRetries })
		_, err := c.GetDataset(context.Background(), "x")
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != tt.status {
			t.Fatalf("status %d: got %v, want an *APIError with it", tt.status, err)
		}
		if got := int(n.Load()); got != tt.wantAttempts || ae.Attempts != got || c.APIRequests() != int64(got) {
			t.Errorf("status %d, MaxRetries %d: got %d attempts (error says %d, counter %d), want %d",
				tt.status, tt.maxRetries, got, ae.Attempts, c.APIRequests(), tt.wantAttempts)
		}
		if got := len(s.got()); got != tt.wantAttempts-1 {
			t.Errorf("status %d: got %d sleeps, want %d", tt.status, got, tt.wantAttempts-1)
		}
	}
}

func TestRetryThenSuccess(t *testing.T) {
	var n atomic.Int32
	c, _, s := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			writeJSON(w, 503, errorBody("unavailable", "busy"))
			return
		}
		writeJSON(w, 200, okDataset)
	})
	d, err := c.GetDataset(context.Background(), "x")
	if err != nil || d.ID != "d1" {
		t.Fatalf("got %v, %v; want dataset d1", d, err)
	}
	if want := []time.Duration{time.Second, 2 * time.Second}; !slices.Equal(s.got(), want) {
		t.Errorf("got sleeps %v, want %v", s.got(), want)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		{0, 0.5, time.Second},
		{1, 0.5, 2 * time.Second},
		{2, 0.5, 4 * time.Second},
		{4, 0.5, 16 * time.Second},
		{5, 0.5, 30 * time.Second},
		{62, 0.5, 30 * time.Second},
		{0, 0, 750 * time.Millisecond},
		{2, 0.75, 4500 * time.Millisecond},
		{2, 0.25, 3500 * time.Millisecond},
		{5, 0, 22500 * time.Millisecond},
	}
	for _, tt := range tests {
		c, err := New(Options{APIKey: "k", Jitter: func() float64 { return tt.jitter }})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.backoff(tt.n); got != tt.want {
			t.Errorf("backoff(%d) with jitter %v: got %v, want %v", tt.n, tt.jitter, got, tt.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		retryAfter   string
		wantSleeps   []time.Duration
		wantAttempts int
	}{
		{"seconds over backoff", "7", []time.Duration{7 * time.Second}, 2},
		{"seconds under backoff", "0", []time.Duration{time.Second}, 2},
		{"HTTP date", now.Add(90 * time.Second).Format(http.TimeFormat), []time.Duration{90 * time.Second}, 2},
		{"past HTTP date", now.Add(-time.Hour).Format(http.TimeFormat), []time.Duration{time.Second}, 2},
		{"exactly 120s", "120", []time.Duration{120 * time.Second}, 2},
		{"over 120s: returned", "121", nil, 1},
		{"over 120s as date: returned", now.Add(time.Hour).Format(http.TimeFormat), nil, 1},
		{"garbage: backoff", "soon", []time.Duration{time.Second}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			c, _, s := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", tt.retryAfter)
					writeJSON(w, 429, errorBody("rate_limited", "slow down"))
					return
				}
				writeJSON(w, 200, okDataset)
			}, func(o *Options) { o.Now = func() time.Time { return now } })
			_, err := c.GetDataset(context.Background(), "x")
			if got := int(n.Load()); got != tt.wantAttempts {
				t.Errorf("got %d attempts, want %d", got, tt.wantAttempts)
			}
			if !slices.Equal(s.got(), tt.wantSleeps) {
				t.Errorf("got sleeps %v, want %v", s.got(), tt.wantSleeps)
			}
			if tt.wantAttempts == 1 {
				var ae *APIError
				if !errors.As(err, &ae) || !errors.Is(err, ErrRateLimited) || ae.RetryAfter <= maxRetryAfter {
					t.Errorf("got %v, want a 429 *APIError with RetryAfter > 120s", err)
				}
			} else if err != nil {
				t.Errorf("got %v, want success after the retry", err)
			}
		})
	}
}

var idemKeyRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestPostRetriedWithSameIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		n := len(keys)
		mu.Unlock()
		if n <= 2 {
			writeJSON(w, 502, errorBody("bad_gateway", "upstream"))
			return
		}
		writeJSON(w, 201, okDataset)
	})
	if _, err := c.CreateDataset(context.Background(), CreateDatasetRequest{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || !idemKeyRE.MatchString(keys[0]) || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Errorf("got keys %q, want 3 identical 32-hex keys", keys)
	}
	if _, err := c.CreateDataset(context.Background(), CreateDatasetRequest{Name: "y"}); err != nil {
		t.Fatal(err)
	}
	if keys[3] == keys[0] {
		t.Errorf("got key %q reused by a second call, want a fresh one", keys[3])
	}
}

func TestPostWithoutKeyNeverRetried(t *testing.T) {
	var n atomic.Int32
	c, srv, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.Header.Get("Idempotency-Key") != "" {
			t.Errorf("got an Idempotency-Key, want none")
		}
		writeJSON(w, 503, errorBody("unavailable", "busy"))
	})
	for _, method := range []string{http.MethodPost, http.MethodPatch} {
		n.Store(0)
		u := c.apiURL("/datasets/", nil)
		_, err := c.do(context.Background(), &request{method: method, u: u, body: []byte("{}")})
		if !errors.Is(err, ErrServer) || n.Load() != 1 {
			t.Errorf("%s to %s: got %v after %d attempts, want ErrServer after 1", method, srv.URL, err, n.Load())
		}
	}
}

func TestNetworkErrorsRetried(t *testing.T) {
	var n atomic.Int32
	c, _, s := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	_, err := c.GetDataset(context.Background(), "x")
	if !errors.Is(err, ErrNetwork) || errors.Is(err, ErrServer) {
		t.Errorf("got %v, want ErrNetwork", err)
	}
	if n.Load() != 4 || len(s.got()) != 3 {
		t.Errorf("got %d attempts and %d sleeps, want 4 and 3", n.Load(), len(s.got()))
	}
}

func TestTruncatedBodyRetried(t *testing.T) {
	var n atomic.Int32
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Content-Length", "1000")
			_, _ = w.Write([]byte(`{"data": {"id": "d1"`))
			return
		}
		writeJSON(w, 200, okDataset)
	})
	d, err := c.GetDataset(context.Background(), "x")
	if err != nil || d.ID != "d1" || n.Load() != 2 {
		t.Errorf("got %v, %v after %d attempts; want d1 after 2", d, err, n.Load())
	}
}

func TestAttemptTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var n atomic.Int32
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, func(o *Options) { o.Timeout = 20 * time.Millisecond; o.MaxRetries = 1 })
	_, err := c.GetDataset(context.Background(), "x")
	if !errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) || errors.Is(err, ErrNetwork) {
		t.Errorf("got %v, want ErrTimeout and not context.Canceled", err)
	}
	if n.Load() != 2 {
		t.Errorf("got %d attempts, want 2 (timeouts are retried)", n.Load())
	}
}

func TestTimeoutBoundsStallsNotTransfers(t *testing.T) {
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data": {"id": "d1", "description": "`)
		for range 6 { // 6 × 20ms of body: longer than the timeout, never idle for it
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
			_, _ = io.WriteString(w, "x")
		}
		_, _ = io.WriteString(w, `"}}`)
	}, func(o *Options) { o.Timeout = 80 * time.Millisecond; o.MaxRetries = -1 })
	d, err := c.GetDataset(context.Background(), "x")
	if err != nil || d.Description != "xxxxxx" {
		t.Errorf("got %+v, %v; want the slow body read in full", d, err)
	}
}

func TestContextErrors(t *testing.T) {
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 503, errorBody("unavailable", "busy"))
	}, func(o *Options) {
		o.Sleep = func(ctx context.Context, d time.Duration) error { return context.Canceled }
	})
	_, err := c.GetDataset(context.Background(), "x")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}

	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = c.GetDataset(ctx, "x")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTimeout) {
		t.Errorf("got %v, want context.DeadlineExceeded and ErrTimeout", err)
	}
}

func TestDefaultSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("got %v after %v, want context.Canceled at once", err, time.Since(start))
	}
}

func TestRateGateHoldsOtherRequests(t *testing.T) {
	var n atomic.Int32
	c, _, s := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "30")
			writeJSON(w, 429, errorBody("rate_limited", "slow down"))
			return
		}
		writeJSON(w, 200, okDataset)
	}, func(o *Options) { o.MaxRetries = -1 })
	ctx := context.Background()
	if _, err := c.GetDataset(ctx, "x"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("first request: got %v, want the 429", err)
	}
	if _, err := c.GetDataset(ctx, "y"); err != nil {
		t.Fatalf("second request: %v", err)
	}
	if got := s.got(); len(got) != 1 || got[0] < 29*time.Second || got[0] > 30*time.Second {
		t.Errorf("second request waited %v, want one wait of about 30s before it was sent", got)
	}
}

func TestRateGateRefusesLongWaitsUnsent(t *testing.T) {
	var n atomic.Int32
	c, _, s := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "3600")
		writeJSON(w, 429, errorBody("rate_limited", "plan spent"))
	})
	ctx := context.Background()
	c.GetDataset(ctx, "x")
	_, err := c.GetDataset(ctx, "y")
	if !errors.Is(err, ErrRateLimited) || n.Load() != 1 || len(s.got()) != 0 {
		t.Errorf("got %v after %d requests and sleeps %v; want ErrRateLimited at once, unsent", err, n.Load(), s.got())
	}
}
