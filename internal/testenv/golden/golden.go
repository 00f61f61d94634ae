// Package golden holds the golden documents that pin the client and the
// devserver to the API contract, one copy in docs/ embedded here, which the
// tests of both sides read. It knows the documents' format and the ids
// they use, nothing of either side, so that each side is checked against
// the contract and not against the other.
package golden

import (
	"embed"
	"encoding/json"
	"io/fs"
	"path"
	"strings"
	"testing"
)

// docs holds the golden documents, one file per route.
//
//go:embed docs/*.json
var docs embed.FS

// Doc is one golden document, written from the contract for one route.
type Doc struct {
	Route    string            `json:"route"`    // method and path pattern
	Request  json.RawMessage   `json:"request"`  // the request body, if the route takes one
	Status   int               `json:"status"`   // the answer's status
	Response json.RawMessage   `json:"response"` // the answer's body
	Optional []string          `json:"optional"` // paths of keys an answer may leave out
	Nullable map[string]string `json:"nullable"` // paths of keys that may be null → their JSON type otherwise
	Free     []string          `json:"free"`     // paths of values whose contents are not checked
}

// Load reads the golden document name (without .json).
func Load(t testing.TB, name string) Doc {
	t.Helper()
	b, err := fs.ReadFile(docs, path.Join("docs", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var d Doc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("golden %s: %v", name, err)
	}
	return d
}

// Names lists the golden documents by name; it fails the test when there
// is none.
func Names(t testing.TB) []string {
	t.Helper()
	files, err := fs.Glob(docs, "docs/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("got %v, %v; want golden documents in docs/", files, err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = strings.TrimSuffix(path.Base(f), ".json")
	}
	return names
}

// Values that the golden documents use, which the tests of both sides
// repeat in their requests.
const (
	Dataset    = "road-signs"
	Image      = "0190a1b2-c3d4-7e5f-8a9b-1c2d3e4f5a6b"
	Image2     = "0190a1b2-c3d4-7e5f-8a9b-2d3e4f5a6b7c"
	Export     = "0190a1b2-c3d4-7e5f-8a9b-3e4f5a6b7c8d"
	Export2    = "0190a1b2-c3d4-7e5f-8a9b-4f5a6b7c8d9e"
	ExportName = "pictofs-annotations-1"
)
