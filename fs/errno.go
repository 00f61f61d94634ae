package fs

import (
	"context"
	"errors"
	"net/url"
	"os"
	"syscall"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/prefetch"
)

// errNotEmpty is returned by the core when rmdir meets a dataset that still
// has images.
var errNotEmpty = errors.New("dataset has images")

// errReadOnly is returned for every write to the tree.
var errReadOnly = errors.New("read-only filesystem")

// RetryableFetch is the prefetch.Options.Retryable for this filesystem's
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

// toErrno maps an error from the layers below to the errno a FUSE caller
// sees. It is the one place where that mapping lives (design.md, Errors).
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errReadOnly):
		return syscall.EROFS
	case errors.Is(err, errNotEmpty):
		return syscall.ENOTEMPTY
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, client.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return syscall.ETIMEDOUT
	case errors.Is(err, client.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden):
		return syscall.EACCES
	case errors.Is(err, client.ErrConflict), errors.Is(err, os.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, client.ErrPaymentRequired):
		return syscall.EDQUOT
	case errors.Is(err, client.ErrRateLimited), errors.Is(err, client.ErrBudgetExceeded):
		return syscall.EAGAIN
	case errors.Is(err, client.ErrValidation):
		return syscall.EINVAL
	case errors.Is(err, blobcache.ErrNoSpace):
		return syscall.ENOSPC
	case errors.Is(err, client.ErrNetwork), errors.Is(err, client.ErrServer):
		return syscall.EIO
	case errors.As(err, &errno):
		return errno
	default:
		return syscall.EIO
	}
}
