package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// upload is one image uploaded through the client's three-step upload.
type upload struct {
	dir, name string
	data      []byte
	w, h      int
	img       *client.Image
}

// saveAnns saves anns for an uploaded image through the contract's save
// route, POST /annotations/{dataset}/{image_path}.
func saveAnns(t *testing.T, c *tc, dataset string, u *upload, anns []client.Annotation) (*client.SaveResult, error) {
	t.Helper()
	raw, err := json.Marshal(anns)
	if err != nil {
		t.Fatal(err)
	}
	if anns == nil {
		raw = nil
	}
	return c.SaveAnnotationsAt(t.Context(), dataset, u.dir, u.name, raw)
}

// testClasses are the classes the annotations of these tests use.
var testClasses = []client.Class{{Name: "car", Type: "bbox"}, {Name: "road", Type: "polygon"}, {Name: "lane", Type: "polyline"},
	{Name: "nose", Type: "keypoint"}, {Name: "x", Type: "keypoint"}}

// uploadAll uploads images of several sizes, some in nested directories
// and with names that need escaping, into dataset.
func uploadAll(t *testing.T, c *tc, dataset string) []*upload {
	t.Helper()
	ups := []*upload{
		{dir: "/", name: "root.png", w: 40, h: 30},
		{dir: "/train/cars", name: "a b#1?.png", w: 64, h: 48},
		{dir: "/val", name: "100% ü.png", w: 17, h: 90},
		{dir: "/val", name: "tiny.png", w: 1, h: 1},
	}
	for _, u := range ups {
		u.data = tinyPNG(t, u.w, u.h)
		im, err := c.UploadImage(t.Context(), dataset, u.dir, u.name, "image/png", u.data, 0, 0)
		if err != nil {
			t.Fatalf("UploadImage %s%s: %v", u.dir, u.name, err)
		}
		if im.Filename != u.name || im.DirectoryPath != u.dir || im.FileSize != int64(len(u.data)) ||
			im.Width != u.w || im.Height != u.h || im.ContentType != "image/png" {
			t.Errorf("registered %s/%s: got %s/%s, %d bytes, %dx%d, %s; want %d bytes, %dx%d, image/png",
				u.dir, u.name, im.DirectoryPath, im.Filename, im.FileSize, im.Width, im.Height, im.ContentType, len(u.data), u.w, u.h)
		}
		u.img = im
	}
	return ups
}

// TestBytesRoundTrip: the bytes read through a signed URL equal the bytes
// read through the authenticated image route equal what was uploaded, and
// Range reads return the right slice on both.
func TestBytesRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	c := newClient(t, srv, srv.MemberKey())
	const dataset = "café & co: 100%?"
	if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: dataset}); err != nil {
		t.Fatal(err)
	}
	ups := uploadAll(t, c, dataset)
	l, err := c.DownloadListing(ctx, dataset, client.DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	items := map[string]client.DownloadItem{}
	for _, it := range l.Items {
		items[it.ID] = it
	}
	if len(l.Items) != len(ups) || l.TotalItems != len(ups) {
		t.Fatalf("listing: got %d items of %d, want %d", len(l.Items), l.TotalItems, len(ups))
	}
	for _, u := range ups {
		it, ok := items[u.img.ID]
		if !ok {
			t.Fatalf("%s: not in the download listing", u.name)
		}
		if it.Filename != u.name || it.FileSize != int64(len(u.data)) {
			t.Errorf("%s: listed as %s, %d bytes; want %d bytes", u.name, it.Filename, it.FileSize, len(u.data))
		}
		body, n, err := c.OpenSigned(ctx, it.ImageURL, 0, 0)
		if got := readAll(t, body, n, err); !bytes.Equal(got, u.data) {
			t.Errorf("%s via signed URL: got %d bytes, want the %d uploaded", u.name, len(got), len(u.data))
		}
		body, n, err = c.OpenImage(ctx, dataset, u.dir, u.name, 0, 0)
		if got := readAll(t, body, n, err); !bytes.Equal(got, u.data) {
			t.Errorf("%s via the image route: got %d bytes, want the %d uploaded", u.name, len(got), len(u.data))
		}
	}

	u := ups[1]
	size := int64(len(u.data))
	for _, r := range []struct{ off, length int64 }{
		{0, 1}, {0, 10}, {1, 1}, {100, 37}, {size - 5, 0}, {size - 1, 1}, {size - 3, 10}, {7, 0}, {0, size}, {0, size + 100},
	} {
		end := size
		if r.length > 0 {
			end = min(r.off+r.length, size)
		}
		want := u.data[r.off:end]
		body, n, err := c.OpenSigned(ctx, items[u.img.ID].ImageURL, r.off, r.length)
		if got := readAll(t, body, n, err); !bytes.Equal(got, want) {
			t.Errorf("signed URL range %d+%d: got %d bytes, want bytes %d..%d", r.off, r.length, len(got), r.off, end)
		}
		body, n, err = c.OpenImage(ctx, dataset, u.dir, u.name, r.off, r.length)
		if got := readAll(t, body, n, err); !bytes.Equal(got, want) {
			t.Errorf("image route range %d+%d: got %d bytes, want bytes %d..%d", r.off, r.length, len(got), r.off, end)
		}
	}
	noRetries(t, c)
}

