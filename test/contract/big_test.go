package contract

import (
	"fmt"
	"testing"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
)

// checkBigPages checks that pages hold every image of the big dataset
// exactly once, in listing order.
func checkBigPages(t *testing.T, datasetID string, pages [][]client.Image, wantPage int) {
	t.Helper()
	seen := make(map[string]bool, bigImages)
	i := 0
	for p, page := range pages {
		if p < len(pages)-1 && len(page) != wantPage {
			t.Errorf("page %d: got %d images, want %d", p, len(page), wantPage)
		}
		for _, im := range page {
			if seen[im.ID] {
				t.Errorf("image %s (%s) seen twice", im.ID, im.Filename)
			}
			seen[im.ID] = true
			if want := fmt.Sprintf("%06d.png", i); im.Filename != want || im.DatasetID != datasetID {
				t.Errorf("image %d: got %s of dataset %s, want %s of %s", i, im.Filename, im.DatasetID, want, datasetID)
			}
			i++
		}
	}
	if len(seen) != bigImages || i != bigImages {
		t.Errorf("got %d images (%d distinct), want %d", i, len(seen), bigImages)
	}
}

// TestBigDatasetForcedCap pages a 25,000-image dataset through
// include_images with the server's cap forced to 3000: the client asks for
// 10000, gets clamped pages of 3000 and must keep going.
func TestBigDatasetForcedCap(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const cap = 3000
	srv, id := startBig(t, devserver.Options{ImagesLimitCap: cap})
	c := newClient(t, srv, srv.MemberKey())
	count := requests(c, srv)
	var pages [][]client.Image
	d, err := c.EachDatasetImage(ctx, bigName, 0, func(page []client.Image) error {
		pages = append(pages, page)
		return nil
	})
	if err != nil {
		t.Fatalf("EachDatasetImage: %v", err)
	}
	wantRequests(t, "EachDatasetImage", count, ceilDiv(bigImages, cap))
	if d.ID != id || d.ImageCount != bigImages || len(d.Images) != 0 {
		t.Errorf("got dataset %s with %d images (%d embedded), want %s with %d (none embedded)", d.ID, d.ImageCount, len(d.Images), id, bigImages)
	}
	checkBigPages(t, id, pages, cap)
	noRetries(t, c)
}

// TestBigDatasetDefaultCaps pages the 25,000-image dataset at the real caps
// (include_images 10000, /images/ 1000, download listing 10000), checks
// every image comes exactly once in ceil(25000/cap) requests, and logs what
// listing every image and getting signed URLs for them costs.
func TestBigDatasetDefaultCaps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, id := startBig(t, devserver.Options{})
	c := newClient(t, srv, srv.MemberKey())

	count := requests(c, srv)
	var pages [][]client.Image
	if _, err := c.EachDatasetImage(ctx, id, 0, func(p []client.Image) error { pages = append(pages, p); return nil }); err != nil {
		t.Fatalf("EachDatasetImage: %v", err)
	}
	viaInclude, _ := count()
	wantRequests(t, "EachDatasetImage", count, ceilDiv(bigImages, client.MaxIncludeImages))
	checkBigPages(t, id, pages, client.MaxIncludeImages)

	count = requests(c, srv)
	pages = nil
	if err := c.EachImage(ctx, client.ImageQuery{Dataset: id}, func(p []client.Image) error { pages = append(pages, p); return nil }); err != nil {
		t.Fatalf("EachImage: %v", err)
	}
	viaList, _ := count()
	wantRequests(t, "EachImage", count, ceilDiv(bigImages, client.MaxImagesPage))
	checkBigPages(t, id, pages, client.MaxImagesPage)

	count = requests(c, srv)
	l, err := c.DownloadListing(ctx, id, client.DownloadOptions{})
	if err != nil {
		t.Fatalf("DownloadListing: %v", err)
	}
	listings, _ := count()
	if len(l.Items) != client.MaxDownloadItems || l.TotalItems != bigImages || listings != 1 {
		t.Errorf("download listing: got %d items of %d in %d requests, want %d of %d in 1",
			len(l.Items), l.TotalItems, listings, client.MaxDownloadItems, bigImages)
	}
	for i, it := range l.Items {
		if want := fmt.Sprintf("%06d.png", i); it.Filename != want {
			t.Fatalf("listing item %d: got %s, want %s (the first 10000 in listing order)", i, it.Filename, want)
		}
	}

	// Signed URLs cost no API request; each image the listing leaves out
	// costs one authenticated request.
	count = requests(c, srv)
	for _, it := range l.Items[:20] {
		body, sz, err := c.OpenSigned(ctx, it.ImageURL, 0, 0)
		if b := readAll(t, body, sz, err); int64(len(b)) != it.FileSize {
			t.Errorf("%s: got %d bytes, want %d", it.Filename, len(b), it.FileSize)
		}
	}
	wantRequests(t, "20 signed-URL reads", count, 0)
	count = requests(c, srv)
	body, sz, err := c.OpenImage(ctx, id, "/", fmt.Sprintf("%06d.png", bigImages-1), 0, 0)
	readAll(t, body, sz, err)
	wantRequests(t, "one image past the listing", count, 1)
	noRetries(t, c)

	missing := int64(bigImages - len(l.Items))
	t.Logf("25,000-image dataset at the default caps:")
	t.Logf("  list every image: %d requests via include_images (cap 10000), %d via /images/ (cap 1000)", viaInclude, viaList)
	t.Logf("  signed URLs: %d request gives %d of %d (the listing has no offset); the other %d cost %d authenticated image requests",
		listings, len(l.Items), l.TotalItems, missing, missing)
	t.Logf("  list and read every image's bytes: %d (list) + %d (listing) + %d (fallback) = %d requests",
		viaInclude, listings, missing, viaInclude+listings+missing)
}
