package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var zeroTime time.Time

func TestEscapeSegment(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a/b c%", "a%2Fb%20c%25"},
		{"road-signs_v2.0~x", "road-signs_v2.0~x"},
		{":@+&=?#", "%3A%40%2B%26%3D%3F%23"},
		{"ü", "%C3%BC"},
		{"..", "%2E%2E"},
		{".", "%2E"},
		{"a..b", "a..b"},
	}
	for _, tt := range tests {
		if got := EscapeSegment(tt.in); got != tt.want {
			t.Errorf("EscapeSegment(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestImagePath(t *testing.T) {
	tests := []struct{ dir, file, want string }{
		{"/", "cover.jpg", "cover.jpg"},
		{"", "cover.jpg", "cover.jpg"},
		{"/val", "0001.jpg", "val/0001.jpg"},
		{"/train/cars/", "a b#1.jpg", "train/cars/a%20b%231.jpg"},
		{"/we?ird/x%y", "f+g.png", "we%3Fird/x%25y/f%2Bg.png"},
	}
	for _, tt := range tests {
		if got := ImagePath(tt.dir, tt.file); got != tt.want {
			t.Errorf("ImagePath(%q, %q): got %q, want %q", tt.dir, tt.file, got, tt.want)
		}
	}
}

func TestSanitizeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://store.example/b/k.jpg?sig=abc&exp=1", "https://store.example/b/k.jpg"},
		{"https://user:pw@store.example/k#frag", "https://store.example/k"},
		{"/api/v1/developer/annotations/x/file?x=1", "/api/v1/developer/annotations/x/file"},
		{"http://bad host/%zz?sig=1", "http://bad host/%zz"},
	}
	for _, tt := range tests {
		if got := SanitizeURL(tt.in); got != tt.want {
			t.Errorf("SanitizeURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDatasetNameEscapedOnTheWire(t *testing.T) {
	var got string
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.RequestURI
		writeJSON(w, 200, okDataset)
	})
	if _, err := c.GetDataset(context.Background(), "a/b c%"); err != nil {
		t.Fatal(err)
	}
	if want := "/api/v1/developer/datasets/a%2Fb%20c%25"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := c.GetDataset(context.Background(), ""); !errors.Is(err, ErrValidation) {
		t.Errorf("empty name: got %v, want ErrValidation before any request", err)
	}
}

func TestBasePathPrefix(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.RequestURI
		writeJSON(w, 200, okDataset)
	}))
	defer srv.Close()
	c, err := New(Options{APIKey: testKey, BaseURL: srv.URL + "/pg/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDataset(context.Background(), "x y"); err != nil {
		t.Fatal(err)
	}
	if want := "/pg/api/v1/developer/datasets/x%20y"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := c.AnnotationFileAt(context.Background(), "/api/v1/developer/annotations/i1/file"); err != nil {
		t.Fatal(err)
	}
	if want := "/pg/api/v1/developer/annotations/i1/file"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// storageServer serves body with Range support unless ignoreRange, and
// records the headers of the last request.
func storageServer(t *testing.T, body string, ignoreRange bool, last *http.Header, n *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		*last = r.Header.Clone()
		switch r.URL.Query().Get("sig") {
		case "expired":
			http.Error(w, "<Error><Code>AccessDenied</Code></Error>", http.StatusForbidden)
			return
		case "flaky":
			if n.Load() == 1 {
				http.Error(w, "oops", http.StatusServiceUnavailable)
				return
			}
		}
		if ignoreRange {
			_, _ = io.WriteString(w, body)
			return
		}
		http.ServeContent(w, r, "blob", zeroTime, strings.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOpenSigned(t *testing.T) {
	const body = "0123456789abcdef"
	tests := []struct {
		name           string
		ignoreRange    bool
		offset, length int64
		wantRange      string
		wantBody       string
		wantLen        int64
	}{
		{"whole", false, 0, -1, "", body, 16},
		{"whole, length 0", false, 0, 0, "", body, 16},
		{"range", false, 4, 3, "bytes=4-6", "456", 3},
		{"from offset", false, 10, -1, "bytes=10-", "abcdef", 6},
		{"server ignores range", true, 4, 3, "bytes=4-6", "456", 3},
		{"server ignores open range", true, 10, -1, "bytes=10-", "abcdef", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr http.Header
			var n atomic.Int32
			st := storageServer(t, body, tt.ignoreRange, &hdr, &n)
			c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { t.Errorf("API got %s", r.URL) })
			rc, length, err := c.OpenSigned(context.Background(), st.URL+"/bucket/k.jpg?sig=ok&exp=1", tt.offset, tt.length)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(got) != tt.wantBody || length != tt.wantLen {
				t.Errorf("got %q (%v), length %d; want %q, %d", got, err, length, tt.wantBody, tt.wantLen)
			}
			if hdr.Get("Range") != tt.wantRange {
				t.Errorf("got Range %q, want %q", hdr.Get("Range"), tt.wantRange)
			}
			for _, h := range []string{"X-Api-Key", "Accept", "Idempotency-Key"} {
				if hdr.Get(h) != "" {
					t.Errorf("got %s %q on a storage request, want none", h, hdr.Get(h))
				}
			}
			if hdr.Get("User-Agent") != "pictofs/dev" {
				t.Errorf("got User-Agent %q, want pictofs/dev", hdr.Get("User-Agent"))
			}
			if c.StorageRequests() != 1 || c.APIRequests() != 0 {
				t.Errorf("got %d storage and %d API requests, want 1 and 0", c.StorageRequests(), c.APIRequests())
			}
		})
	}
}

func TestOpenSignedErrors(t *testing.T) {
	var hdr http.Header
	var n atomic.Int32
	st := storageServer(t, "data", false, &hdr, &n)
	c, _, s := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { t.Errorf("API got %s", r.URL) })
	ctx := context.Background()

	_, _, err := c.OpenSigned(ctx, st.URL+"/k?sig=expired", 0, -1)
	if !errors.Is(err, ErrForbidden) || !errors.Is(err, ErrURLExpired) || n.Load() != 1 {
		t.Errorf("got %v after %d requests, want ErrForbidden and ErrURLExpired after 1", err, n.Load())
	}
	if ae := (*APIError)(nil); !errors.As(err, &ae) || ae.Code != "AccessDenied" || !ae.Storage {
		t.Errorf("got %#v, want a storage *APIError with code AccessDenied", err)
	}
	if strings.Contains(err.Error(), "sig=") {
		t.Errorf("got %q, want the signed URL's query left out", err)
	}

	n.Store(0)
	rc, _, err := c.OpenSigned(ctx, st.URL+"/k?sig=flaky", 0, -1)
	if err != nil {
		t.Fatalf("flaky: got %v, want a retry to succeed", err)
	}
	rc.Close()
	if n.Load() != 2 || len(s.got()) != 1 {
		t.Errorf("got %d requests and %d sleeps, want 2 and 1", n.Load(), len(s.got()))
	}

	if _, _, err := c.OpenSigned(ctx, "ftp://x/y?sig=1", 0, -1); !errors.Is(err, ErrValidation) || strings.Contains(err.Error(), "sig=") {
		t.Errorf("got %v, want ErrValidation without the query", err)
	}
}

