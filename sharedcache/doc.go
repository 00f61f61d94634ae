// Package sharedcache is pictofs's second cache tier: a Redis server (or any
// Redis-protocol server: Valkey, ElastiCache, Memorystore) shared by the
// mounts of several machines, so that N nodes reading one dataset cost about
// one node's upstream traffic and API requests. It sits between the local
// disk cache and Pictograph: a local miss asks the tier ([Tier.Get]); a tier
// miss is fetched upstream and then published ([Tier.Publish]) in the
// background. It also shares metadata snapshots ([Tier.GetMeta],
// [Tier.PublishMeta]) and leases ([Tier.Lease]) so that one node at a time
// builds what all of them need.
//
// It owns the connection to the server (through go-redis), the key names, the
// value format and its verification, the background publish queue, the
// detection of outages and the fallback around them, and its counters. It
// must not know what a blob or a snapshot is, nor anything of the Pictograph
// API, HTTP, signed URLs, FUSE or the disk cache: callers pass content keys
// and bytes. It imports nothing of pictofs.
//
// # What never reaches the tier
//
// The API key and signed URLs are secrets; the tier is shared and its
// operator is not the account's owner. The package takes only content keys
// (the blobcache key of a blob: a hash over API host, organization, image id
// and size), names of snapshots, and bytes. Callers must never pass a URL or a
// credential as a key, a name or data, and a published snapshot must hold no
// signed URL. Keys and names are hashed before they reach the server anyway.
//
// # Keys and values
//
//	pictofs:1:<ns>:b:<sha256(key)>    a blob
//	pictofs:1:<ns>:m:<sha256(name)>   a metadata snapshot
//	pictofs:1:<ns>:l:<sha256(name)>   a lease (a random token)
//
// <ns> is a hash of Options.Namespace (API host and organization), so two
// organizations sharing one server never see each other's entries. That
// separates tenants that trust each other; against a hostile one, give each
// organization its own Redis ACL user limited to its [Tier.KeyPattern]
// (every command the tier sends names only keys under it), or its own
// server. Every
// value carries a header (magic, format version, kind, length, produced-at
// time) and a SHA-256 over the header, the key and the payload (see
// value.go). A read verifies all of it, and the expected size; anything else
// (garbage, a truncated or evicted-and-rewritten value, another version) is a
// miss, and a malformed value is deleted. Nothing partial or unverified is
// ever returned.
//
// # Faults
//
// No fault of the tier fails a caller: a read that errs, times out or finds
// garbage is a miss; a publish that cannot be queued or written is dropped.
// Reads wait at most Options.OpTimeout (Options.MetaTimeout for snapshots),
// and the values being read at once are bounded by Options.ReadBytes, so a
// burst of large reads neither holds unbounded memory nor starves every read
// of the link. A failure of the server (unreachable, silent, refusing the
// password) takes the tier down: it is logged once, every call is skipped
// for Options.RetryAfter, then one call probes it, and the first answer
// brings it back (logged once). A read that runs out of time while the
// server answers others is a miss, and leaves the tier up: the server is
// busy, not gone. [Tier.Stats] counts all of it.
//
// # Configuring the server
//
// The tier never relies on a key staying: the server's own eviction bounds
// it. Set maxmemory to the memory the tier may use and
// maxmemory-policy allkeys-lru (Valkey, ElastiCache and Memorystore have the
// same settings), e.g.
//
//	redis-server --maxmemory 8gb --maxmemory-policy allkeys-lru --save '' --appendonly no
//
// Under the default noeviction policy a full server refuses writes: reads go
// on, publishes fail, and the tier warns about it once a minute. Persistence
// is not needed: an empty tier is only a cold one. Blobs have no TTL unless
// Options.BlobTTL is set; snapshots expire with the TTL their publisher gives.
// With a password, use the URL's user info or Options.Password (never
// logged); with TLS, rediss://. The URL must name a standalone server or a
// primary endpoint (ElastiCache with cluster mode disabled, Memorystore for
// Redis): Redis Cluster's slot redirections are not followed, and show as an
// outage.
//
// New replaces go-redis's process-wide logger with one that discards: what it
// would print comes back as errors, which this package logs once per outage.
//
// # Locking
//
// Tier.qmu guards the publish queue's accounting and closing, health.mu the
// outage state, Tier.notesMu the rate limit of warnings; counters are
// atomics. No call to the server runs under any of them.
package sharedcache
