package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var n atomic.Int32
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 2 {
			writeJSON(w, 503, errorBody("unavailable", "busy"))
			return
		}
		writeJSON(w, 200, okDataset)
	}, func(o *Options) {
		o.RequestsPerHour = 3
		o.Now = func() time.Time { return now }
	})
	ctx := context.Background()
	if _, err := c.GetDataset(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDataset(ctx, "x"); err != nil { // a 503 and a retry: two attempts
		t.Fatal(err)
	}
	_, err := c.GetDataset(ctx, "x")
	if !errors.Is(err, ErrBudgetExceeded) {
		t.Errorf("got %v, want ErrBudgetExceeded", err)
	}
	if n.Load() != 3 || c.APIRequests() != 3 {
		t.Errorf("got %d requests at the server, counter %d; want 3 and 3 (none sent over budget)", n.Load(), c.APIRequests())
	}
	now = now.Add(time.Hour)
	if _, err := c.GetDataset(ctx, "x"); err != nil {
		t.Errorf("an hour later: got %v, want success", err)
	}
	if _, _, err := c.OpenSigned(ctx, c.BaseURL().String()+"/blob", 0, -1); errors.Is(err, ErrBudgetExceeded) {
		t.Errorf("storage fetch: got %v, want it outside the budget", err)
	}
}

// pagedServer serves items 0..total-1 as named datasets or images, clamping
// limit to capLimit, with a pagination object unless bare.
type pagedServer struct {
	total, capLimit int
	bare            bool
	mu              sync.Mutex
	asked           [][2]int // limit, offset of each request
}

func (p *pagedServer) page(r *http.Request) ([]map[string]any, map[string]any) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	p.mu.Lock()
	p.asked = append(p.asked, [2]int{limit, offset})
	p.mu.Unlock()
	limit = min(limit, p.capLimit)
	var items []map[string]any
	for i := offset; i < min(offset+limit, p.total); i++ {
		items = append(items, map[string]any{"id": fmt.Sprint(i), "name": fmt.Sprint("n", i), "filename": fmt.Sprint(i, ".jpg")})
	}
	return items, map[string]any{"limit": limit, "offset": offset, "total": p.total, "has_more": offset+len(items) < p.total}
}

func (p *pagedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	items, pg := p.page(r)
	body := map[string]any{"data": items}
	if !p.bare {
		body["pagination"] = pg
	}
	writeJSON(w, 200, body)
}

func TestAllDatasetsClampedPages(t *testing.T) {
	ps := &pagedServer{total: 2500, capLimit: 300}
	c, _, _ := newTestClient(t, ps.ServeHTTP)
	all, err := c.AllDatasets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2500 || all[0].ID != "0" || all[2499].ID != "2499" {
		t.Errorf("got %d datasets, want 2500 in order", len(all))
	}
	for i, a := range ps.asked {
		if a != [2]int{1000, 300 * i} {
			t.Errorf("request %d: got limit/offset %v, want [1000 %d]", i, a, 300*i)
		}
	}
	if len(ps.asked) != 9 {
		t.Errorf("got %d requests, want 9", len(ps.asked))
	}
}

func TestPagingRules(t *testing.T) {
	tests := []struct {
		name      string
		handler   func(limit, offset int) map[string]any
		wantItems int
		wantReqs  int
	}{
		{"has_more after short page", func(limit, offset int) map[string]any {
			n := map[int]int{0: 7, 7: 3, 10: 0}[offset]
			return map[string]any{"data": items(offset, n), "pagination": map[string]any{"has_more": offset < 7}}
		}, 10, 2},
		{"has_more true then empty", func(limit, offset int) map[string]any {
			n := map[int]int{0: 5}[offset]
			return map[string]any{"data": items(offset, n), "pagination": map[string]any{"has_more": true}}
		}, 5, 2},
		{"has_more false on full page", func(limit, offset int) map[string]any {
			return map[string]any{"data": items(offset, limit), "pagination": map[string]any{"has_more": false}}
		}, 1000, 1},
		{"no pagination: full pages then short", func(limit, offset int) map[string]any {
			n := map[int]int{0: 1000, 1000: 1000, 2000: 4}[offset]
			return map[string]any{"data": items(offset, n)}
		}, 2004, 3},
		{"no pagination: full pages then empty", func(limit, offset int) map[string]any {
			n := map[int]int{0: 1000}[offset]
			return map[string]any{"data": items(offset, n)}
		}, 1000, 2},
		{"no data at all", func(limit, offset int) map[string]any { return map[string]any{} }, 0, 1},
		{"total without has_more", func(limit, offset int) map[string]any {
			n := map[int]int{0: 400, 400: 400, 800: 50}[offset]
			return map[string]any{"data": items(offset, n), "pagination": map[string]any{"total": 850}}
		}, 850, 3},
		{"bare list", func(limit, offset int) map[string]any { return nil }, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs atomic.Int32
			c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				reqs.Add(1)
				if r.URL.Path != "/api/v1/developer/images/" || r.URL.Query().Get("dataset") != "ds" {
					t.Errorf("got %s, want /images/?dataset=ds", r.URL)
				}
				limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
				offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
				body := tt.handler(limit, offset)
				if body == nil {
					writeJSON(w, 200, items(0, 3))
					return
				}
				writeJSON(w, 200, body)
			})
			var got []string
			err := c.EachImage(context.Background(), ImageQuery{Dataset: "ds"}, func(page []Image) error {
				for _, im := range page {
					got = append(got, im.ID)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.wantItems || int(reqs.Load()) != tt.wantReqs {
				t.Errorf("got %d items in %d requests, want %d in %d", len(got), reqs.Load(), tt.wantItems, tt.wantReqs)
			}
			for i, id := range got {
				if id != strconv.Itoa(i) {
					t.Fatalf("item %d: got id %s, want %d (offsets must advance by items received)", i, id, i)
				}
			}
		})
	}
}