func TestOpenImage(t *testing.T) {
	var hdr http.Header
	var n atomic.Int32
	st := storageServer(t, "redirected", false, &hdr, &n)
	var gotURI, gotKey string
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		gotURI, gotKey = r.RequestURI, r.Header.Get("X-API-Key")
		if strings.Contains(r.URL.Path, "redirect") {
			http.Redirect(w, r, st.URL+"/obj?sig=ok", http.StatusTemporaryRedirect)
			return
		}
		http.ServeContent(w, r, "img", zeroTime, strings.NewReader("0123456789"))
	})
	rc, length, err := c.OpenImage(context.Background(), "road signs", "/train/cars", "a b.jpg", 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "23456" || length != 5 {
		t.Errorf("got %q, %d; want 23456, 5", got, length)
	}
	if want := "/api/v1/developer/images/road%20signs/train/cars/a%20b.jpg"; gotURI != want || gotKey != testKey {
		t.Errorf("got %q with key %v, want %q with the key", gotURI, gotKey != "", want)
	}

	rc, _, err = c.OpenImage(context.Background(), "ds", "/", "redirect.jpg", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if string(got) != "redirected" || hdr.Get("X-Api-Key") != "" {
		t.Errorf("got %q with key %q at the redirect target, want redirected and no key", got, hdr.Get("X-Api-Key"))
	}
}

func TestAnnotationFileAt(t *testing.T) {
	var foreign atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreign.Add(1)
	}))
	defer other.Close()
	doc := `{"image": "0001.jpg", "annotations": [{"id": "a1", "name": "car", "extra": 1}]}`
	var gotURI, gotKey string
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		gotURI, gotKey = r.RequestURI, r.Header.Get("X-API-Key")
		if strings.Contains(r.URL.Path, "bad") {
			_, _ = io.WriteString(w, "not json")
			return
		}
		_, _ = io.WriteString(w, doc)
	})
	tests := []struct{ in, wantURI string }{
		{other.URL + "/api/v1/developer/annotations/i1/file", "/api/v1/developer/annotations/i1/file"},
		{"/api/v1/developer/annotations/i2/file", "/api/v1/developer/annotations/i2/file"},
		{"/annotations/i3/file", "/api/v1/developer/annotations/i3/file"},
		{"annotations/i4/file?v=2", "/api/v1/developer/annotations/i4/file?v=2"},
	}
	for _, tt := range tests {
		got, err := c.AnnotationFileAt(context.Background(), tt.in)
		if err != nil || string(got) != doc {
			t.Errorf("%s: got %q, %v; want the raw document", tt.in, got, err)
		}
		if gotURI != tt.wantURI || gotKey != testKey {
			t.Errorf("%s: got %q (key %v), want %q with the key", tt.in, gotURI, gotKey != "", tt.wantURI)
		}
	}
	if foreign.Load() != 0 {
		t.Errorf("got %d requests at the foreign host, want 0", foreign.Load())
	}
	got, err := c.AnnotationFile(context.Background(), "i/5")
	if err != nil || string(got) != doc || gotURI != "/api/v1/developer/annotations/i%2F5/file" {
		t.Errorf("got %q, %v at %q; want the document at /annotations/i%%2F5/file", got, err, gotURI)
	}
	if _, err := c.AnnotationFile(context.Background(), "bad"); !errors.Is(err, ErrServer) {
		t.Errorf("non-JSON document: got %v, want ErrServer", err)
	}
}

