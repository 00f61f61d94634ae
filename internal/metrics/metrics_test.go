package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/prefetch"
)

func TestHourWindow(t *testing.T) {
	var w hourWindow
	base := time.Unix(1_000_000*60, 0)
	for _, at := range []time.Duration{0, time.Minute, 30 * time.Minute, 59 * time.Minute} {
		w.add(base.Add(at))
	}
	tests := []struct {
		at   time.Duration
		want int
	}{
		{59 * time.Minute, 4},
		{60 * time.Minute, 3},  // the first minute has left the hour
		{89 * time.Minute, 2},  // so has the second
		{118 * time.Minute, 1}, // only the 59th minute's is left
		{200 * time.Minute, 0},
	}
	for _, tt := range tests {
		if got := w.count(base.Add(tt.at)); got != tt.want {
			t.Errorf("count at +%v: got %d, want %d", tt.at, got, tt.want)
		}
	}
}

// TestExposition checks the names and labels the README documents.
func TestExposition(t *testing.T) {
	m := New()
	m.Watch(Sources{
		Cache: func() blobcache.Stats {
			return blobcache.Stats{Bytes: 100, Reserved: 20, Hits: 3, Misses: 2, Evictions: 1}
		},
		CacheCap:   1000,
		Prefetch:   func() prefetch.Stats { return prefetch.Stats{Queued: 5, InFlight: 2} },
		BudgetLeft: func() (int, bool) { return 42, true },
	})
	m.ObserveRequest(RequestEvent{Route: "GET /datasets/{dataset}", Status: 429, Retry: true, Duration: time.Millisecond})
	m.ObserveRequest(RequestEvent{Storage: true, Status: 200})
	m.CountStorageBytes(1234)
	m.ObserveOp("lookup", time.Millisecond, syscall.ENOENT)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`pictofs_api_requests_total{route="GET /datasets/{dataset}",status="429"} 1`,
		`pictofs_api_retries_total{route="GET /datasets/{dataset}"} 1`,
		`pictofs_api_rate_limited_total 1`,
		`pictofs_api_budget_left 42`,
		`pictofs_storage_requests_total{status="200"} 1`,
		`pictofs_storage_bytes_total 1234`,
		`pictofs_fuse_operations_total{errno="ENOENT",op="lookup"} 1`,
		`pictofs_fuse_operation_duration_seconds_count{op="lookup"} 1`,
		`pictofs_cache_bytes 120`,
		`pictofs_cache_capacity_bytes 1000`,
		`pictofs_cache_evictions_total 1`,
		`pictofs_prefetch_queue_depth 5`,
		`pictofs_prefetch_in_flight 2`,
		`process_resident_memory_bytes`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got := m.APIRequestsLastHour(); got != 1 {
		t.Errorf("API requests in the last hour: got %d, want 1 (storage requests do not count)", got)
	}
}