func items(offset, n int) []map[string]any {
	out := []map[string]any{}
	for i := offset; i < offset+n; i++ {
		out = append(out, map[string]any{"id": strconv.Itoa(i), "filename": fmt.Sprint(i, ".jpg")})
	}
	return out
}

func TestListDatasetsPagination(t *testing.T) {
	ps := &pagedServer{total: 30, capLimit: 100}
	c, _, _ := newTestClient(t, ps.ServeHTTP)
	ds, pg, err := c.ListDatasets(context.Background(), 10, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 10 || pg == nil || *pg != (Pagination{Limit: 10, Offset: 20, Total: 30, HasMore: false}) {
		t.Errorf("got %d datasets, pagination %+v; want 10 and {10 20 30 false}", len(ds), pg)
	}
	ps.bare = true
	if _, pg, _ := c.ListDatasets(context.Background(), 10, 0); pg != nil {
		t.Errorf("got pagination %+v, want nil when the answer has none", pg)
	}
}

func TestEachDatasetImage(t *testing.T) {
	tests := []struct {
		name       string
		imageCount int // what the dataset says
		real       int // images the server holds
		capLimit   int
		pageSize   int
		wantOffs   []int
		wantLimit  int
		wantImages int
	}{
		{"stops at image_count", 25000, 25000, 10000, 0, []int{0, 10000, 20000}, 10000, 25000},
		{"stops on empty page", 12, 5, 10000, 0, []int{0, 5}, 10000, 5},
		{"clamped pages are not last", 9000, 9000, 4000, 0, []int{0, 4000, 8000}, 10000, 9000},
		{"page size capped", 3, 3, 100000, 50000, []int{0}, 10000, 3},
		{"small pages", 5, 5, 10000, 2, []int{0, 2, 4}, 2, 5},
		{"empty dataset", 0, 0, 10000, 0, []int{0}, 10000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var offs []int
			var limits []int
			c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query()
				if q.Get("include_images") != "true" {
					t.Errorf("got query %q, want include_images=true", r.URL.RawQuery)
				}
				limit, _ := strconv.Atoi(q.Get("images_limit"))
				offset, _ := strconv.Atoi(q.Get("images_offset"))
				mu.Lock()
				offs, limits = append(offs, offset), append(limits, limit)
				mu.Unlock()
				n := max(min(limit, tt.capLimit, tt.real-offset), 0)
				writeJSON(w, 200, map[string]any{"data": map[string]any{"id": "d1", "name": "ds", "image_count": tt.imageCount, "images": items(offset, n)}})
			})
			var got int
			d, err := c.EachDatasetImage(context.Background(), "ds", tt.pageSize, func(page []Image) error {
				if page[0].ID != strconv.Itoa(got) {
					t.Errorf("got page starting at %s, want %d", page[0].ID, got)
				}
				got += len(page)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.wantImages || !slices.Equal(offs, tt.wantOffs) || limits[0] != tt.wantLimit {
				t.Errorf("got %d images at offsets %v limit %d, want %d at %v limit %d", got, offs, limits[0], tt.wantImages, tt.wantOffs, tt.wantLimit)
			}
			if d.ID != "d1" || d.Images != nil || d.ImageCount != tt.imageCount {
				t.Errorf("got dataset %+v, want d1 without images", d)
			}
		})
	}
}

func TestEachStopsOnCallbackError(t *testing.T) {
	ps := &pagedServer{total: 5000, capLimit: 1000}
	c, _, _ := newTestClient(t, ps.ServeHTTP)
	stop := errors.New("stop")
	err := c.EachImage(context.Background(), ImageQuery{Dataset: "ds"}, func([]Image) error { return stop })
	if !errors.Is(err, stop) || len(ps.asked) != 1 {
		t.Errorf("got %v after %d requests, want stop after 1", err, len(ps.asked))
	}
}

// TestServerErrorsRetryThePageOnly: a page the server keeps answering with
// 5xx gets pageRounds rounds of the request's retries; the pages already
// received are not asked for again.
func TestServerErrorsRetryThePageOnly(t *testing.T) {
	const attempts = 4 // one request: the first attempt and MaxRetries 3
	tests := []struct {
		name      string
		failures  int // 503s answered to the page at offset 300 before it succeeds
		wantAsked int // requests for that page
		wantErr   error
	}{
		{"no failure", 0, 1, nil},
		{"one round of 503s, then success", attempts + 1, attempts + 2, nil},
		{"503s in every round", pageRounds*attempts + 1, pageRounds * attempts, ErrServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := &pagedServer{total: 700, capLimit: 300}
			var failed atomic.Int32
			c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("offset") == "300" && int(failed.Add(1)) <= tt.failures {
					writeJSON(w, 503, errorBody("unavailable", "busy"))
					return
				}
				ps.ServeHTTP(w, r)
			}, func(o *Options) { o.MaxRetries = attempts - 1 })
			all, err := c.AllDatasets(context.Background())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			asked := map[int]int{}
			for _, a := range ps.asked {
				asked[a[1]]++
			}
			if got := min(int(failed.Load()), tt.failures) + asked[300]; got != tt.wantAsked || asked[0] != 1 {
				t.Errorf("got %d requests for the page at 300 and %d for the first, want %d and 1", got, asked[0], tt.wantAsked)
			}
			if tt.wantErr == nil && len(all) != 700 {
				t.Errorf("got %d datasets, want 700", len(all))
			}
		})
	}
}
