// Package fs is the FUSE face of pictofs: go-fuse nodes and file handles for
// the tree root → dataset → images/ annotations/ dataset.json, inode numbers,
// kernel cache timeouts and open flags, the errno map, and Mount/Unmount.
//
// It owns the in-memory snapshot of listings (datasets and their images), the
// per-dataset table of signed URLs, and the sanitizing of server names into
// safe, distinct entry names. It reads bytes through prefetch and the cache
// through blobcache, and talks to the API only through the narrow API
// interface that *client.Client satisfies. It must not know how the API is
// spoken on the wire (that is client's), how blobs are laid out on disk
// (blobcache's), or where flags come from (main's). go-fuse is imported only
// here.
//
// Changes map to the catalog's writes: create, mkdir, unlink, rmdir and
// rename under images/ and annotations/ (dirwrite.go), local files and
// their handles, whose FLUSH and fsync report the upload or the save
// (local.go), and documents opened for writing (annotation_write.go).
// Read-only opens carry FOPEN_NOFLUSH; no node implements Flush, so that a
// write handle's FLUSH reaches it.
package fs
