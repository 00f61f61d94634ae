package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzServer is a Server whose handlers the fuzz targets call directly,
// with a budget no fuzzing run can spend and one seeded dataset.
func fuzzServer(f *testing.F) *Server {
	f.Helper()
	s, err := New(context.Background(), Options{DataDir: f.TempDir(), AdminKey: testAdminKey, MemberKey: testMemberKey,
		RequestsPerHour: 1 << 30})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	if err := s.SeedSynthetic(context.Background(), s.DefaultOrg(), "seeded", 30, 3); err != nil {
		f.Fatal(err)
	}
	return s
}

// serve runs one request through a handler and returns the recorder.
func serve(h http.Handler, method, target string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://api.test/", bytes.NewReader(body))
	req.URL.RawPath, req.URL.RawQuery = "", ""
	if u, err := req.URL.Parse(target); err == nil {
		req.URL = u
		req.RequestURI = u.RequestURI()
	}
	req.Header.Set("X-API-Key", testAdminKey)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkEnvelope fails unless rec holds a JSON body: an error envelope with a
// code for statuses >= 400.
func checkEnvelope(t *testing.T, rec *httptest.ResponseRecorder, what string) {
	t.Helper()
	var env struct {
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatalf("%s: %d with a body that is not JSON: %q", what, rec.Code, rec.Body.Bytes())
	}
	if rec.Code >= 400 && (env.Error == nil || env.Error.Code == "") {
		t.Fatalf("%s: %d without an error envelope: %q", what, rec.Code, rec.Body.Bytes())
	}
}

// FuzzCreateDataset posts any body to POST /datasets/: the answer is a
// creation, a validation error or a conflict, never a 5xx, and a created
// dataset's name is one the contract allows and can be read back.
func FuzzCreateDataset(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"name":""}`, `{"name":"a/b"}`, `{"name":"nul\u0000"}`, `{"name":".."}`,
		`{"name":"x","classes":[{"name":""}]}`, `{"name":"x","classes":[{"name":"c","attributes":{"k":[1]}}]}`,
		`{"name":1}`, `{"name":"x"} {"name":"y"}`, `[`, ``, `null`, `{"name":"seeded"}`, `{"name":"x","annotation_types":null}`} {
		f.Add([]byte(s))
	}
	s := fuzzServer(f)
	h := s.apiHandler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := serve(h, http.MethodPost, "/api/v1/developer/datasets/", body)
		checkEnvelope(t, rec, "POST /datasets/")
		switch rec.Code {
		case http.StatusCreated:
			var out struct{ Data Dataset }
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			if err := validName("name", out.Data.Name); err != nil {
				t.Fatalf("created a dataset named %q: %v", out.Data.Name, err)
			}
			if got := serve(h, http.MethodGet, "/api/v1/developer/datasets/"+out.Data.ID, nil); got.Code != http.StatusOK {
				t.Fatalf("created dataset %s: GET answered %d", out.Data.ID, got.Code)
			}
		case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusConflict, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("POST /datasets/ with %q: got %d %s", body, rec.Code, rec.Body.Bytes())
		}
	})
}

// FuzzImagesQuery sends any query to GET /images/ and GET /datasets/{d}:
// the answer is a page or a client error, never a 5xx, and a page never
// holds more than the cap.
func FuzzImagesQuery(f *testing.F) {
	for _, s := range []string{"dataset=seeded", "dataset=seeded&limit=2&offset=1", "dataset=seeded&status=complete",
		"dataset=seeded&directory_path=/dir-001", "dataset=seeded&directory_path=..", "dataset=seeded&limit=-1",
		"dataset=seeded&limit=99999999999999999999", "dataset=nope", "dataset=seeded&bogus=1", "", "dataset=%zz",
		"include_images=true&images_limit=3&images_offset=2", "include_images=maybe", "images_offset=-4"} {
		f.Add(s)
	}
	s := fuzzServer(f)
	h := s.apiHandler()
	f.Fuzz(func(t *testing.T, query string) {
		if strings.ContainsAny(query, "#\x00") {
			return
		}
		for _, target := range []string{"/api/v1/developer/images/?" + query, "/api/v1/developer/datasets/seeded?" + query} {
			rec := serve(h, http.MethodGet, target, nil)
			checkEnvelope(t, rec, "GET "+target)
			switch rec.Code {
			case http.StatusOK:
				var out struct {
					Data json.RawMessage
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
					t.Fatal(err)
				}
				var list []Image
				if json.Unmarshal(out.Data, &list) == nil && len(list) > s.opts.ImageListCap {
					t.Fatalf("GET %s: %d images, over the cap %d", target, len(list), s.opts.ImageListCap)
				}
			case http.StatusBadRequest, http.StatusNotFound, http.StatusUnprocessableEntity:
			default:
				t.Fatalf("GET %s: got %d %s", target, rec.Code, rec.Body.Bytes())
			}
		}
	})
}

// FuzzStorageRequest sends any path and query to the storage host: without
// a signature made with the server's secret nothing is ever served.
func FuzzStorageRequest(f *testing.F) {
	for _, s := range []string{"/o/x?expires=9999999999&signature=AAAA", "/o/?expires=1", "/u/x?signature=",
		"/o/../o/x?expires=9999999999&signature=abc", "/", "/o/%2e%2e?expires=0"} {
		f.Add(s)
	}
	s := fuzzServer(f)
	h := s.storageHandler()
	f.Fuzz(func(t *testing.T, target string) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, "#\x00") {
			return
		}
		for _, method := range []string{http.MethodGet, http.MethodPut} {
			rec := serve(h, method, target, []byte("data"))
			if rec.Code < 400 {
				t.Fatalf("%s %s on storage without a valid signature: got %d", method, target, rec.Code)
			}
			if rec.Code >= 500 {
				t.Fatalf("%s %s on storage: got %d %s", method, target, rec.Code, rec.Body.Bytes())
			}
		}
	})
}
