package sharedcache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

// Value format, version 1. Every value the tier writes, blob or metadata:
//
//	offset  size  field
//	0       4     magic "PFSC"
//	4       1     format version (1)
//	5       1     kind: 1 blob, 2 metadata
//	6       2     zero
//	8       8     payload length, big-endian
//	16      8     produced at, Unix nanoseconds, big-endian (0 for blobs)
//	24      32    SHA-256 of bytes 0–23, the Redis key and the payload
//	56      …     payload
//
// The digest covers the header and the key as well as the payload, so a value
// copied under another key (another organization's, another blob's) or with
// an edited header does not verify. A blob's value depends only on its key
// and bytes, so every node publishes the same value for the same blob.
const (
	magic         = "PFSC"
	formatVersion = 1
	kindBlob      = 1
	kindMeta      = 2

	offKind     = 5
	offLength   = 8
	offProduced = 16
	offDigest   = 24
	headerLen   = offDigest + sha256.Size
)

// keyVersion is the format version in every Redis key name: a pictofs that
// changes the format uses other keys, and never reads what it cannot parse.
const keyVersion = "pictofs:1:"

// namespaceHash is what stands for a namespace in key names and logs.
func namespaceHash(ns string) string {
	sum := sha256.Sum256([]byte("pictofs sharedcache namespace\x00" + ns))
	return hex.EncodeToString(sum[:16])
}

// keyPrefix returns the prefix of every Redis key of namespace ns.
func keyPrefix(ns string) string { return keyVersion + namespaceHash(ns) + ":" }

// hashName hides a caller's key or name in a Redis key.
func hashName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// encode returns the value holding payload under redisKey.
func encode(redisKey string, kind byte, payload []byte, producedAt time.Time) []byte {
	v := make([]byte, headerLen+len(payload))
	copy(v, magic)
	v[4] = formatVersion
	v[offKind] = kind
	binary.BigEndian.PutUint64(v[offLength:], uint64(len(payload)))
	if !producedAt.IsZero() {
		binary.BigEndian.PutUint64(v[offProduced:], uint64(producedAt.UnixNano()))
	}
	copy(v[headerLen:], payload)
	copy(v[offDigest:], digest(v[:offDigest], redisKey, payload))
	return v
}

func digest(head []byte, redisKey string, payload []byte) []byte {
	h := sha256.New()
	h.Write(head)
	io.WriteString(h, redisKey)
	h.Write(payload)
	return h.Sum(nil)
}

// Reasons a value is refused.
var (
	errMalformed = errors.New("malformed value")
	errSize      = errors.New("size differs from the expected size")
)

// decode checks v, read under redisKey, and returns a copy of its payload.
// wantSize < 0 accepts any length. errMalformed means the value is not one
// this version wrote for this key (garbage, truncated, another version or
// kind, a wrong digest); errSize, a well-formed value of another size.
func decode(v string, redisKey string, kind byte, wantSize int64) (payload []byte, producedAt time.Time, err error) {
	if len(v) < headerLen {
		return nil, time.Time{}, fmt.Errorf("%w: %d bytes, shorter than a header", errMalformed, len(v))
	}
	head := []byte(v[:headerLen])
	switch {
	case string(head[:4]) != magic:
		return nil, time.Time{}, fmt.Errorf("%w: bad magic", errMalformed)
	case head[4] != formatVersion:
		return nil, time.Time{}, fmt.Errorf("%w: version %d", errMalformed, head[4])
	case head[offKind] != kind:
		return nil, time.Time{}, fmt.Errorf("%w: kind %d, want %d", errMalformed, head[offKind], kind)
	}
	length := binary.BigEndian.Uint64(head[offLength:])
	if length != uint64(len(v)-headerLen) {
		return nil, time.Time{}, fmt.Errorf("%w: length %d, but %d payload bytes", errMalformed, length, len(v)-headerLen)
	}
	payload = []byte(v[headerLen:])
	if string(digest(head[:offDigest], redisKey, payload)) != string(head[offDigest:]) {
		return nil, time.Time{}, fmt.Errorf("%w: checksum mismatch", errMalformed)
	}
	if wantSize >= 0 && uint64(wantSize) != length {
		return nil, time.Time{}, fmt.Errorf("%w: %d bytes, want %d", errSize, length, wantSize)
	}
	if ns := int64(binary.BigEndian.Uint64(head[offProduced:])); ns != 0 {
		producedAt = time.Unix(0, ns)
	}
	return payload, producedAt, nil
}
