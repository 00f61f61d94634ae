// Package client is the Pictograph developer REST API client of pictofs.
//
// It owns everything between a Go call and the wire, as written in
// docs/pictograph-api.md: the key and base-URL resolution of the official CLI
// (flag, environment, ~/.pictograph/config.toml), the route table and the
// strict escaping of names in paths, the {"data": …} envelopes and the paging
// rules, the retry policy with backoff, Retry-After and idempotency keys, the
// client-side hourly request budget, the typed errors (APIError and the Err*
// sentinels), the fetching of signed storage URLs without the key, the
// model types of the contract, the export routes (create, poll, download
// link, list, delete) and the write routes (bulk upload and register, saving
// and deleting annotations, archiving images), and one event per attempt for
// whoever observes it (Options.OnRequest).
//
// It must not know about FUSE, inodes, caches, prefetching or the devserver:
// it speaks only the documented contract, and tolerates every answer the
// contract leaves open, so that it works against the real service unchanged.
// Its wire types are pinned to the golden documents in
// internal/testenv/golden/docs, which the devserver's tests read too: the
// two agree only through them.
// It imports only the standard library, BurntSushi/toml and golang.org/x/sync.
package client
