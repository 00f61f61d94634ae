package devserver

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestLargeDatasetPaging fills a dataset with PICTOFS_LARGE_IMAGES rows
// (default 5000; try 1000000) sharing one tiny blob, and logs how long
// pages deep into it take.
func TestLargeDatasetPaging(t *testing.T) {
	n := 5000
	if v := os.Getenv("PICTOFS_LARGE_IMAGES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	s := startServer(t, Options{})
	ctx := context.Background()
	ds, err := s.CreateDataset(ctx, s.DefaultOrg(), CreateDatasetRequest{Name: "large", Classes: testClasses})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.st.dataset(ctx, s.st.r, s.DefaultOrg(), ds.ID)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.blobs.put([]byte("tiny"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.bulkLoad(ctx, d.seq, n, func(i int) (*newImage, error) {
		dir := fmt.Sprintf("/d%03d", i%100)
		st := "new"
		if i%3 == 0 {
			st = "complete"
		}
		return &newImage{imageRow: imageRow{id: uuid.NewString(), dir: dir, filename: fmt.Sprintf("%07d.jpg", i),
			status: st, split: sql.NullString{}, fileSize: 4, contentType: "image/jpeg", tags: "[]", blob: sum,
			createdAt: micros(time.Now())}}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("inserted %d rows in %v", n, time.Since(start))
	a := newAPI(t, s, testMemberKey)
	for _, q := range []string{
		"/images/?dataset=large&limit=1000&offset=0",
		fmt.Sprintf("/images/?dataset=large&limit=1000&offset=%d", n-1000),
		fmt.Sprintf("/images/?dataset=large&limit=1000&offset=%d&status=complete", n/3-1000),
		fmt.Sprintf("/datasets/large?include_images=true&images_limit=10000&images_offset=%d", max(0, n-10000)),
		"/datasets/large/download?status_filter=complete",
		"/images/?dataset=large&directory_path=/d050&limit=1000",
	} {
		start := time.Now()
		r := a.do(http.MethodGet, q, nil)
		mustStatus(t, q, r, http.StatusOK)
		t.Logf("%6v  %s (%d bytes)", time.Since(start).Round(time.Millisecond), q, len(r.body))
	}
	// A whole walk with include_images pages, as the filesystem lists.
	start = time.Now()
	seen, pages := 0, 0
	for {
		var env struct {
			Data struct {
				Images []Image `json:"images"`
			} `json:"data"`
		}
		a.do(http.MethodGet, fmt.Sprintf("/datasets/large?include_images=true&images_limit=10000&images_offset=%d", seen), nil).decode(t, &env)
		pages++
		if len(env.Data.Images) == 0 {
			break
		}
		seen += len(env.Data.Images)
	}
	if seen != n {
		t.Errorf("walk: got %d images, want %d", seen, n)
	}
	el := time.Since(start)
	t.Logf("walked %d images in %d include_images pages in %v (%v per page)", seen, pages, el.Round(time.Millisecond), (el / time.Duration(pages)).Round(time.Millisecond))
}
