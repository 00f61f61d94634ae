package contract

import (
	"fmt"
	"testing"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// TestDatasetPaging: AllDatasets returns every dataset exactly once in as
// many requests as the server's cap makes pages, whatever that cap.
func TestDatasetPaging(t *testing.T) {
	t.Parallel()
	const n = 25
	for _, cap := range []int{1, 5, 7, 24, 25, 1000} {
		t.Run(fmt.Sprintf("cap%d", cap), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			srv := testenv.StartServer(t, devserver.Options{DatasetListCap: cap})
			want := map[string]string{}
			for i := range n {
				d, err := srv.CreateDataset(ctx, srv.DefaultOrg(), devserver.CreateDatasetRequest{Name: fmt.Sprintf("ds-%02d", i)})
				if err != nil {
					t.Fatal(err)
				}
				want[d.ID] = d.Name
			}
			c := newClient(t, srv, srv.MemberKey())
			count := requests(c, srv)
			all, err := c.AllDatasets(ctx)
			if err != nil {
				t.Fatalf("AllDatasets: %v", err)
			}
			wantRequests(t, "AllDatasets", count, ceilDiv(n, cap))
			seen := map[string]int{}
			for _, d := range all {
				seen[d.ID]++
				if want[d.ID] != d.Name {
					t.Errorf("dataset %s: got name %q, want %q", d.ID, d.Name, want[d.ID])
				}
			}
			if len(all) != n || len(seen) != n {
				t.Errorf("got %d datasets (%d distinct), want %d exactly once", len(all), len(seen), n)
			}
			noRetries(t, c)
		})
	}
}

// TestDatasetListClampedPage: a page asked above the cap comes back short
// with has_more=true and the clamped limit; the last page says has_more=false.
func TestDatasetListClampedPage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{DatasetListCap: 7})
	for i := range 10 {
		if _, err := srv.CreateDataset(ctx, srv.DefaultOrg(), devserver.CreateDatasetRequest{Name: fmt.Sprintf("ds-%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, srv, srv.MemberKey())
	for _, tt := range []struct {
		limit, offset int
		wantN         int
		want          client.Pagination
	}{
		{limit: 100, offset: 0, wantN: 7, want: client.Pagination{Limit: 7, Offset: 0, Total: 10, HasMore: true}},
		{limit: 100, offset: 7, wantN: 3, want: client.Pagination{Limit: 7, Offset: 7, Total: 10, HasMore: false}},
		{limit: 5, offset: 0, wantN: 5, want: client.Pagination{Limit: 5, Offset: 0, Total: 10, HasMore: true}},
		{limit: 5, offset: 10, wantN: 0, want: client.Pagination{Limit: 5, Offset: 10, Total: 10, HasMore: false}},
	} {
		ds, p, err := c.ListDatasets(ctx, tt.limit, tt.offset)
		if err != nil {
			t.Fatalf("ListDatasets(%d, %d): %v", tt.limit, tt.offset, err)
		}
		if len(ds) != tt.wantN || p == nil || *p != tt.want {
			t.Errorf("ListDatasets(%d, %d): got %d datasets and %+v, want %d and %+v", tt.limit, tt.offset, len(ds), p, tt.wantN, tt.want)
		}
	}
}

// TestImageListPaging pages GET /images/ with the server's cap forced below
// the client's page size: clamped short pages with has_more=true.
func TestImageListPaging(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const n, cap = 50, 7
	srv := testenv.StartServer(t, devserver.Options{ImageListCap: cap})
	d, err := srv.SeedBulk(ctx, srv.DefaultOrg(), "fifty", n)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv, srv.MemberKey())
	for _, q := range []client.ImageQuery{
		{Dataset: "fifty"},
		{Dataset: d.ID, DirectoryPath: "/", Limit: 20},
		{Dataset: "fifty", Status: "new", Limit: 1000},
	} {
		count := requests(c, srv)
		seen := map[string]bool{}
		err := c.EachImage(ctx, q, func(page []client.Image) error {
			for _, im := range page {
				if seen[im.ID] {
					t.Errorf("%+v: image %s seen twice", q, im.Filename)
				}
				seen[im.ID] = true
			}
			return nil
		})
		if err != nil {
			t.Fatalf("EachImage(%+v): %v", q, err)
		}
		if len(seen) != n {
			t.Errorf("EachImage(%+v): got %d images, want %d", q, len(seen), n)
		}
		wantRequests(t, fmt.Sprintf("EachImage(%+v)", q), count, ceilDiv(n, cap))
	}
	for _, tt := range []struct {
		q     client.ImageQuery
		wantN int
		want  client.Pagination
	}{
		{client.ImageQuery{Dataset: "fifty", Limit: 1000}, cap, client.Pagination{Limit: cap, Offset: 0, Total: n, HasMore: true}},
		{client.ImageQuery{Dataset: "fifty", Limit: 1000, Offset: 45}, 5, client.Pagination{Limit: cap, Offset: 45, Total: n, HasMore: false}},
		{client.ImageQuery{Dataset: "fifty", Limit: 3, Offset: 10}, 3, client.Pagination{Limit: 3, Offset: 10, Total: n, HasMore: true}},
	} {
		imgs, p, err := c.ListImages(ctx, tt.q)
		if err != nil || len(imgs) != tt.wantN || p == nil || *p != tt.want {
			t.Errorf("ListImages(%+v): got %d images, %+v, %v; want %d, %+v", tt.q, len(imgs), p, err, tt.wantN, tt.want)
		}
	}
	noRetries(t, c)
}
