package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/pictofs/pictofs/client"
)

// Source is what the server holds for one image, fetched over a path that
// shares nothing with a mount: the authenticated byte route and the
// per-image annotation route, no cache.
type Source struct {
	Image client.Image
	Bytes []byte
	Doc   []byte // the annotation document as a mount shows it (Document)
}

// Sources fetches every image of a dataset and its document, eight at a
// time, in the order of the dataset's listing.
func Sources(ctx context.Context, api *client.Client, dataset string) ([]Source, error) {
	var images []client.Image
	if _, err := api.EachDatasetImage(ctx, dataset, 0, func(page []client.Image) error {
		images = append(images, page...)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list %s: %w", dataset, err)
	}
	out := make([]Source, len(images))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, img := range images {
		g.Go(func() error {
			rc, _, err := api.OpenImage(ctx, dataset, img.DirectoryPath, img.Filename, 0, -1)
			if err != nil {
				return fmt.Errorf("image %s: %w", img.Filename, err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("image %s: %w", img.Filename, err)
			}
			doc, err := Document(ctx, api, img.ID)
			if err != nil {
				return err
			}
			out[i] = Source{Image: img, Bytes: b, Doc: doc}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// MustSources is Sources that fails the test on an error.
func MustSources(t testing.TB, api *client.Client, dataset string) []Source {
	t.Helper()
	srcs, err := Sources(context.Background(), api, dataset)
	if err != nil {
		t.Fatalf("sources of %s: %v", dataset, err)
	}
	return srcs
}

// Document returns an image's annotation document from the per-image route,
// re-indented by two spaces as a mount shows it.
func Document(ctx context.Context, api *client.Client, imageID string) ([]byte, error) {
	raw, err := api.AnnotationFile(ctx, imageID)
	if err != nil {
		return nil, fmt.Errorf("document of %s: %w", imageID, err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return nil, fmt.Errorf("document of %s: %w", imageID, err)
	}
	return buf.Bytes(), nil
}

// ImagePath is where an image with a plain name appears under its dataset's
// directory; DocumentPath is where its document does.
func ImagePath(img client.Image) string {
	return filepath.Join("images", filepath.FromSlash(strings.Trim(img.DirectoryPath, "/")), img.Filename)
}

// DocumentPath: see ImagePath.
func DocumentPath(img client.Image) string {
	return filepath.Join("annotations", filepath.FromSlash(strings.Trim(img.DirectoryPath, "/")), img.Filename+".json")
}

// Files returns the files a dataset directory must hold for srcs (but
// dataset.json), keyed by their path under it.
func Files(srcs []Source) map[string][]byte {
	want := make(map[string][]byte, 2*len(srcs))
	for _, s := range srcs {
		want[ImagePath(s.Image)] = s.Bytes
		want[DocumentPath(s.Image)] = s.Doc
	}
	return want
}

// ListTree walks root and checks that it holds exactly the files of want
// (keyed by their path under root), and dataset.json at its top, whatever
// the directories; it returns the paths seen, in walk order. Walking a
// mount's images/ queues readahead.
func ListTree(t testing.TB, root string, want map[string][]byte) []string {
	t.Helper()
	var rels []string
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() || rel == "dataset.json" {
			return nil
		}
		if _, ok := want[rel]; !ok {
			t.Errorf("%s: unexpected file under %s", rel, root)
			return nil
		}
		seen[rel] = true
		rels = append(rels, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	if len(seen) != len(want) {
		missing := 0
		for rel := range want {
			if !seen[rel] {
				missing++
				if missing <= 5 {
					t.Errorf("%s: missing under %s", rel, root)
				}
			}
		}
		t.Errorf("walk of %s saw %d files, want %d", root, len(seen), len(want))
	}
	return rels
}

// CheckTree is ListTree, then reads every file under root and compares its
// bytes and its stat size with want.
func CheckTree(t testing.TB, root string, want map[string][]byte) {
	t.Helper()
	for _, rel := range ListTree(t, root, want) {
		p := filepath.Join(root, rel)
		got, err := os.ReadFile(p)
		switch {
		case err != nil:
			t.Errorf("read %s: %v", rel, err)
		case !bytes.Equal(got, want[rel]):
			t.Errorf("%s: got %d bytes, want %d bytes equal to the source", rel, len(got), len(want[rel]))
		}
		if st, err := os.Stat(p); err == nil && st.Size() != int64(len(want[rel])) {
			t.Errorf("%s: stat size %d, want %d", rel, st.Size(), len(want[rel]))
		}
	}
}
