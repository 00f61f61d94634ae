package catalog

import (
	"encoding/binary"
	"hash/fnv"
	"io"
	"strconv"
)

// RootIno is the inode number of the mount's root.
const RootIno = 1

// Inode numbers are derived from ids, so that an entry has the same number
// across remounts. Each kind of entry hashes its own tag first, so numbers of
// different kinds never meet. All of them are built here.
const (
	tagDataset     = "dataset"
	tagImagesDir   = "images"
	tagAnnotations = "annotations"
	tagDatasetJSON = "dataset.json"
	tagImage       = "image"
	tagAnnotation  = "annotation"
	tagLocal       = "local"
)

// DatasetIno is the inode number of a dataset's directory.
func DatasetIno(ds *Dataset) uint64 { return inodeOf(tagDataset, ds.id) }

// DatasetJSONIno is the inode number of a dataset's dataset.json.
func DatasetJSONIno(ds *Dataset) uint64 { return inodeOf(tagDatasetJSON, ds.id) }

// DirIno is the inode number of the directory dirKey under images/ (or
// under annotations/ when annotations is set).
func DirIno(ds *Dataset, annotations bool, dirKey string) uint64 {
	if annotations {
		return inodeOf(tagAnnotations, ds.id, dirKey)
	}
	return inodeOf(tagImagesDir, ds.id, dirKey)
}

// ImageIno is the inode number of an image file. It changes with the
// image's size and creation time, so replaced bytes get a fresh inode and no
// stale kernel page cache.
func ImageIno(ds *Dataset, im *Image) uint64 {
	return inodeOf(tagImage, ds.id, im.id, strconv.FormatInt(im.size, 10), strconv.FormatInt(im.createdAt, 10))
}

// AnnotationIno is the inode number of an image's annotation document. It
// changes when the document's node is renamed away through the mount (an
// editor's backup), since the kernel keeps that inode under the new name.
func AnnotationIno(ds *Dataset, im *Image) uint64 {
	if gen := ds.documentGen(im.id); gen > 0 {
		return inodeOf(tagAnnotation, ds.id, im.id, strconv.Itoa(gen))
	}
	return inodeOf(tagAnnotation, ds.id, im.id)
}

// inodeOf derives an inode number from ids (FNV-1a over the length-prefixed
// parts). It runs for every entry of every listing, so it must be cheap.
// Numbers 0 and 1 (the root) are never returned.
func inodeOf(parts ...string) uint64 {
	h := fnv.New64a()
	var n [8]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		io.WriteString(h, p)
	}
	ino := h.Sum64() &^ (1 << 63)
	if ino <= RootIno {
		ino += 2
	}
	return ino
}