func TestKeyOnlyToBaseHost(t *testing.T) {
	c, err := New(Options{APIKey: testKey, BaseURL: "https://api.example"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		u    string
		want bool
	}{
		{"https://api.example/x", true},
		{"https://API.example/x", true},
		{"http://api.example/x", false},
		{"https://api.example:8443/x", false},
		{"https://store.example/x", false},
	}
	for _, tt := range tests {
		u, _ := url.Parse(tt.u)
		if got := c.sameHost(u); got != tt.want {
			t.Errorf("sameHost(%s): got %v, want %v", tt.u, got, tt.want)
		}
	}
}

// cutServer serves body from the Range start, cutting every response after
// cut bytes (or stalling there until the client goes away) for its first
// faults answers.
func cutServer(t *testing.T, body string, cut int, stall bool, faults int32) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := 0
		if v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
			first, _, _ := strings.Cut(v, "-")
			fmt.Sscan(first, &start)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(body)-1, len(body)))
		}
		rest := body[start:]
		w.Header().Set("Content-Length", fmt.Sprint(len(rest)))
		if start > 0 {
			w.WriteHeader(http.StatusPartialContent)
		}
		if n.Add(1) > faults || len(rest) <= cut {
			io.WriteString(w, rest)
			return
		}
		io.WriteString(w, rest[:cut])
		w.(http.Flusher).Flush()
		if stall {
			<-r.Context().Done()
			return
		}
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestOpenSignedResumes(t *testing.T) {
	body := strings.Repeat("0123456789", 10)
	tests := []struct {
		name      string
		stall     bool
		faults    int32
		wantErr   bool
		wantCalls int32
	}{
		{"cut short twice", false, 2, false, 3},
		{"stalled twice", true, 2, false, 3},
		{"cut short every time", false, 100, false, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, n := cutServer(t, body, 10, tt.stall, tt.faults)
			c, _, _ := newTestClient(t, nil, func(o *Options) { o.Timeout = 100 * time.Millisecond })
			rc, length, err := c.OpenSigned(context.Background(), st.URL+"/k?sig=1", 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(got) != body || length != int64(len(body)) {
				t.Errorf("got %d bytes (%v), length %d; want the %d bytes of the object", len(got), err, length, len(body))
			}
			if n.Load() != tt.wantCalls {
				t.Errorf("got %d requests, want %d", n.Load(), tt.wantCalls)
			}
		})
	}
}

func TestOpenSignedResumeGivesUpWithoutProgress(t *testing.T) {
	st, n := cutServer(t, "0123456789", 0, false, 100)
	c, _, _ := newTestClient(t, nil)
	rc, _, err := c.OpenSigned(context.Background(), st.URL+"/k?sig=1", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if err == nil || errors.Is(err, ErrURLExpired) || n.Load() != 4 {
		t.Errorf("got %v after %d requests, want an error after 1 + 3 resumes without progress", err, n.Load())
	}
}

func TestOpenSignedResumeExpiredIsNotARefresh(t *testing.T) {
	var n atomic.Int32
	st := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			http.Error(w, "expired", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Length", "20")
		io.WriteString(w, "0123456789")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(st.Close)
	c, _, _ := newTestClient(t, nil)
	rc, _, err := c.OpenSigned(context.Background(), st.URL+"/k?sig=1", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, ErrNetwork) || errors.Is(err, ErrURLExpired) || strings.Contains(fmt.Sprint(err), "sig=") {
		t.Errorf("got %v, want ErrNetwork (not ErrURLExpired), without the query", err)
	}
}

func TestStreamStallTimesOut(t *testing.T) {
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "20")
		io.WriteString(w, "0123456789")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}, func(o *Options) { o.Timeout = 50 * time.Millisecond; o.MaxRetries = -1 })
	rc, _, err := c.OpenImage(context.Background(), "d", "/", "x.jpg", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond) // the caller's pause between reads is not a stall
	buf := make([]byte, 10)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatalf("first bytes after a pause of the caller: %v", err)
	}
	start := time.Now()
	_, err = rc.Read(buf)
	rc.Close()
	if !errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("got %v after %v, want ErrTimeout (not context.Canceled) after about 50ms", err, time.Since(start))
	}
}
