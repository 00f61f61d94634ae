package catalog

import (
	"errors"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/prefetch"
)

// ErrNotEmpty is returned when rmdir meets a dataset that still holds
// images, archived or not.
var ErrNotEmpty = errors.New("dataset has images")

// RetryableFetch is the prefetch.Options.Retryable for the catalog's
// fetches: what prefetch retries by default, except API answers that another
// attempt cannot change (the client already retried the transient ones).
func RetryableFetch(err error) bool {
	if !prefetch.DefaultRetryable(err) {
		return false
	}
	for _, final := range []error{client.ErrNotFound, client.ErrUnauthorized, client.ErrForbidden,
		client.ErrValidation, client.ErrConflict, client.ErrPaymentRequired, client.ErrRateLimited, client.ErrBudgetExceeded} {
		if errors.Is(err, final) {
			return false
		}
	}
	return true
}
