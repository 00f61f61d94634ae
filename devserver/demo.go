package devserver

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
)

// DemoDatasetName is the dataset `pictofs serve --demo` seeds.
const DemoDatasetName = "shapes-demo"

// DemoClasses are the classes of the demo dataset, one per shape drawn.
var DemoClasses = []Class{
	{Name: "circle", Type: "bbox", Color: "#e6194b"},
	{Name: "rectangle", Type: "bbox", Color: "#3cb44b"},
	{Name: "triangle", Type: "bbox", Color: "#4363d8"},
}

const demoReadme = `# shapes-demo

Generated images of circles, rectangles and triangles on noisy gradient
backgrounds, with one bounding-box annotation per shape (absolute pixels,
top-left origin). About 80% of the images are in train/, 20% in val/; about
55% are JPEG and 45% PNG. Generation is deterministic from the server seed.
`

// SeedDemo creates dataset name in orgID with n generated images (PNG and
// JPEG, in train/ and val/), each with bounding boxes that match the shapes
// drawn. Images are made by a worker pool and inserted in batches; the
// bytes depend only on Options.Seed and the image index.
func (s *Server) SeedDemo(ctx context.Context, orgID, name string, n int) (*Dataset, error) {
	return s.seedDemo(ctx, orgID, name, n, nil)
}

// SeedDemoProgress is SeedDemo with a progress callback, called from one
// goroutine after each inserted batch with the number of images so far.
func (s *Server) SeedDemoProgress(ctx context.Context, orgID, name string, n int, progress func(done int)) (*Dataset, error) {
	return s.seedDemo(ctx, orgID, name, n, progress)
}

func (s *Server) seedDemo(ctx context.Context, orgID, name string, n int, progress func(int)) (*Dataset, error) {
	if n < 0 {
		return nil, fmt.Errorf("devserver: seed demo: negative image count %d: %w", n, ErrInvalid)
	}
	d, err := s.createDataset(ctx, orgID, CreateDatasetRequest{
		Name:            name,
		Description:     fmt.Sprintf("%d generated images of shapes with bounding boxes", n),
		Readme:          demoReadme,
		AnnotationTypes: []string{"bbox"},
		Classes:         DemoClasses,
	})
	if err != nil {
		return nil, fmt.Errorf("devserver: seed demo: %w", err)
	}
	noise := demoNoise(s.opts.Seed)
	pool := sync.Pool{New: func() any { return new(demoScratch) }}
	now := micros(time.Now())
	gen := func(i int) (*newImage, error) {
		scratch := pool.Get().(*demoScratch)
		defer pool.Put(scratch)
		buf := &scratch.out
		buf.Reset()
		g, err := generateDemoImage(scratch, s.opts.Seed, i, noise)
		if err != nil {
			return nil, err
		}
		sum, err := s.blobs.put(buf.Bytes())
		if err != nil {
			return nil, err
		}
		doc, err := checkedAnnotations(g.anns, DemoClasses)
		if err != nil {
			return nil, err
		}
		im := &newImage{imageRow: imageRow{
			id: newID(), dir: g.dir, filename: g.filename, status: "complete",
			split:           sql.NullString{String: g.dir[1:], Valid: true},
			annotationCount: len(g.anns), fileSize: int64(buf.Len()), width: g.width, height: g.height,
			contentType: g.contentType, tags: "[]", blob: sum, createdAt: now,
		}, annotations: doc}
		return im, nil
	}
	if err := s.bulkLoad(ctx, d.seq, n, gen, progress); err != nil {
		return nil, fmt.Errorf("devserver: seed demo: %w", err)
	}
	return s.Dataset(ctx, orgID, d.id)
}

// demoImage describes one generated image.
type demoImage struct {
	dir, filename, contentType string
	width, height              int
	anns                       []Annotation
}

// demoNoise is a table of noise shared read-only by the generators.
func demoNoise(seed int64) []int8 {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	t := make([]int8, 1<<16)
	for i := range t {
		t[i] = int8(rng.IntN(256) - 128)
	}
	return t
}

// demoScratch is the reusable memory of one generator goroutine.
type demoScratch struct {
	out bytes.Buffer // the encoded image
	png pngEncoder
	rgb []byte
	ycc *image.YCbCr
}

type box struct{ x, y, w, h int }

func (a box) overlaps(b box, margin int) bool {
	return a.x < b.x+b.w+margin && b.x < a.x+a.w+margin && a.y < b.y+b.h+margin && b.y < a.y+a.h+margin
}

// demoShape is one shape drawn on a demo image.
type demoShape struct {
	class int
	b     box
	apex  float64
	rgb   [3]uint8
}

