package devserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// Annotation validation (§11), shared by POST /annotations/{dataset}/
// {image_path}, POST /annotations/bulk and the Go API that seeds data
// (AddImage, SetAnnotations, the demo, folder import), so that no stored
// document breaks a rule a save through the API would enforce:
//
//   - an annotation object holds only id, name, type, confidence and the
//     geometry keys; anything else ("class", "label", the shorthand
//     "bbox": [x, y, w, h]) is a 422;
//   - name is a class of the dataset: a class it does not have is a 422;
//   - type is bbox, polygon, polyline or keypoint, and the geometry of that
//     type is present (bounding_box may come with any type; the other
//     geometries only with their own);
//   - numbers are finite, boxes have no negative size, a polygon path has at
//     least 3 points and a polyline at least 2, confidence is in [0, 1];
//   - a missing id is generated (a UUID), and a polygon without
//     bounding_box gets the box of all its paths.

// annotationKeys are the keys an annotation object may have.
var annotationKeys = []string{"id", "name", "type", "confidence", "bounding_box", "polygon", "polyline", "keypoint"}

// parseAnnotations decodes a JSON array of annotation objects strictly and
// validates them against the dataset's classes (see validateAnnotations).
// where names the list in error messages ("annotations").
func parseAnnotations(raw json.RawMessage, classes []Class, where string) ([]Annotation, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, unprocessable("%s must be a list of annotation objects", where)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, unprocessable("%s: %v", where, err)
	}
	anns := make([]Annotation, len(items))
	for i, it := range items {
		it = bytes.TrimSpace(it)
		if len(it) == 0 || it[0] != '{' {
			return nil, unprocessable("%s[%d] must be an object", where, i)
		}
		dec := json.NewDecoder(bytes.NewReader(it))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&anns[i]); err != nil {
			return nil, annotationDecodeError(where, i, err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, unprocessable("%s[%d]: data after the object", where, i)
		}
	}
	if err := validateAnnotations(anns, classes, where); err != nil {
		return nil, err
	}
	return anns, nil
}

func annotationDecodeError(where string, i int, err error) error {
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		return unprocessable("%s[%d].%s: want %s, got %s", where, i, typ.Field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		key := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return unprocessable("%s[%d]: unknown key %s: an annotation has only %s (the class goes in name; a box is bounding_box: {x, y, w, h})",
			where, i, key, strings.Join(annotationKeys, ", "))
	}
	return unprocessable("%s[%d]: %v", where, i, err)
}

// validateAnnotations checks anns in place against the rules above, gives
// ids to those without, and computes the boxes of polygons without one.
func validateAnnotations(anns []Annotation, classes []Class, where string) error {
	names := make(map[string]bool, len(classes))
	for _, c := range classes {
		names[c.Name] = true
	}
	for i := range anns {
		a := &anns[i]
		at := fmt.Sprintf("%s[%d]", where, i)
		if a.Name == "" {
			return unprocessable("%s.name is required: the annotation's class", at)
		}
		if !names[a.Name] {
			return unprocessable("%s.name %q is not a class of the dataset (classes: %s)", at, a.Name, classNames(classes))
		}
		if err := checkGeometry(a, at); err != nil {
			return err
		}
		if a.Confidence != nil && (!finite(*a.Confidence) || *a.Confidence < 0 || *a.Confidence > 1) {
			return unprocessable("%s.confidence %v is not within [0, 1]", at, *a.Confidence)
		}
		if a.ID == "" {
			a.ID = uuid.NewString()
		}
		if a.Polygon != nil && a.BoundingBox == nil {
			a.BoundingBox = polygonBox(a.Polygon)
		}
	}
	return nil
}

func classNames(classes []Class) string {
	if len(classes) == 0 {
		return "none"
	}
	names := make([]string, len(classes))
	for i, c := range classes {
		names[i] = fmt.Sprintf("%q", c.Name)
	}
	return strings.Join(names, ", ")
}

