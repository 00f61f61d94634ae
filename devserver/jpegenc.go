package devserver

import (
	"bytes"
	"errors"
	"image"
	"math/bits"
)

// jpegEncoder writes baseline 4:2:0 JPEGs straight from the planes of an
// image.YCbCr whose size is a multiple of 16, with the standard (Annex K)
// quantization and Huffman tables: the same output format as image/jpeg,
// at a fraction of its cost (no per-pixel color conversion or subsampling,
// a float AAN DCT, multiplications instead of divisions). The demo seeds
// its JPEGs with it; image/jpeg decodes them. One encoder per goroutine.
type jpegEncoder struct {
	quality int
	quant   [2][64]byte    // zig-zag order, as written in DQT
	recip   [2][64]float32 // zig-zag order: 1 / (quant × AAN scale × 8)

	buf   []byte // the entropy-coded data, stuffed
	bits  uint64 // pending bits, the low nbits of it
	nbits uint
	block [64]float32
	coef  [64]int32 // quantized, zig-zag order
}

// Standard tables of the JPEG specification, Annex K; quantization tables
// in zig-zag order.
var (
	jpegQuant = [2][64]byte{{
		16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40,
		26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58, 51, 61, 60, 57, 51,
		56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87,
		95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
	}, {
		17, 18, 18, 24, 21, 24, 47, 26, 26, 47, 99, 66, 56, 66, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
	}}
	jpegUnzig = [64]int{
		0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
		12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
		35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
		58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
	}
	jpegAAN = [8]float32{1, 1.387039845, 1.306562965, 1.175875602, 1, 0.785694958, 0.541196100, 0.275899379}
)

// huffSpec is a Huffman table as DHT writes it: code counts per length and
// the symbols in code order.
type huffSpec struct {
	count [16]byte
	value []byte
}

