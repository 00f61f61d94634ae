package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pictofs/pictofs/internal/testenv/golden"
)

// The golden documents in internal/testenv/golden/docs are written from
// the contract (docs/pictograph-api.md), one per route: its request body,
// its status and its response. The devserver's tests read the same files
// and check its answers against them; these tests check the client against them, so
// that a wrong JSON tag on either side fails a test of that side.

// goldenCall is one client call that sends a golden request (if the route
// has one) and decodes its golden response.
type goldenCall struct {
	name string
	call func(ctx context.Context, c *Client, g golden.Doc) (any, error)
	// zero lists the paths of result fields that the golden response
	// legitimately leaves unset (the client models more than this route
	// sends); every other field must come out set.
	zero []string
}

func strp(s string) *string { return &s }

func rawField(t *testing.T, raw json.RawMessage, key string) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}

func goldenCalls(t *testing.T) []goldenCall {
	return []goldenCall{
		{"organizations.me", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) { return c.Me(ctx) }, nil},
		{"datasets.list", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			ds, p, err := c.ListDatasets(ctx, 100, 0)
			return struct {
				Data       []Dataset
				Pagination *Pagination
			}{ds, p}, err
		}, []string{"Data[].Images", "Data[].Classes[].Attributes", "Pagination.Offset"}},
		{"datasets.create", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.CreateDataset(ctx, CreateDatasetRequest{Name: golden.Dataset, Description: "Traffic signs, hand-labelled",
				Readme: "# road-signs\n\nBoxes around every sign.\n", AnnotationTypes: []string{"bbox", "polygon"},
				Classes: []Class{{Name: "stop", Type: "bbox", Color: "#e6194b"}, {Name: "yield", Type: "polygon", Color: "#3cb44b"}}})
		}, []string{"Images", "Classes[].Attributes"}},
		{"datasets.get", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.GetDataset(ctx, golden.Dataset)
		},
			[]string{"Images", "Classes[].Attributes"}},
		{"datasets.get.include_images", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.DatasetImagesPage(ctx, golden.Dataset, MaxIncludeImages, 0)
		}, []string{"Classes[].Attributes"}},
		{"datasets.update", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.UpdateDataset(ctx, golden.Dataset, UpdateDatasetRequest{NewName: strp("road-signs-v2"),
				Description: strp("Traffic signs, relabelled"), Readme: strp("# v2\n")})
		}, []string{"Images", "Classes[].Attributes"}},
		{"datasets.delete", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.DeleteDataset(ctx, golden.Dataset)
		}, nil},
		{"datasets.download", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.DownloadListing(ctx, golden.Dataset, DownloadOptions{})
		}, []string{"Items[].DirectoryPath"}},
		{"images.list", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			imgs, p, err := c.ListImages(ctx, ImageQuery{Dataset: golden.Dataset, Limit: 100})
			return struct {
				Data       []Image
				Pagination *Pagination
			}{imgs, p}, err
		}, []string{"Pagination.Offset"}},
		{"images.upload-url", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.RequestUploadURL(ctx, UploadURLRequest{Dataset: golden.Dataset, Filename: "0002.png", DirectoryPath: "/train", ContentType: "image/png"})
		}, nil},
		{"images.register", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.RegisterImage(ctx, RegisterImageRequest{Dataset: golden.Dataset, Filename: "0001.jpg", DirectoryPath: "/val",
				FileSize: 24101, ContentType: "image/jpeg", Width: 640, Height: 480})
		}, nil},
		{"images.bulk-upload-url", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.BulkUploadURLs(ctx, golden.Dataset, []BulkUploadItem{{Filename: "0002.png", DirectoryPath: "/train", ContentType: "image/png"}})
		}, nil},
		{"images.bulk-register", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.BulkRegisterImages(ctx, golden.Dataset, []BulkRegisterItem{{Filename: "0001.jpg", DirectoryPath: "/val",
				FileSize: 24101, ContentType: "image/jpeg", Width: 640, Height: 480}})
		}, nil},
		{"images.delete", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return nil, c.DeleteImage(ctx, golden.Dataset, "/val", "0001.jpg", false)
		}, nil},
		{"annotations.file", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			b, err := c.AnnotationFile(ctx, golden.Image)
			if err != nil {
				return nil, err
			}
			var doc AnnotationDocument
			return &doc, json.Unmarshal(b, &doc)
		}, nil},
		{"annotations.save", func(ctx context.Context, c *Client, g golden.Doc) (any, error) {
			return c.SaveAnnotationsAt(ctx, golden.Dataset, "/val", "0001.jpg", rawField(t, g.Request, "annotations"))
		}, nil},
		{"annotations.bulk", func(ctx context.Context, c *Client, g golden.Doc) (any, error) {
			var req struct {
				Saves []struct {
					Annotations json.RawMessage `json:"annotations"`
				} `json:"saves"`
			}
			if err := json.Unmarshal(g.Request, &req); err != nil {
				t.Fatal(err)
			}
			return c.BulkSaveAnnotations(ctx, []AnnotationSave{{ImageID: golden.Image, Annotations: req.Saves[0].Annotations},
				{ImageID: golden.Image2, Annotations: req.Saves[1].Annotations}})
		}, []string{"Saved[].Success"}},
		{"annotations.delete", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.DeleteAnnotations(ctx, golden.Dataset, "/val", "0001.jpg")
		}, nil},
		{"exports.create", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			split := true
			return c.CreateExport(ctx, CreateExportRequest{DatasetName: golden.Dataset, Name: golden.ExportName, Format: FormatPictograph,
				IncludeImages: true, ClassFilter: []string{"stop", "yield"}, StatusFilter: "complete", OrganizeBySplit: &split})
		}, []string{"ErrorMessage", "FileSize", "ImageCount", "AnnotationCount", "ExpiresAt", "DownloadURL"}},
		{"exports.get", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.GetExport(ctx, golden.Dataset, golden.ExportName)
		}, []string{"ErrorMessage"}},
		{"exports.get.failed", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.GetExport(ctx, "", golden.Export)
		}, []string{"FileSize", "ImageCount", "AnnotationCount", "ExpiresAt", "DownloadURL"}},
		{"exports.download", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			u, err := c.ExportDownloadURL(ctx, golden.Dataset, golden.ExportName)
			return &struct{ URL string }{u}, err
		}, nil},
		{"exports.list", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			es, p, err := c.ListExports(ctx, ExportQuery{DatasetName: golden.Dataset}, 100, 0)
			return struct {
				Data       []Export
				Pagination *Pagination
			}{es, p}, err
		}, []string{"Data[].ErrorMessage", "Pagination.Offset"}},
		{"exports.delete", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return nil, c.DeleteExport(ctx, golden.Dataset, golden.ExportName)
		}, nil},
		{"exports.bulk-delete", func(ctx context.Context, c *Client, _ golden.Doc) (any, error) {
			return c.BulkDeleteExports(ctx, []string{golden.Export, golden.Export2})
		}, nil},
	}
}

