// Package contract holds the contract tests of docs/pictograph-api.md: the real
// client package against the real devserver over HTTP. It has no code of its
// own; see the _test.go files.
package contract