// TestAnnotationsRoundTrip: AnnotationFile (and AnnotationFileAt of the
// listing's annotation_url) returns what SaveAnnotationsAt stored.
func TestAnnotationsRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	c := newClient(t, srv, srv.MemberKey())
	if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "ann", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	ups := uploadAll(t, c, "ann")
	conf := 0.875
	anns := []client.Annotation{
		{ID: "b1", Name: "car", Type: "bbox", Confidence: &conf, BoundingBox: &client.BoundingBox{X: 1.5, Y: 2, W: 30, H: 20.25}},
		{ID: "p1", Name: "road", Type: "polygon", Polygon: &client.Polygon{Paths: [][]client.Point{{{X: 0, Y: 0}, {X: 10, Y: 0}, {X: 5, Y: 8}}}}},
		{ID: "l1", Name: "lane", Type: "polyline", Polyline: &client.Polyline{Path: []client.Point{{X: 1, Y: 1}, {X: 2, Y: 3}}}},
		{ID: "k1", Name: "nose", Type: "keypoint", Keypoint: &client.Point{X: 7, Y: 9}},
	}
	target := ups[1]
	res, err := saveAnns(t, c, "ann", target, anns)
	if err != nil {
		t.Fatalf("SaveAnnotationsAt: %v", err)
	}
	if *res != (client.SaveResult{Success: true, ImageID: target.img.ID, PreviousCount: 0, NewCount: len(anns), Status: "new"}) {
		t.Errorf("SaveAnnotationsAt: got %+v, want success, 0 → %d, status new", res, len(anns))
	}
	anns[1].BoundingBox = &client.BoundingBox{W: 10, H: 8} // the server computes a polygon's box (§11)
	raw, err := c.AnnotationFile(ctx, target.img.ID)
	if err != nil {
		t.Fatalf("AnnotationFile: %v", err)
	}
	var doc client.AnnotationDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("annotation file %s: %v", raw, err)
	}
	got, _ := json.Marshal(doc.Annotations)
	want, _ := json.Marshal(anns)
	if doc.Image != target.name || !bytes.Equal(got, want) {
		t.Errorf("annotation file: got image %q, annotations %s; want %q, %s", doc.Image, got, target.name, want)
	}

	l, err := c.DownloadListing(ctx, "ann", client.DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range l.Items {
		switch {
		case it.ID == target.img.ID:
			if it.AnnotationCount != len(anns) || it.AnnotationURL == "" {
				t.Fatalf("listing: got %d annotations at %q, want %d and an annotation_url", it.AnnotationCount, it.AnnotationURL, len(anns))
			}
			at, err := c.AnnotationFileAt(ctx, it.AnnotationURL)
			if err != nil || !bytes.Equal(at, raw) {
				t.Errorf("AnnotationFileAt(%s): got %s, %v; want %s", it.AnnotationURL, at, err, raw)
			}
		case it.AnnotationCount != 0:
			t.Errorf("%s: got %d annotations, want 0", it.Filename, it.AnnotationCount)
		default:
			empty, err := c.AnnotationFile(ctx, it.ID)
			var d client.AnnotationDocument
			if err != nil || json.Unmarshal(empty, &d) != nil || len(d.Annotations) != 0 || d.Image != it.Filename {
				t.Errorf("%s without annotations: got %s, %v; want an empty document", it.Filename, empty, err)
			}
		}
	}
	imgs, _, err := c.ListImages(ctx, client.ImageQuery{Dataset: "ann", DirectoryPath: target.dir, Filename: target.name})
	if err != nil || len(imgs) != 1 || imgs[0].AnnotationCount != len(anns) || imgs[0].Status != "new" {
		t.Errorf("after SaveAnnotationsAt: got %+v, %v; want 1 image with %d annotations, status new (a save never changes it)", imgs, err, len(anns))
	}
	if _, err := saveAnns(t, c, "ann", target, nil); err != nil {
		t.Fatalf("SaveAnnotationsAt(nil): %v", err)
	}
	raw, err = c.AnnotationFile(ctx, target.img.ID)
	if err != nil || json.Unmarshal(raw, &doc) != nil || len(doc.Annotations) != 0 {
		t.Errorf("after clearing: got %s, %v; want no annotations", raw, err)
	}
	noRetries(t, c)
}

