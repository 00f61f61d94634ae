package sharedcache

import (
	"sync"
	"time"
)

// health decides when the tier is used: always while it answers; after a
// failure, not at all for RetryAfter, then by one probing call at a time
// until one succeeds.
type health struct {
	retryAfter time.Duration

	mu        sync.Mutex
	downSince time.Time // guarded by mu; zero while the tier is up
	retryAt   time.Time // guarded by mu; when the next probe may run
}

// allow reports whether a call may use the tier at now. While the tier is
// down it admits one call per RetryAfter: the probe.
func (h *health) allow(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.downSince.IsZero() {
		return true
	}
	if now.Before(h.retryAt) {
		return false
	}
	h.retryAt = now.Add(h.retryAfter)
	return true
}

// succeeded records that a call started at start got an answer. It returns
// how long the outage it ends lasted, or 0 if the tier was up, or the call
// started before the outage was detected (its answer says nothing of now).
func (h *health) succeeded(start time.Time) (outage time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.downSince.IsZero() || start.Before(h.downSince) {
		return 0
	}
	outage = time.Since(h.downSince)
	h.downSince = time.Time{}
	return outage
}

// failed records a failure at now and reports whether it begins an outage.
func (h *health) failed(now time.Time) (first bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	first = h.downSince.IsZero()
	if first {
		h.downSince = now
	}
	h.retryAt = now.Add(h.retryAfter)
	return first
}

// up reports whether the tier is considered reachable.
func (h *health) up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.downSince.IsZero()
}