// generateDemoImage draws image i of the demo into sc.out and describes it.
// JPEGs are drawn in YCbCr 4:2:0 (what the encoder wants, with luma noise);
// PNGs in RGB with per-channel noise. Shapes are flat-colored, fully inside
// the image, not touching one another, and their tight bounds are the
// annotations.
func generateDemoImage(sc *demoScratch, seed int64, i int, noise []int8) (*demoImage, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)+1))
	isJPEG := rng.Float64() < 0.55
	var W int
	if isJPEG {
		W = 192 + 32*rng.IntN(7) // 192..384
	} else {
		W = 112 + 16*rng.IntN(8) // 112..224: stored PNGs are 3 bytes a pixel
	}
	aspects := []float64{1, 4.0 / 3, 3.0 / 4, 16.0 / 9, 3.0 / 2}
	H := int(float64(W) / aspects[rng.IntN(len(aspects))])
	H = min(max(H&^15, 96), 384) // multiples of 16: whole JPEG MCUs

	var c0, c1 [3]int32
	for k := range 3 {
		c0[k] = int32(40 + rng.IntN(140))
		c1[k] = int32(40 + rng.IntN(140))
	}
	minDim := min(W, H)
	var shapes []demoShape
	var anns []Annotation
	for range 1 + rng.IntN(4) {
		class := rng.IntN(len(DemoClasses))
		size := int(float64(minDim) * (0.15 + 0.25*rng.Float64()))
		bw, bh := size, size
		if class != 0 {
			bw = int(float64(size) * (0.7 + 0.6*rng.Float64()))
			bh = int(float64(size) * (0.7 + 0.6*rng.Float64()))
		}
		bw, bh = min(max(bw, 12), W-2), min(max(bh, 12), H-2)
		var b box
		ok := false
		for range 20 {
			b = box{x: rng.IntN(W - bw + 1), y: rng.IntN(H - bh + 1), w: bw, h: bh}
			ok = true
			for _, p := range shapes {
				if b.overlaps(p.b, 4) {
					ok = false
					break
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			continue
		}
		sh := demoShape{class: class, b: b, apex: rng.Float64(),
			rgb: [3]uint8{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256))}}
		sh.rgb[rng.IntN(3)] = uint8(200 + rng.IntN(56)) // saturated, away from the muted background
		shapes = append(shapes, sh)
		anns = append(anns, Annotation{
			ID: uuid.NewString(), Name: DemoClasses[class].Name, Type: "bbox",
			BoundingBox: &BoundingBox{X: float64(b.x), Y: float64(b.y), W: float64(b.w), H: float64(b.h)},
		})
	}
	g := &demoImage{width: W, height: H, anns: anns, dir: "/train"}
	if rng.Float64() < 0.2 {
		g.dir = "/val"
	}
	noiseOff := rng.IntN(len(noise))
	if isJPEG {
		amp := int32(4 + rng.IntN(12))
		quality := 80 + rng.IntN(13)
		img := sc.yccImage(W, H)
		drawYCbCr(img, c0, c1, noise, noiseOff, amp, shapes)
		g.filename, g.contentType = fmt.Sprintf("%06d.jpg", i), "image/jpeg"
		if err := jpeg.Encode(&sc.out, img, &jpeg.Options{Quality: quality}); err != nil {
			return nil, fmt.Errorf("encode jpeg: %w", err)
		}
	} else {
		amp := int32(2 + rng.IntN(8))
		rgb := sc.rgbBuf(W, H)
		drawRGB(rgb, W, H, c0, c1, noise, noiseOff, amp, shapes)
		g.filename, g.contentType = fmt.Sprintf("%06d.png", i), "image/png"
		if err := sc.png.encode(&sc.out, rgb, W, H); err != nil {
			return nil, fmt.Errorf("encode png: %w", err)
		}
	}
	return g, nil
}

func (sc *demoScratch) yccImage(W, H int) *image.YCbCr {
	r := image.Rect(0, 0, W, H)
	if sc.ycc == nil || cap(sc.ycc.Y) < W*H {
		sc.ycc = image.NewYCbCr(image.Rect(0, 0, 448, 448), image.YCbCrSubsampleRatio420)
	}
	cw, ch := (W+1)/2, (H+1)/2
	return &image.YCbCr{
		Y: sc.ycc.Y[:W*H], Cb: sc.ycc.Cb[:cw*ch], Cr: sc.ycc.Cr[:cw*ch],
		YStride: W, CStride: cw, SubsampleRatio: image.YCbCrSubsampleRatio420, Rect: r,
	}
}

func (sc *demoScratch) rgbBuf(W, H int) []byte {
	if cap(sc.rgb) < 3*W*H {
		sc.rgb = make([]byte, 3*448*448)
	}
	return sc.rgb[:3*W*H]
}

// gradient steps a channel of the background, a diagonal gradient from c0
// (top left) to c1 (bottom right), along a row in 16.16 fixed point.
type gradient struct{ acc, inc int32 }

func newGradient(c0, c1 int32, y, W, H, step int) gradient {
	den := int64(W + H)
	d := int64(c1 - c0)
	return gradient{
		acc: int32(int64(c0)<<16 + d*int64(y)<<16/den),
		inc: int32(d * int64(step) << 16 / den),
	}
}

