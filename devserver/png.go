package devserver

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// pngEncoder writes 8-bit RGB PNGs, unfiltered, in stored (uncompressed)
// deflate blocks: valid PNG that any decoder reads, about ten times cheaper
// than image/png, whose adaptive filters and compression dominated the
// demo's seeding time (noisy pixels barely compress anyway). It reuses its
// buffers; one encoder per goroutine.
type pngEncoder struct {
	z   bytes.Buffer
	zw  *zlib.Writer
	row []byte
}

func (e *pngEncoder) encode(out *bytes.Buffer, rgb []byte, w, h int) error {
	out.WriteString("\x89PNG\r\n\x1a\n")
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, 2 // bit depth 8, truecolor
	pngChunk(out, "IHDR", ihdr[:])
	e.z.Reset()
	if e.zw == nil {
		zw, err := zlib.NewWriterLevel(&e.z, zlib.NoCompression)
		if err != nil {
			return fmt.Errorf("png: %w", err)
		}
		e.zw = zw
	} else {
		e.zw.Reset(&e.z)
	}
	if cap(e.row) < 1+3*w {
		e.row = make([]byte, 1+3*w)
	}
	row := e.row[:1+3*w]
	row[0] = 0 // filter type None: stored blocks gain nothing from filters
	for y := range h {
		copy(row[1:], rgb[3*w*y:3*w*(y+1)])
		if _, err := e.zw.Write(row); err != nil {
			return fmt.Errorf("png: %w", err)
		}
	}
	if err := e.zw.Close(); err != nil {
		return fmt.Errorf("png: %w", err)
	}
	pngChunk(out, "IDAT", e.z.Bytes())
	pngChunk(out, "IEND", nil)
	return nil
}

func pngChunk(out *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	out.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	out.WriteString(typ)
	out.Write(data)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	out.Write(n[:])
}
