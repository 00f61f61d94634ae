// Package devserver is a local, API-compatible Pictograph server: the backend
// of `pictofs serve`, of the demo and of every test.
//
// It owns everything a hosted Pictograph would hold for pictofs: SQLite
// metadata (organizations, API keys with roles, datasets, images,
// annotations, idempotency records), a content-addressed blob store on disk,
// HMAC-signed storage URLs served on a separate storage listener (another
// host, as in production), the hourly request budget per key, the demo
// dataset generator, folder import, and fault injection (latency, bandwidth,
// injected 503s, truncated bodies, short URL lifetimes).
//
// It speaks the contract in shared/docs/pictograph-api.md and gives the
// answers listed in its section 9. Signed storage URLs look like
//
//	{storage}/o/{image_id}?expires={unix seconds}&signature={base64url HMAC-SHA256}
//
// with the MAC, keyed by a per-data-dir secret, over "GET\n/o/{image_id}\n{expires}";
// upload URLs are the same with PUT and /u/{upload_id}. It must not know anything about the
// client, the cache, the prefetcher or the filesystem: it imports nothing of
// this module, not even in its tests. Its wire types (wire.go) are its own,
// so that the two implementations of the contract can only agree through the
// wire format.
package devserver