func clamp8(v int32) uint8 { return uint8(min(max(v, 0), 255)) }

func rgbToYCC(c [3]int32) [3]int32 {
	y, cb, cr := color.RGBToYCbCr(uint8(c[0]), uint8(c[1]), uint8(c[2]))
	return [3]int32{int32(y), int32(cb), int32(cr)}
}

func drawYCbCr(img *image.YCbCr, c0, c1 [3]int32, noise []int8, off int, amp int32, shapes []demoShape) {
	W, H := img.Rect.Dx(), img.Rect.Dy()
	y0, y1 := rgbToYCC(c0), rgbToYCC(c1)
	mask := len(noise) - 1
	for y := range H {
		g := newGradient(y0[0], y1[0], y, W, H, 1)
		row := img.Y[y*img.YStride : y*img.YStride+W]
		k := (off + y*7919) & mask
		for x := range row {
			row[x] = clamp8(g.acc>>16 + int32(noise[k])*amp>>7)
			g.acc += g.inc
			k = (k + 1) & mask
		}
		if y%2 == 0 {
			cy := y / 2
			cb := img.Cb[cy*img.CStride : cy*img.CStride+(W+1)/2]
			cr := img.Cr[cy*img.CStride : cy*img.CStride+(W+1)/2]
			gb := newGradient(y0[1], y1[1], y, W, H, 2)
			gr := newGradient(y0[2], y1[2], y, W, H, 2)
			for x := range cb {
				cb[x], cr[x] = uint8(gb.acc>>16), uint8(gr.acc>>16)
				gb.acc += gb.inc
				gr.acc += gr.inc
			}
		}
	}
	for _, sh := range shapes {
		ys, cbs, crs := color.RGBToYCbCr(sh.rgb[0], sh.rgb[1], sh.rgb[2])
		shapeSpans(sh, func(y, x0, x1 int) {
			row := img.Y[y*img.YStride:]
			for x := x0; x < x1; x++ {
				row[x] = ys
			}
			if y%2 == 0 {
				c := (y / 2) * img.CStride
				for x := (x0 + 1) / 2; x < (x1+1)/2; x++ {
					img.Cb[c+x], img.Cr[c+x] = cbs, crs
				}
			}
		})
	}
}

func drawRGB(rgb []byte, W, H int, c0, c1 [3]int32, noise []int8, off int, amp int32, shapes []demoShape) {
	mask := len(noise) - 1
	for y := range H {
		gs := [3]gradient{
			newGradient(c0[0], c1[0], y, W, H, 1),
			newGradient(c0[1], c1[1], y, W, H, 1),
			newGradient(c0[2], c1[2], y, W, H, 1),
		}
		row := rgb[3*W*y : 3*W*(y+1)]
		k := (off + y*7919) & mask
		for x := 0; x < len(row); x += 3 {
			for c := range 3 {
				row[x+c] = clamp8(gs[c].acc>>16 + int32(noise[k])*amp>>7)
				gs[c].acc += gs[c].inc
				k = (k + 1) & mask
			}
		}
	}
	for _, sh := range shapes {
		shapeSpans(sh, func(y, x0, x1 int) {
			row := rgb[3*W*y:]
			for x := x0; x < x1; x++ {
				row[3*x], row[3*x+1], row[3*x+2] = sh.rgb[0], sh.rgb[1], sh.rgb[2]
			}
		})
	}
}

// shapeSpans calls fill(y, x0, x1) for each row span [x0, x1) of the shape:
// a circle inscribed in b, b itself, or a triangle with its apex on b's top
// edge at sh.apex and its base along b's bottom edge. The shape's pixels
// touch all four sides of b, so b is its tight bounding box.
func shapeSpans(sh demoShape, fill func(y, x0, x1 int)) {
	b := sh.b
	switch sh.class {
	case 0:
		r := float64(b.w) / 2
		cx, cy := float64(b.x)+r, float64(b.y)+r
		for y := b.y; y < b.y+b.h; y++ {
			dy := float64(y) + 0.5 - cy
			half := math.Sqrt(max(r*r-dy*dy, 0))
			x0 := max(b.x, int(math.Round(cx-half)))
			x1 := min(b.x+b.w, int(math.Round(cx+half)))
			if x1 <= x0 {
				x0, x1 = int(cx), int(cx)+1
			}
			fill(y, x0, x1)
		}
	case 1:
		for y := b.y; y < b.y+b.h; y++ {
			fill(y, b.x, b.x+b.w)
		}
	default:
		ax := float64(b.x) + sh.apex*float64(b.w-1)
		for y := b.y; y < b.y+b.h; y++ {
			t := (float64(y-b.y) + 1) / float64(b.h)
			x0 := max(b.x, int(math.Floor(ax+(float64(b.x)-ax)*t)))
			x1 := min(b.x+b.w, int(math.Ceil(ax+1+(float64(b.x+b.w)-ax-1)*t)))
			fill(y, x0, x1)
		}
	}
}