func checkGeometry(a *Annotation, at string) error {
	present := map[string]bool{"bbox": a.BoundingBox != nil, "polygon": a.Polygon != nil,
		"polyline": a.Polyline != nil, "keypoint": a.Keypoint != nil}
	key := map[string]string{"bbox": "bounding_box", "polygon": "polygon", "polyline": "polyline", "keypoint": "keypoint"}
	if _, ok := present[a.Type]; !ok {
		return unprocessable("%s.type %q: want bbox, polygon, polyline or keypoint", at, a.Type)
	}
	if !present[a.Type] {
		return unprocessable("%s of type %s has no %s", at, a.Type, key[a.Type])
	}
	for _, other := range []string{"polygon", "polyline", "keypoint"} {
		if other != a.Type && present[other] {
			return unprocessable("%s of type %s must not have a %s", at, a.Type, other)
		}
	}
	if b := a.BoundingBox; b != nil {
		if !finite(b.X) || !finite(b.Y) || !finite(b.W) || !finite(b.H) || b.W < 0 || b.H < 0 {
			return unprocessable("%s.bounding_box %+v: want finite numbers and no negative size", at, *b)
		}
	}
	if p := a.Polygon; p != nil {
		if len(p.Paths) == 0 {
			return unprocessable("%s.polygon has no paths", at)
		}
		for j, path := range p.Paths {
			if len(path) < 3 {
				return unprocessable("%s.polygon.paths[%d] has %d points, want at least 3", at, j, len(path))
			}
			if !finitePoints(path) {
				return unprocessable("%s.polygon.paths[%d] has a point that is not a finite number", at, j)
			}
		}
	}
	if l := a.Polyline; l != nil && (len(l.Path) < 2 || !finitePoints(l.Path)) {
		return unprocessable("%s.polyline.path: want at least 2 points of finite numbers", at)
	}
	if k := a.Keypoint; k != nil && !finitePoints([]Point{*k}) {
		return unprocessable("%s.keypoint: want finite numbers", at)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func finitePoints(ps []Point) bool {
	return !slices.ContainsFunc(ps, func(p Point) bool { return !finite(p.X) || !finite(p.Y) })
}

// polygonBox is the smallest box holding every point of p.
func polygonBox(p *Polygon) *BoundingBox {
	x0, y0 := math.Inf(1), math.Inf(1)
	x1, y1 := math.Inf(-1), math.Inf(-1)
	for _, path := range p.Paths {
		for _, pt := range path {
			x0, y0 = min(x0, pt.X), min(y0, pt.Y)
			x1, y1 = max(x1, pt.X), max(y1, pt.Y)
		}
	}
	return &BoundingBox{X: x0, Y: y0, W: x1 - x0, H: y1 - y0}
}

// checkedAnnotations validates a copy of anns against classes, with the
// rules of the save routes, and returns its stored form.
func checkedAnnotations(anns []Annotation, classes []Class) (string, error) {
	anns = slices.Clone(anns)
	if err := validateAnnotations(anns, classes, "annotations"); err != nil {
		return "", err
	}
	return encodeAnnotations(anns)
}

// encodeAnnotations is the stored form of a validated list: a JSON array.
func encodeAnnotations(anns []Annotation) (string, error) {
	if anns == nil {
		anns = []Annotation{}
	}
	b, err := json.Marshal(anns)
	if err != nil {
		return "", fmt.Errorf("encode annotations: %w", err)
	}
	return string(b), nil
}

// annotationFileBody is the exact body of GET /annotations/{image_id}/file
// for an image named filename whose stored annotations are doc. Export
// members of the pictograph format are these bytes too.
func annotationFileBody(filename, doc string) ([]byte, error) {
	b, err := json.Marshal(annotationFile{Image: filename, Annotations: json.RawMessage(doc)})
	if err != nil {
		return nil, fmt.Errorf("encode annotation document: %w", err)
	}
	return append(b, '\n'), nil
}
