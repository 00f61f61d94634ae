// Package blobcache is pictofs's on-disk, byte-bounded LRU cache of immutable
// blobs: image bytes and annotation documents alike, addressed by a [Key]
// (the hex SHA-256 of whatever identifies the blob, see [KeyOf]).
//
// It owns the cache directory and everything in it: the layout, the
// completeness record of every blob, the byte cap and the free-space floor,
// eviction, pinning, and recovery after a crash. It must not know what a blob
// is, where its bytes come from (HTTP, the Pictograph API, signed URLs), or
// who reads it (FUSE): callers hand [Cache.Fill] a function that writes the
// bytes and receive a [Handle] with an open file. It imports nothing else of
// pictofs.
//
// # Guarantees
//
//   - The cap counts committed blobs, blobs removed from the index but still
//     held open, and the reservations of in-flight fills. Fill reserves the
//     blob's size and evicts unpinned least-recently-used blobs before it
//     writes a byte, so the directory never grows past Options.MaxBytes (and
//     never leaves less than Options.MinFreeRatio of its filesystem free).
//     When only pinned blobs are left, Fill fails with [ErrNoSpace].
//   - A blob with an open [Handle] is never evicted. Eviction candidates come
//     from the golang-lru order; pinned blobs are taken out of that list while
//     pinned and put back at the most-recent end when their last Handle is
//     released.
//   - A blob is visible only once complete: bytes are written to a private
//     temporary file, the count is checked against the expected size (a short
//     body is [ErrShortBlob] and is never cached) and the file is renamed into
//     place.
//
// # On-disk format
//
//	Dir/ab/<key>-<size>-<crc32c>   a blob; ab = the key's first two hex digits
//	Dir/tmp/<instance>.lock        flock held by a live Cache for its lifetime
//	Dir/tmp/<instance>/            that instance's temporary files
//
// The blob file holds exactly the blob's bytes, so its descriptor can be
// served directly (ReadResultFd, FUSE passthrough). The completeness record
// lives in the file name: the decimal size and the CRC32C (Castagnoli) of the
// bytes, so publishing the data and its record is one atomic rename. Files are
// 0600 and directories 0700.
//
// Fills do not fsync. After a crash the rename may have reached the disk before
// the data did; such a file is caught by its record instead: [Open] drops every
// file whose size differs from the size in its name, and the first [Cache.Get]
// of a blob this process did not write itself (found on disk at Open, or
// written by another process) reads it once and checks the CRC32C before
// returning it. Blobs written by this process are trusted.
//
// # Sharing a directory between processes
//
// Two mounts may share one Dir at once. Each Cache stages its temporary files
// in its own directory under Dir/tmp, guarded by an flock; Open removes the
// staging directories whose lock is free (their owner died) and never touches
// a live instance's. Blobs appear under their final name only by rename.
// A Get of a key missing from this process's index looks for a file of that
// key on disk and adopts it (size from the name, CRC checked on first use);
// a blob deleted by the other process is a miss, and the entry is dropped.
// Each instance enforces MaxBytes over the blobs in its own index (everything
// found at Open, plus what it fills or adopts); the free-space floor is
// measured on the filesystem and so holds for all of them together.
//
// # Locking
//
// Cache.mu guards the index (see the field comments). No file-system call
// and no caller callback runs while it is held: eviction picks victims under
// the mutex, and unlinks them and calls the [Cache.OnEvict] functions after
// releasing it, as golang-lru's Cache calls its eviction callback.
package blobcache
