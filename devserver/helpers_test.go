package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	testAdminKey  = "pk_live_00000000000000000000000000000001"
	testMemberKey = "pk_live_00000000000000000000000000000002"
)

// startServer starts a Server on a temporary data directory with known
// keys and closes it at the end of the test.
func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.AdminKey == "" {
		opts.AdminKey = testAdminKey
	}
	if opts.MemberKey == "" {
		opts.MemberKey = testMemberKey
	}
	s, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		s.Close()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// api is a tiny test client of one server and key.
type api struct {
	t    *testing.T
	base string
	key  string
}

func newAPI(t *testing.T, s *Server, key string) *api {
	return &api{t: t, base: s.APIURL() + "/api/v1/developer", key: key}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request; body is JSON-encoded unless it is a string or []byte.
// hdr holds header name/value pairs.
func (a *api) do(method, path string, body any, hdr ...string) response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = a.base + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if a.key != "" {
		req.Header.Set("X-API-Key", a.key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// message is the "detail" of an error answer, or its whole body.
func (r response) message() string {
	var e struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(r.body, &e) == nil && e.Detail != "" {
		return e.Detail
	}
	return string(r.body)
}

// mustStatus fails the test unless r has status want.
func mustStatus(t *testing.T, what string, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: got status %d (%s), want %d", what, r.status, r.body, want)
	}
}

// checkErrorBody checks the contract's error envelope: both keys, and code.
func checkErrorBody(t *testing.T, what string, r response, wantCode string) {
	t.Helper()
	var body struct {
		Error *struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
		Detail *string `json:"detail"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("%s: error body %q is not JSON: %v", what, r.body, err)
	}
	if body.Error == nil || body.Detail == nil {
		t.Fatalf("%s: error body %s: want both \"error\" and \"detail\"", what, r.body)
	}
	if body.Error.Code != wantCode {
		t.Errorf("%s: got error.code %q, want %q", what, body.Error.Code, wantCode)
	}
	if body.Error.Message == "" || *body.Detail == "" || body.Error.Details == nil {
		t.Errorf("%s: error body %s: want a message, a detail and a details object", what, r.body)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Errorf("%s: no X-Request-Id header", what)
	}
}

// annotationDocument decodes the body of GET /annotations/{image_id}/file.
type annotationDocument struct {
	Image       string       `json:"image"`
	Annotations []Annotation `json:"annotations"`
}

type datasetEnvelope struct {
	Data Dataset `json:"data"`
}

type datasetsEnvelope struct {
	Data       []Dataset   `json:"data"`
	Pagination *Pagination `json:"pagination"`
}

type imagesEnvelope struct {
	Data       []Image     `json:"data"`
	Pagination *Pagination `json:"pagination"`
}

type listingEnvelope struct {
	Data downloadListing `json:"data"`
}

// testClasses are the classes of the datasets tests make.
var testClasses = []Class{{Name: "circle", Type: "bbox"}, {Name: "x", Type: "keypoint"}}

// addImages adds n small images named 000.png… to dataset in dir.
func addImages(t *testing.T, s *Server, org, dataset, dir string, n int, withAnn bool) []*Image {
	t.Helper()
	var out []*Image
	for i := range n {
		var anns []Annotation
		if withAnn {
			anns = []Annotation{{Name: "circle", Type: "bbox", BoundingBox: &BoundingBox{X: 1, Y: 2, W: 3, H: 4}}}
		}
		data := []byte(strings.Repeat(string(rune('a'+i%26)), 100+i))
		im, err := s.AddImage(context.Background(), org, dataset, dir, pad3(i)+".png", "image/png", data, anns)
		if err != nil {
			t.Fatalf("AddImage: %v", err)
		}
		out = append(out, im)
	}
	return out
}

func pad3(i int) string {
	s := "00" + itoa(i)
	return s[len(s)-3:]
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// get fetches a URL with no API key.
func get(t *testing.T, url string, hdr ...string) response {
	t.Helper()
	a := &api{t: t}
	return a.do(http.MethodGet, url, nil, hdr...)
}

// writeFile writes data to dir/rel, making the directories on the way.
func writeFile(t *testing.T, dir, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
