// Package fs is the FUSE face of pictofs: thin go-fuse node types (one file
// per kind: root, dataset, folder, image, annotation document, new files)
// and file handles over a catalog.Catalog, the kernel's cache timeouts and
// open flags, FUSE passthrough for cached blobs, the one errno map
// (toErrno), and Mount/Unmount/Abort.
//
// It must not know where listings, bytes or documents come from (the
// catalog's), how the API is spoken (client's), how blobs are laid out on
// disk (blobcache's), or where flags come from (main's). It holds no state
// of its own beyond what go-fuse needs; every answer is the catalog's, turned
// into attributes, entries and errnos. go-fuse is imported only here.
//
// Listing names never costs a document: during READDIRPLUS (the directory
// handle's Lookup) an annotation document whose size is not known without a
// request gets no attributes, so the kernel lists its name only and looks it
// up when something needs its size.
//
// Changes map to the catalog's writes: create, mkdir, unlink, rmdir and
// rename under images/ and annotations/ (dirwrite.go), local files and
// their handles, whose FLUSH and fsync report the upload or the save
// (local.go), and documents opened for writing (annotation_write.go).
// Read-only opens carry FOPEN_NOFLUSH; no node implements Flush, so that a
// write handle's FLUSH reaches it.
package fs
