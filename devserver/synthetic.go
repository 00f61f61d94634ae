package devserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
)

// SynthBlobs is the number of distinct byte blobs SeedSynthetic stores:
// image i holds blob i % SynthBlobs, so up to SynthBlobs images have bytes
// of their own and a million images cost only SynthBlobs files.
const SynthBlobs = 4096

// SeedSynthetic creates dataset name in orgID with n small images, fast
// enough for a million: 8×8 PNGs (even i) and JPEGs (odd i) that each carry
// a private chunk (PNG) or comment (JPEG) with the blob number and 0.2–24 KiB
// of incompressible padding, so that no two of the first SynthBlobs images
// have the same bytes. Images are spread over dirs directories "/dir-000",
// "/dir-001", … (all at the dataset's top when dirs <= 1) and named
// "img-0000042.png". Every even image has one bounding box, the others none.
// Bytes depend only on Options.Seed and i.
func (s *Server) SeedSynthetic(ctx context.Context, orgID, name string, n, dirs int) error {
	if n < 0 {
		return fmt.Errorf("devserver: seed synthetic: negative image count %d: %w", n, ErrInvalid)
	}
	d, err := s.createDataset(ctx, orgID, CreateDatasetRequest{
		Name:            name,
		Description:     fmt.Sprintf("%d synthetic images", n),
		AnnotationTypes: []string{"bbox"},
		Classes:         []Class{{Name: "square", Type: "bbox"}},
	})
	if err != nil {
		return fmt.Errorf("devserver: seed synthetic: %w", err)
	}
	type blob struct {
		sum  []byte
		size int64
	}
	blobs := make([]blob, min(n, SynthBlobs))
	for i := range blobs {
		data, err := SyntheticImage(s.opts.Seed, i)
		if err != nil {
			return fmt.Errorf("devserver: seed synthetic: %w", err)
		}
		sum, err := s.blobs.put(data)
		if err != nil {
			return fmt.Errorf("devserver: seed synthetic: %w", err)
		}
		blobs[i] = blob{sum: sum, size: int64(len(data))}
	}
	doc, err := checkedAnnotations([]Annotation{{ID: "synthetic-box", Name: "square", Type: "bbox",
		BoundingBox: &BoundingBox{X: 2, Y: 2, W: 4, H: 4}}}, []Class{{Name: "square", Type: "bbox"}})
	if err != nil {
		return fmt.Errorf("devserver: seed synthetic: %w", err)
	}
	now := micros(time.Now())
	gen := func(i int) (*newImage, error) {
		b := blobs[i%len(blobs)]
		dir := "/"
		if dirs > 1 {
			dir = fmt.Sprintf("/dir-%03d", i%dirs)
		}
		im := &newImage{imageRow: imageRow{
			id: uuid.NewString(), dir: dir, filename: SyntheticFilename(i), status: "new",
			fileSize: b.size, width: 8, height: 8, contentType: syntheticType(i), tags: "[]",
			blob: b.sum, createdAt: now,
		}}
		if i%2 == 0 {
			im.status, im.annotationCount, im.annotations = "complete", 1, doc
		}
		return im, nil
	}
	if err := s.bulkLoad(ctx, d.seq, n, gen, nil); err != nil {
		return fmt.Errorf("devserver: seed synthetic: %w", err)
	}
	return nil
}

// SyntheticFilename is the filename SeedSynthetic gives image i.
func SyntheticFilename(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("img-%07d.png", i)
	}
	return fmt.Sprintf("img-%07d.jpg", i)
}

func syntheticType(i int) string {
	if i%2 == 0 {
		return "image/png"
	}
	return "image/jpeg"
}

// SyntheticImage returns the bytes of SeedSynthetic's blob i (image i when
// i < SynthBlobs).
func SyntheticImage(seed int64, i int) ([]byte, error) {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)+0x517e))
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	bg := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
	for y := range 8 {
		for x := range 8 {
			c := bg
			if x >= 2 && x < 6 && y >= 2 && y < 6 {
				c = color.RGBA{255 - bg.R, 255 - bg.G, 255 - bg.B, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	pad := make([]byte, 200+rng.IntN(24<<10)+8)
	for j := 0; j+8 <= len(pad); j += 8 {
		binary.LittleEndian.PutUint64(pad[j:], rng.Uint64())
	}
	pad = pad[:len(pad)-8]
	tag := append([]byte(fmt.Sprintf("pictofs synthetic %d\n", i)), pad...)
	var out bytes.Buffer
	if i%2 == 0 {
		if err := png.Encode(&out, img); err != nil {
			return nil, err
		}
		b := out.Bytes()
		iend := len(b) - 12 // the IEND chunk closes every PNG
		var chunk bytes.Buffer
		binary.Write(&chunk, binary.BigEndian, uint32(len(tag)))
		chunk.WriteString("pfSx") // ancillary, private, safe to copy
		chunk.Write(tag)
		binary.Write(&chunk, binary.BigEndian, crc32.ChecksumIEEE(chunk.Bytes()[4:]))
		return append(append(append([]byte{}, b[:iend]...), chunk.Bytes()...), b[iend:]...), nil
	}
	if err := jpeg.Encode(&out, img, &jpeg.Options{Quality: 90}); err != nil {
		return nil, err
	}
	b := out.Bytes()
	var com bytes.Buffer
	for len(tag) > 0 { // COM segments after SOI, at most 65533 bytes each
		part := tag[:min(len(tag), 65533)]
		tag = tag[len(part):]
		com.Write([]byte{0xff, 0xfe})
		binary.Write(&com, binary.BigEndian, uint16(len(part)+2))
		com.Write(part)
	}
	return append(append(append([]byte{}, b[:2]...), com.Bytes()...), b[2:]...), nil
}