// goldenNotCalled are the golden documents of routes the client does not
// call or formats it does not read.
var goldenNotCalled = map[string]string{
	"annotations.by-path":       "the client reads documents by image id",
	"exports.coco":              "the client reads pictograph exports only",
	"exports.pictograph-member": "checked by TestGoldenPictographMember",
	"error":                     "checked by TestGoldenErrorEnvelope",
}

func TestGoldenRoutes(t *testing.T) {
	for _, gc := range goldenCalls(t) {
		t.Run(gc.name, func(t *testing.T) {
			g := golden.Load(t, gc.name)
			var mu sync.Mutex
			var method string
			var body []byte
			c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				method, body = r.Method, b
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(g.Status)
				_, _ = w.Write(g.Response)
			})
			got, err := gc.call(context.Background(), c, g)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if want, _, _ := strings.Cut(g.Route, " "); method != want {
				t.Errorf("got method %s, want %s", method, want)
			}
			switch {
			case g.Request == nil && len(body) > 0:
				t.Errorf("got request body %s, want none", body)
			case g.Request != nil:
				if d := jsonDiff(body, g.Request); d != "" {
					t.Errorf("request body: %s\n got  %s\n want %s", d, body, compact(g.Request))
				}
			}
			if got != nil {
				if unset := unsetFields(got, gc.zero); len(unset) > 0 {
					t.Errorf("fields left unset by the golden response (a wrong JSON tag?): %v", unset)
				}
			}
		})
	}
}

