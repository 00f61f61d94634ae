package catalog

import (
	"errors"
	"net/url"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/prefetch"
)

// ErrNotEmpty is returned when rmdir meets a dataset that still holds
// images, archived or not.
var ErrNotEmpty = errors.New("dataset has images")

// RetryableFetch is the prefetch.Options.Retryable for the catalog's
// fetches. The client has already retried every request by its own policy,
// so the fetch as a whole is tried again only for what that policy leaves
// to its caller:
//
//   - a body cut short, stalled or unreadable where the client does not
//     resume it, a blob shorter than listed, and a failed resume of a
//     signed-URL body (the client leaves starting over to its caller);
//   - a server error (5xx) that outlasted the client's retries: the server
//     answers, and a storm of them passes (at a 30% 503 rate, one fetch in
//     120 sees four 503s in a row).
//
// It is not tried again for:
//
//   - what prefetch never retries (cancellation, a full cache, a blob
//     longer than listed);
//   - answers another attempt cannot change: 404, 401, 403, 400, 409, 402,
//     429 after retries, a spent request budget;
//   - a request that got no answer in any of the client's attempts
//     (connection refused or reset, host unreachable: the client keeps the
//     last attempt's *url.Error in the chain): the server is down, and
//     another round of the client's backoff (about 7 s) would only hold
//     the reader. So a dead server surfaces as EIO after one round.
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
	var unanswered *url.Error
	return !errors.As(err, &unanswered)
}