// TestStorageNeverSeesAPIKey: reading every item of a download listing
// through its signed URL and uploading through signed PUTs never sends
// X-API-Key to the storage listener, and costs no API request.
func TestStorageNeverSeesAPIKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	c := newClient(t, srv, srv.MemberKey())
	if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "keys", Classes: testClasses}); err != nil {
		t.Fatal(err)
	}
	ups := uploadAll(t, c, "keys")
	if _, err := saveAnns(t, c, "keys", ups[0], []client.Annotation{{Name: "x", Type: "keypoint", Keypoint: &client.Point{X: 1, Y: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SeedDemo(ctx, srv.DefaultOrg(), "demo", 12); err != nil {
		t.Fatal(err)
	}
	for _, ds := range []string{"keys", "demo"} {
		l, err := c.DownloadListing(ctx, ds, client.DownloadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before := srv.Stats()
		count := requests(c, srv)
		for _, it := range l.Items {
			if !strings.HasPrefix(it.ImageURL, srv.StorageURL()+"/") {
				t.Errorf("%s: image_url %s is not on the storage host %s", it.Filename, client.SanitizeURL(it.ImageURL), srv.StorageURL())
			}
			body, n, err := c.OpenSigned(ctx, it.ImageURL, 0, 0)
			readAll(t, body, n, err)
			body, n, err = c.OpenSigned(ctx, it.ImageURL, 1, 5)
			readAll(t, body, n, err)
		}
		wantRequests(t, "signed reads of "+ds, count, 0)
		after := srv.Stats()
		if got, want := after.StorageGets-before.StorageGets, int64(2*len(l.Items)); got != want {
			t.Errorf("%s: the storage listener got %d GETs, want %d", ds, got, want)
		}
		for _, it := range l.Items {
			if it.AnnotationURL == "" {
				continue
			}
			if _, err := c.AnnotationFileAt(ctx, it.AnnotationURL); err != nil {
				t.Errorf("AnnotationFileAt(%s): %v", it.AnnotationURL, err)
			}
		}
	}
	if st := srv.Stats(); st.StorageSawAPIKey != 0 {
		t.Errorf("StorageSawAPIKey: got %d, want 0", st.StorageSawAPIKey)
	}
	noRetries(t, c)
}

// TestSignedURLExpiry: with URLTTL 1s, a signed URL works at once and
// answers 403, ErrURLExpired, once its expiry has passed; a fresh listing
// gives a working URL again.
func TestSignedURLExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{URLTTL: time.Second})
	c := newClient(t, srv, srv.MemberKey())
	if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "exp"}); err != nil {
		t.Fatal(err)
	}
	data := tinyPNG(t, 20, 20)
	if _, err := c.UploadImage(ctx, "exp", "/", "a.png", "image/png", data, 0, 0); err != nil {
		t.Fatal(err)
	}
	signed := func() string {
		l, err := c.DownloadListing(ctx, "exp", client.DownloadOptions{})
		if err != nil || len(l.Items) != 1 {
			t.Fatalf("listing: got %+v, %v; want one item", l, err)
		}
		return l.Items[0].ImageURL
	}
	// fresh reads through a new signed URL and returns it. On a slow machine
	// its one second may pass before the read: then it asks for another.
	fresh := func() string {
		for i := 0; ; i++ {
			u := signed()
			body, n, err := c.OpenSigned(ctx, u, 0, 0)
			if errors.Is(err, client.ErrURLExpired) && i < 5 {
				continue
			}
			if got := readAll(t, body, n, err); !bytes.Equal(got, data) {
				t.Fatalf("fresh URL: got %d bytes, want %d", len(got), len(data))
			}
			return u
		}
	}
	u := fresh()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := strconv.ParseInt(pu.Query().Get("expires"), 10, 64)
	if err != nil {
		t.Fatalf("expires of %s: %v", client.SanitizeURL(u), err)
	}
	time.Sleep(time.Until(time.Unix(exp+1, 0).Add(50 * time.Millisecond)))
	_, _, err = c.OpenSigned(ctx, u, 0, 0)
	wantStorage403(t, err, pu.Query().Get("signature"))
	fresh()
}

