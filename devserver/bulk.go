package devserver

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"time"

	"github.com/google/uuid"
)

// SeedBulk creates dataset name in orgID with n images that share one tiny
// 1×1 PNG blob, inserted in a single transaction: the fastest way to a
// dataset of tens of thousands of images, for paging tests that need many
// rows, not many bytes. Images are "new", without annotations, in "/", and
// named "000000.png", "000001.png", … (six digits or more), so that the
// listing order is the index order.
func (s *Server) SeedBulk(ctx context.Context, orgID, name string, n int) (*Dataset, error) {
	if n < 0 {
		return nil, fmt.Errorf("devserver: seed bulk: negative image count %d: %w", n, ErrInvalid)
	}
	var buf bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.SetRGBA(0, 0, color.RGBA{R: 0x40, G: 0x80, B: 0xc0, A: 0xff})
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("devserver: seed bulk: %w", err)
	}
	sum, err := s.blobs.put(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("devserver: seed bulk: %w", err)
	}
	d, err := s.createDataset(ctx, orgID, CreateDatasetRequest{
		Name: name, Description: fmt.Sprintf("%d bulk images", n),
	})
	if err != nil {
		return nil, fmt.Errorf("devserver: seed bulk: %w", err)
	}
	now := time.Now()
	rows := make([]newImage, n)
	imgs := make([]*newImage, n)
	for i := range rows {
		rows[i].imageRow = imageRow{
			id: uuid.NewString(), dir: "/", filename: fmt.Sprintf("%06d.png", i), status: "new",
			fileSize: int64(buf.Len()), width: 1, height: 1, contentType: "image/png", tags: "[]",
			blob: sum, createdAt: micros(now),
		}
		imgs[i] = &rows[i]
	}
	if err := s.st.insertImages(ctx, d.seq, imgs, false, now); err != nil {
		return nil, fmt.Errorf("devserver: seed bulk: %w", err)
	}
	return s.Dataset(ctx, orgID, d.id)
}
