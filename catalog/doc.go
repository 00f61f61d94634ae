// Package catalog is pictofs without FUSE: what a mount shows, and where
// each byte of it comes from.
//
// It owns the root listing of an organization's datasets, each dataset's
// image listing (a snapshot trusted for ListTTL), the sanitizing of server
// names into safe, distinct entry names, inode numbers, the per-dataset table
// of signed URLs, the fetch functions handed to the prefetcher, annotation
// documents (the bulk export snapshot, the per-image route, empty documents
// and the fetch-ahead policy that keeps requests within the hourly budget),
// the dataset changes a mount can make (create, rename, delete), and the
// writes (writes.go): files staged while they are written, uploaded or
// saved when closed, scratch files, removals, and the staging area that
// survives a crash.
//
// It talks to the API only through the narrow API interface that
// *client.Client satisfies, and reads and fills the disk cache through
// prefetch and blobcache. It must not know how the API is spoken on the
// wire (client's), how blobs are laid out on disk (blobcache's), where flags
// come from (main's), or anything of FUSE: package fs adapts it to go-fuse
// nodes, and errno mapping is fs's.
//
// What it relies on from the Pictograph API (docs/pictograph-api.md in this
// repository): datasets by name or id; image listings paged with
// include_images; one download listing per dataset (10000 items, no offset)
// with signed storage URLs that expire; the authenticated byte route for
// images beyond it; one request per annotation document, or an
// annotations-only export for all of them.
package catalog