// TestGoldenCoverage checks that every golden document is used.
func TestGoldenCoverage(t *testing.T) {
	called := map[string]bool{}
	for _, gc := range goldenCalls(t) {
		called[gc.name] = true
	}
	for _, name := range golden.Names(t) {
		if !called[name] && goldenNotCalled[name] == "" {
			t.Errorf("golden %s is used by no test", name)
		}
	}
}

func TestGoldenErrorEnvelope(t *testing.T) {
	g := golden.Load(t, "error")
	c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-1")
		w.WriteHeader(g.Status)
		_, _ = w.Write(g.Response)
	})
	_, err := c.GetDataset(context.Background(), golden.Dataset)
	var ae *APIError
	if !errors.As(err, &ae) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want an *APIError matching ErrNotFound", err)
	}
	if ae.Code != "not_found" || ae.Message != "Dataset 'road-signs' not found" || ae.Details["dataset"] != "road-signs" || ae.RequestID != "req-1" {
		t.Errorf("got code %q, message %q, details %v, request id %q; want the golden envelope's", ae.Code, ae.Message, ae.Details, ae.RequestID)
	}
}

func TestGoldenPictographMember(t *testing.T) {
	g := golden.Load(t, "exports.pictograph-member")
	var doc AnnotationDocument
	if err := json.Unmarshal(g.Response, &doc); err != nil {
		t.Fatal(err)
	}
	if unset := unsetFields(&doc, nil); len(unset) > 0 {
		t.Errorf("fields left unset: %v", unset)
	}
	re, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if d := jsonDiff(re, g.Response); d != "" {
		t.Errorf("the document does not survive a decode and encode: %s", d)
	}
}

// unsetFields walks v and returns the paths ("Data[].Classes[].Name") of
// the fields that are zero in every element that holds them, but those in
// allowed.
func unsetFields(v any, allowed []string) []string {
	seen, all := map[string]bool{}, map[string]bool{}
	walkSet(reflect.ValueOf(v), "", seen, all)
	var out []string
	for p := range all {
		if !seen[p] && !slices.Contains(allowed, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

var timeType = reflect.TypeFor[time.Time]()

func walkSet(v reflect.Value, path string, seen, all map[string]bool) {
	if path != "" {
		all[path] = true
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if path != "" {
			seen[path] = true
		}
		walkSet(v.Elem(), path, seen, all)
		return
	case reflect.Struct:
		if v.Type() == timeType {
			if !v.Interface().(time.Time).IsZero() {
				seen[path] = true
			}
			return
		}
		if path != "" {
			seen[path] = true
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			p := f.Name
			if path != "" {
				p = path + "." + f.Name
			}
			walkSet(v.Field(i), p, seen, all)
		}
		return
	case reflect.Slice:
		if v.Len() > 0 {
			seen[path] = true
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			walkSet(v.Index(i), path+"[]", seen, all)
		}
		return
	}
	if !v.IsZero() {
		seen[path] = true
	}
}

// jsonDiff compares two JSON documents by value; "" when equal.
func jsonDiff(got, want []byte) string {
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return "got is not JSON: " + err.Error()
	}
	if err := json.Unmarshal(want, &w); err != nil {
		return "want is not JSON: " + err.Error()
	}
	if reflect.DeepEqual(g, w) {
		return ""
	}
	return "documents differ"
}

func compact(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
