package client

import "time"

// RateLimitedUntil is the time until which a 429's Retry-After holds this
// client's API requests back (zero, or in the past, when it does not), so
// that a caller whose wait ran out can tell a rate limit from a slow server.
func (c *Client) RateLimitedUntil() time.Time { return c.gate.closedUntil() }
