// Package testenv holds the scaffolding that the tests of pictofs share:
// an in-process devserver in a temporary directory and the real client for
// it, what the server holds for a dataset, and a mount built as `pictofs
// mount` builds one (client → blobcache → prefetch → catalog → fs), or
// everything of it but FUSE.
//
// It imports devserver, client, blobcache, prefetch, catalog and fs, so the
// tests inside those packages (package devserver, package catalog…) cannot
// import it. What they share too, and what needs nothing of pictofs (the
// rule that lets a test skip, a quiet logger, a log buffer, waits with a
// deadline, ZIP members), is in the sub-package testkit, which they can; the
// golden documents of the contract are read by the sub-package golden. What
// a single package's tests need stays in that package.
package testenv