// TestSignedURLTampering: changing one character of the signature, the
// path or the expiry of a signed URL answers 403.
func TestSignedURLTampering(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	c := newClient(t, srv, srv.MemberKey())
	if _, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "tamper"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := c.UploadImage(ctx, "tamper", "/", fmt.Sprintf("%d.png", i), "image/png", tinyPNG(t, 5+i, 5), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	l, err := c.DownloadListing(ctx, "tamper", client.DownloadOptions{})
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("listing: got %+v, %v", l, err)
	}
	good := l.Items[0].ImageURL
	other, err := url.Parse(l.Items[1].ImageURL)
	if err != nil {
		t.Fatal(err)
	}
	body, n, err := c.OpenSigned(ctx, good, 0, 0)
	readAll(t, body, n, err)

	// flip changes the character at i (negative: from the end) to another
	// base64url character whose 6-bit value differs only in its low bit.
	flip := func(s string, i int) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		if i < 0 {
			i += len(s)
		}
		v := strings.IndexByte(alphabet, s[i])
		if v < 0 {
			v = 0
		}
		return s[:i] + string(alphabet[v^1]) + s[i+1:]
	}
	digit := func(s string, i int) string {
		if i < 0 {
			i += len(s)
		}
		d := (s[i]-'0'+1)%10 + '0'
		return s[:i] + string(d) + s[i+1:]
	}
	query := func(u *url.URL, key string, f func(string) string) {
		q := u.Query()
		q.Set(key, f(q.Get(key)))
		u.RawQuery = q.Encode()
	}
	for _, tt := range []struct {
		name   string
		tamper func(u *url.URL)
	}{
		{"signature first char", func(u *url.URL) { query(u, "signature", func(s string) string { return flip(s, 0) }) }},
		{"signature middle char", func(u *url.URL) { query(u, "signature", func(s string) string { return flip(s, len(s)/2) }) }},
		{"signature last char", func(u *url.URL) { query(u, "signature", func(s string) string { return flip(s, -1) }) }},
		{"signature of another image", func(u *url.URL) { query(u, "signature", func(string) string { return other.Query().Get("signature") }) }},
		{"signature removed", func(u *url.URL) { q := u.Query(); q.Del("signature"); u.RawQuery = q.Encode() }},
		{"path last char", func(u *url.URL) {
			i := len(u.Path) - 1
			c := byte('0')
			if u.Path[i] == '0' {
				c = '1'
			}
			u.Path = u.Path[:i] + string(c)
		}},
		{"path of another image", func(u *url.URL) { u.Path = other.Path }},
		{"expiry last digit", func(u *url.URL) { query(u, "expires", func(s string) string { return digit(s, -1) }) }},
		{"expiry first digit", func(u *url.URL) { query(u, "expires", func(s string) string { return digit(s, 0) }) }},
		{"expiry removed", func(u *url.URL) { q := u.Query(); q.Del("expires"); u.RawQuery = q.Encode() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(good)
			if err != nil {
				t.Fatal(err)
			}
			tt.tamper(u)
			if u.String() == good {
				t.Fatalf("the tampered URL is the original")
			}
			_, _, err = c.OpenSigned(ctx, u.String(), 0, 0)
			wantStorage403(t, err, u.Query().Get("signature"))
		})
	}
	if st := srv.Stats(); st.StorageSawAPIKey != 0 {
		t.Errorf("StorageSawAPIKey: got %d, want 0", st.StorageSawAPIKey)
	}
}

// wantStorage403 checks that err is the storage host's 403: ErrForbidden
// and ErrURLExpired, an *APIError from storage with a request id, and no
// signature in its text.
func wantStorage403(t *testing.T, err error, signature string) {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want a storage 403")
	}
	for _, sentinel := range []error{client.ErrForbidden, client.ErrURLExpired} {
		if !errors.Is(err, sentinel) {
			t.Errorf("errors.Is(%v, %v) = false, want true", err, sentinel)
		}
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %T %v, want a *client.APIError", err, err)
	}
	if ae.Status != http.StatusForbidden || !ae.Storage || ae.Message == "" || ae.RequestID == "" {
		t.Errorf("got status %d, storage %v, message %q, request id %q; want a storage 403 with message and request id",
			ae.Status, ae.Storage, ae.Message, ae.RequestID)
	}
	if strings.Contains(err.Error(), "signature=") || (signature != "" && strings.Contains(err.Error(), signature)) {
		t.Errorf("error %q shows the signature", err)
	}
}
