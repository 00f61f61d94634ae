package devserver

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"
)

func TestJPEGEncoderRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct {
		w, h, quality int
		minPSNR       float64
	}{{16, 16, 90, 30}, {64, 32, 75, 28}, {192, 128, 95, 32}, {48, 80, 50, 26}} {
		img := image.NewYCbCr(image.Rect(0, 0, tt.w, tt.h), image.YCbCrSubsampleRatio420)
		for y := range tt.h {
			for x := range tt.w {
				img.Y[y*img.YStride+x] = uint8((x*3 + y*2 + rng.IntN(12)) % 256)
			}
		}
		for i := range img.Cb {
			img.Cb[i] = uint8(100 + i%40)
			img.Cr[i] = uint8(150 - i%30)
		}
		var e jpegEncoder
		var buf bytes.Buffer
		if err := e.encode(&buf, img, tt.quality); err != nil {
			t.Fatal(err)
		}
		dec, err := jpeg.Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("%dx%d q%d: decode: %v", tt.w, tt.h, tt.quality, err)
		}
		got, ok := dec.(*image.YCbCr)
		if !ok || got.Bounds() != img.Bounds() || got.SubsampleRatio != image.YCbCrSubsampleRatio420 {
			t.Fatalf("%dx%d: decoded %T %v", tt.w, tt.h, dec, dec.Bounds())
		}
		psnr := func(a, b []byte, sa, sb, w, h int) float64 {
			var se float64
			for y := range h {
				for x := range w {
					d := float64(a[y*sa+x]) - float64(b[y*sb+x])
					se += d * d
				}
			}
			if se == 0 {
				return 99
			}
			return 10 * math.Log10(255*255/(se/float64(w*h)))
		}
		if p := psnr(img.Y, got.Y, img.YStride, got.YStride, tt.w, tt.h); p < tt.minPSNR {
			t.Errorf("%dx%d q%d: luma PSNR %.1f dB, want ≥ %.0f", tt.w, tt.h, tt.quality, p, tt.minPSNR)
		}
		if p := psnr(img.Cb, got.Cb, img.CStride, got.CStride, tt.w/2, tt.h/2); p < tt.minPSNR {
			t.Errorf("%dx%d q%d: Cb PSNR %.1f dB, want ≥ %.0f", tt.w, tt.h, tt.quality, p, tt.minPSNR)
		}
	}
	var e jpegEncoder
	if err := e.encode(&bytes.Buffer{}, image.NewYCbCr(image.Rect(0, 0, 10, 16), image.YCbCrSubsampleRatio420), 80); err == nil {
		t.Error("a width that is not a multiple of 16: got no error")
	}
}

// BenchmarkJPEGEncoders compares image/jpeg with jpegEncoder on a demo-like
// 288×224 image.
func BenchmarkJPEGEncoders(b *testing.B) {
	var sc demoScratch
	img := sc.yccImage(288, 224)
	drawYCbCr(img, [3]int32{50, 90, 130}, [3]int32{160, 120, 60}, demoNoise(1), 0, 12, nil)
	b.Run("image/jpeg", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			jpeg.Encode(&buf, img, &jpeg.Options{Quality: 88})
		}
		b.ReportMetric(float64(buf.Len()), "bytes")
	})
	b.Run("jpegEncoder", func(b *testing.B) {
		var buf bytes.Buffer
		var e jpegEncoder
		for b.Loop() {
			buf.Reset()
			e.encode(&buf, img, 88)
		}
		b.ReportMetric(float64(buf.Len()), "bytes")
	})
}
