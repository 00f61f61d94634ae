package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// events collects RequestEvents.
type events struct {
	mu  sync.Mutex
	all []RequestEvent
}

func (e *events) add(ev RequestEvent) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) list() []RequestEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]RequestEvent(nil), e.all...)
}

func TestOnRequestEvents(t *testing.T) {
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "bytes")
	}))
	defer storage.Close()
	var evs events
	var c *Client
	var inside []int
	served503 := false
	c, _, _ = newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/flaky") && !served503:
			served503 = true
			w.WriteHeader(503)
		case strings.HasSuffix(r.URL.Path, "/missing"):
			writeJSON(w, 404, errorBody("not_found", "no such dataset"))
		default:
			writeJSON(w, 200, okDataset)
		}
	}, func(o *Options) {
		o.RequestsPerHour = 10
		o.OnRequest = func(ev RequestEvent) {
			// Calls back into the client: a lock held around the callback
			// would deadlock here.
			left, _ := c.BudgetLeft()
			inside = append(inside, left)
			evs.add(ev)
		}
	})
	ctx := context.Background()
	flaky := 0
	c.api.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/flaky") && flaky == 0 {
			flaky++
			return nil, errors.New("connection reset")
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	if _, err := c.GetDataset(ctx, "flaky"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDataset(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	body, _, err := c.OpenSigned(ctx, storage.URL+"/o/i1?expires=1&signature=secret", 0, -1)
	readAllBody(t, body, err)

	got := evs.list()
	want := []RequestEvent{
		{Route: RouteGetDataset, Status: 0, Attempt: 1, Retry: true},
		{Route: RouteGetDataset, Status: 503, Attempt: 2, Retry: true},
		{Route: RouteGetDataset, Status: 200, Attempt: 3},
		{Route: RouteGetDataset, Status: 404, Attempt: 1},
		{Route: RouteStorageGet, Storage: true, Status: 200, Attempt: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Route != w.Route || g.Storage != w.Storage || g.Status != w.Status || g.Attempt != w.Attempt || g.Retry != w.Retry {
			t.Errorf("event %d: got %+v, want %+v", i, g, w)
		}
		if (g.Err == nil) != (w.Status == 200) || g.Duration <= 0 {
			t.Errorf("event %d: got err %v, duration %v; want an error unless 200, and a duration", i, g.Err, g.Duration)
		}
		for _, secret := range []string{testKey, "flaky", "missing", "secret", "i1"} {
			if strings.Contains(g.Route, secret) {
				t.Errorf("event %d: route %q holds %q", i, g.Route, secret)
			}
		}
	}
	if g := got[3].Method(); g != "GET" {
		t.Errorf("got method %q, want GET", g)
	}
	if want := []int{9, 8, 7, 6, 6}; fmt.Sprint(inside) != fmt.Sprint(want) {
		t.Errorf("budget left seen from the callback: got %v, want %v", inside, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestBudgetLeft(t *testing.T) {
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, okDataset) })
	if left, limited := c.BudgetLeft(); left != 0 || limited {
		t.Errorf("unlimited: got %d, %v; want 0, false", left, limited)
	}
	c, _, _ = newTestClient(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, okDataset) },
		func(o *Options) { o.RequestsPerHour = 2 })
	for i, want := range []int{2, 1, 0, 0} {
		if left, limited := c.BudgetLeft(); left != want || !limited {
			t.Errorf("after %d requests: got %d, %v; want %d, true", i, left, limited, want)
		}
		_, _ = c.GetDataset(context.Background(), "x")
	}
}
