// Package prefetch fetches blobs into a [blobcache.Cache]: on demand, with
// priority, and ahead of reads when a directory is walked.
//
// It owns the scheduling of fetches: single-flight per key (an on-demand Get
// and a readahead of one key share one fetch), the readahead queue and its
// workers, the readahead window (bytes fetched ahead but not yet read are
// bounded by a share of the cache, so a walk never evicts what it just
// fetched), retries of failed fetches, and cancellation. It must not know
// what it fetches or how: it knows nothing of HTTP, FUSE or the Pictograph
// API. Callers pass a [Request] whose Fetch function writes the bytes, and
// receive pinned [blobcache.Handle]s. It imports only blobcache of pictofs.
//
// # Scheduling
//
// [Prefetcher.Get] never waits behind readahead: it returns a cache hit at
// once, joins the in-flight fetch of its key, or starts a fetch in its own
// goroutine. [Prefetcher.Enqueue] appends to one FIFO served by
// Options.Workers workers. A worker takes the head of the queue only when its
// expected size fits in the window; the window is released when a Get reads
// the blob, or when the cache evicts or removes it (the Prefetcher registers
// with [blobcache.Cache.OnEvict]; a worker waiting for room is woken by that
// call, not by a timer). A readahead request larger than the window is
// dropped: it is fetched on demand when read. A request of unknown size is
// started whenever the window is not full and charged its actual size once
// fetched, so the window can be exceeded by at most the unknown-size blobs in
// flight.
//
// The window only guarantees what the cache can: prefetched blobs are
// unpinned, so they stay cached as long as pinned blobs and on-demand fetches
// leave them room, that is while those stay below (1 − ReadaheadShare) of the
// cache.
//
// # Cancellation
//
// A fetch runs under its own context. A Get whose context is cancelled only
// stops waiting: the fetch goes on, and a later Get of the key joins it or
// finds the blob cached. That is what an interrupted open needs: a FUSE
// request is interrupted by any signal its caller catches (SIGCHLD when a
// child exits, SIGALRM…), and the caller restarts the system call at once,
// as a new Get. Cancelling the fetch there would start the download over
// each time, and a reader taking signals faster than a blob downloads would
// never get it. A Get whose deadline passes has given up on the fetch: if
// no other Get waits for it and it is not a readahead, the fetch is
// cancelled, so that a later Get starts afresh instead of joining one stuck
// in its retries. Close cancels everything and waits for it.
//
// # Locking
//
// Prefetcher.mu guards the queue, the in-flight calls, the window and the
// counters (see the field comments). No fetch, cache fill or file operation
// runs while it is held.
package prefetch