var jpegHuffSpecs = [4]huffSpec{{ // luminance DC
	[16]byte{0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
	[]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
}, { // luminance AC
	[16]byte{0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125},
	[]byte{
		0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
		0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
		0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
		0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
		0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
		0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
		0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
		0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
		0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
		0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
		0xf9, 0xfa,
	},
}, { // chrominance DC
	[16]byte{0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
	[]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
}, { // chrominance AC
	[16]byte{0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119},
	[]byte{
		0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
		0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
		0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
		0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
		0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
		0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
		0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
		0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
		0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
		0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
		0xf9, 0xfa,
	},
}}

// huffCode is a symbol's code, right-aligned, and its length.
type huffCode struct {
	code uint32
	size uint8
}

// jpegHuff are the code tables of jpegHuffSpecs, by symbol.
var jpegHuff = func() (t [4][256]huffCode) {
	for i, spec := range jpegHuffSpecs {
		code, k := uint32(0), 0
		for n, c := range spec.count {
			for range c {
				t[i][spec.value[k]] = huffCode{code: code, size: uint8(n + 1)}
				code++
				k++
			}
			code <<= 1
		}
	}
	return t
}()

func (e *jpegEncoder) setQuality(q int) {
	if e.quality == q {
		return
	}
	e.quality = q
	q = min(max(q, 1), 100)
	scale := 200 - 2*q
	if q < 50 {
		scale = 5000 / q
	}
	for t := range 2 {
		for zz := range 64 {
			v := min(max((int(jpegQuant[t][zz])*scale+50)/100, 1), 255)
			e.quant[t][zz] = byte(v)
			nat := jpegUnzig[zz]
			e.recip[t][zz] = 1 / (float32(v) * jpegAAN[nat/8] * jpegAAN[nat%8] * 8)
		}
	}
}

// encode writes img (4:2:0, width and height multiples of 16) to out.
func (e *jpegEncoder) encode(out *bytes.Buffer, img *image.YCbCr, quality int) error {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	if img.SubsampleRatio != image.YCbCrSubsampleRatio420 || w%16 != 0 || h%16 != 0 || w == 0 || h == 0 || img.Rect.Min != (image.Point{}) {
		return errors.New("jpeg: want a 4:2:0 image at the origin whose sides are multiples of 16")
	}
	e.setQuality(quality)
	e.buf, e.bits, e.nbits = e.buf[:0], 0, 0
	out.Write([]byte{0xff, 0xd8})
	// DQT: two 8-bit tables.
	out.Write([]byte{0xff, 0xdb, 0, 2 + 2*65})
	for t := range 2 {
		out.WriteByte(byte(t))
		out.Write(e.quant[t][:])
	}
	// SOF0: 8-bit, three components, Y sampled 2×2.
	out.Write([]byte{0xff, 0xc0, 0, 17, 8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3,
		1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1})
	// DHT: the four standard tables.
	n := 2
	for _, s := range jpegHuffSpecs {
		n += 17 + len(s.value)
	}
	out.Write([]byte{0xff, 0xc4, byte(n >> 8), byte(n)})
	for i, s := range jpegHuffSpecs {
		out.WriteByte(byte((i%2)<<4 | i/2))
		out.Write(s.count[:])
		out.Write(s.value)
	}
	// SOS: all three components in one scan.
	out.Write([]byte{0xff, 0xda, 0, 12, 3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0})
	var prevY, prevCb, prevCr int32
	for my := 0; my < h; my += 16 {
		for mx := 0; mx < w; mx += 16 {
			for _, o := range [4][2]int{{0, 0}, {8, 0}, {0, 8}, {8, 8}} {
				e.load(img.Y, img.YStride, mx+o[0], my+o[1])
				prevY = e.writeBlock(0, prevY)
			}
			e.load(img.Cb, img.CStride, mx/2, my/2)
			prevCb = e.writeBlock(1, prevCb)
			e.load(img.Cr, img.CStride, mx/2, my/2)
			prevCr = e.writeBlock(1, prevCr)
		}
	}
	e.emit(0x7f, 7) // pad the last byte with ones
	out.Write(e.buf)
	out.Write([]byte{0xff, 0xd9})
	return nil
}

// load copies the 8×8 block at (x, y) of a plane, level-shifted, into e.block.
func (e *jpegEncoder) load(plane []byte, stride, x, y int) {
	for r := range 8 {
		row := plane[(y+r)*stride+x : (y+r)*stride+x+8]
		b := e.block[8*r : 8*r+8]
		for c, v := range row {
			b[c] = float32(v) - 128
		}
	}
}

// fdct is the AAN floating-point forward DCT, in place; its outputs are
// scaled by jpegAAN[u]·jpegAAN[v]·8, which recip undoes.
func fdct(d *[64]float32) {
	for i := 0; i < 64; i += 8 {
		fdct8(d, i, 1)
	}
	for i := range 8 {
		fdct8(d, i, 8)
	}
}

func fdct8(d *[64]float32, o, s int) {
	t0, t7 := d[o]+d[o+7*s], d[o]-d[o+7*s]
	t1, t6 := d[o+s]+d[o+6*s], d[o+s]-d[o+6*s]
	t2, t5 := d[o+2*s]+d[o+5*s], d[o+2*s]-d[o+5*s]
	t3, t4 := d[o+3*s]+d[o+4*s], d[o+3*s]-d[o+4*s]

	t10, t13 := t0+t3, t0-t3
	t11, t12 := t1+t2, t1-t2
	d[o] = t10 + t11
	d[o+4*s] = t10 - t11
	z1 := (t12 + t13) * 0.707106781
	d[o+2*s] = t13 + z1
	d[o+6*s] = t13 - z1

	t10, t11, t12 = t4+t5, t5+t6, t6+t7
	z5 := (t10 - t12) * 0.382683433
	z2 := 0.541196100*t10 + z5
	z4 := 1.306562965*t12 + z5
	z3 := t11 * 0.707106781
	z11, z13 := t7+z3, t7-z3
	d[o+5*s] = z13 + z2
	d[o+3*s] = z13 - z2
	d[o+s] = z11 + z4
	d[o+7*s] = z11 - z4
}

// writeBlock transforms, quantizes and entropy-codes e.block with table t
// (0 luminance, 1 chrominance) and returns its DC for the next block.
func (e *jpegEncoder) writeBlock(t int, prevDC int32) int32 {
	fdct(&e.block)
	recip := &e.recip[t]
	for zz, nat := range jpegUnzig {
		e.coef[zz] = roundInt(e.block[nat] * recip[zz])
	}
	dc := e.coef[0]
	e.emitValue(t*2, dc-prevDC)
	ac := &jpegHuff[t*2+1]
	run := 0
	for _, v := range e.coef[1:] {
		if v == 0 {
			run++
			continue
		}
		for run > 15 {
			e.emitHuff(ac[0xf0])
			run -= 16
		}
		nbits, bits := category(v)
		e.emitHuff(ac[byte(run<<4)|nbits])
		e.emit(bits, uint(nbits))
		run = 0
	}
	if run > 0 {
		e.emitHuff(ac[0x00])
	}
	return dc
}

// roundInt rounds half up without a branch; quantized coefficients are
// far inside ±4096.
func roundInt(f float32) int32 { return int32(f+4096.5) - 4096 }

// category is the size class of v and its additional bits.
func category(v int32) (uint8, uint32) {
	a := v
	if a < 0 {
		a, v = -a, v-1
	}
	n := uint8(bits.Len32(uint32(a)))
	return n, uint32(v) & (1<<n - 1)
}

// emitValue writes a DC difference with Huffman table t.
func (e *jpegEncoder) emitValue(t int, v int32) {
	n, bits := category(v)
	e.emitHuff(jpegHuff[t][n])
	e.emit(bits, uint(n))
}

func (e *jpegEncoder) emitHuff(h huffCode) { e.emit(h.code, uint(h.size)) }

// emit appends the low n bits of bits, flushing whole bytes with 0xff
// stuffing.
func (e *jpegEncoder) emit(bits uint32, n uint) {
	if n == 0 {
		return
	}
	e.bits = e.bits<<n | uint64(bits&(1<<n-1))
	e.nbits += n
	for e.nbits >= 8 {
		e.nbits -= 8
		b := byte(e.bits >> e.nbits)
		e.buf = append(e.buf, b)
		if b == 0xff {
			e.buf = append(e.buf, 0)
		}
	}
}
