package devserver

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"image"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// ImportDir creates dataset name in orgID from the image files under dir:
// subdirectories become directory paths, files are typed by extension
// (files that are not images, and hidden ones, are skipped). A sidecar
// "<file>.json" holding {"annotations": […]} (an SDK download's document,
// keys other than annotations ignored) gives an image its annotations; the
// dataset's classes are the names they use, in order of first use, and the
// annotations follow the rules of the save route.
func (s *Server) ImportDir(ctx context.Context, orgID, name, dir string) (*Dataset, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("devserver: import %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("devserver: import %s: not a directory", dir)
	}
	type entry struct {
		rel, ct string
		anns    []Annotation // from the sidecar, nil without one
	}
	var classes []Class
	seenClass := map[string]bool{}
	var files []entry
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(de.Name(), ".") {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !de.Type().IsRegular() {
			return nil
		}
		mt, _, err := mime.ParseMediaType(mime.TypeByExtension(strings.ToLower(filepath.Ext(p))))
		if err != nil || !strings.HasPrefix(mt, "image/") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		e := entry{rel: filepath.ToSlash(rel), ct: mt}
		if side, err := os.ReadFile(p + ".json"); err == nil {
			var doc struct {
				Annotations []Annotation `json:"annotations"`
			}
			if err := json.Unmarshal(side, &doc); err != nil {
				return fmt.Errorf("annotations of %s: %w", e.rel, err)
			}
			e.anns = doc.Annotations
			for _, a := range doc.Annotations {
				if a.Name != "" && !seenClass[a.Name] {
					seenClass[a.Name] = true
					classes = append(classes, Class{Name: a.Name, Type: a.Type})
				}
			}
		}
		files = append(files, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("devserver: import %s: %w", dir, err)
	}
	d, err := s.createDataset(ctx, orgID, CreateDatasetRequest{
		Name:        name,
		Description: fmt.Sprintf("imported from %s", filepath.Base(dir)),
		Classes:     classes,
	})
	if err != nil {
		return nil, fmt.Errorf("devserver: import %s: %w", dir, err)
	}
	now := micros(time.Now())
	gen := func(i int) (*newImage, error) {
		f := files[i]
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.rel)))
		if err != nil {
			return nil, err
		}
		sum, err := s.blobs.put(data)
		if err != nil {
			return nil, err
		}
		dirPath := "/"
		if d := path.Dir(f.rel); d != "." {
			dirPath = "/" + d
		}
		im := &newImage{imageRow: imageRow{
			id: newID(), dir: dirPath, filename: path.Base(f.rel), status: "new",
			fileSize: int64(len(data)), contentType: f.ct, tags: "[]", blob: sum, createdAt: now,
		}}
		if sp := splitOf(dirPath); sp != nil {
			im.split = sql.NullString{String: *sp, Valid: true}
		}
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			im.width, im.height = cfg.Width, cfg.Height
		}
		if f.anns != nil {
			if im.annotations, err = checkedAnnotations(f.anns, classes); err != nil {
				return nil, fmt.Errorf("annotations of %s: %w", f.rel, err)
			}
			im.annotationCount = len(f.anns)
			if im.annotationCount > 0 {
				im.status = "complete"
			}
		}
		return im, nil
	}
	if err := s.bulkLoad(ctx, d.seq, len(files), gen, nil); err != nil {
		return nil, fmt.Errorf("devserver: import %s: %w", dir, err)
	}
	return s.Dataset(ctx, orgID, d.id)
}
