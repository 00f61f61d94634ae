package fs

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
)

// errReadOnly is returned for every write to the tree.
var errReadOnly = errors.New("read-only filesystem")

// toErrno maps an error from the layers below to the errno a FUSE caller
// sees. It is the one place where that mapping lives (docs/design.md, Errors).
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errReadOnly), errors.Is(err, catalog.ErrReadOnly):
		return syscall.EROFS
	case errors.Is(err, catalog.ErrNotEmpty), errors.Is(err, catalog.ErrDirNotEmpty):
		return syscall.ENOTEMPTY
	case errors.Is(err, catalog.ErrDeleteNotAllowed), errors.Is(err, catalog.ErrNotPermitted):
		return syscall.EPERM
	case errors.Is(err, catalog.ErrUnsupportedType), errors.Is(err, catalog.ErrEmptyFile),
		errors.Is(err, catalog.ErrInvalidDocument), errors.Is(err, catalog.ErrBadName):
		return syscall.EINVAL
	case errors.Is(err, catalog.ErrTooLarge):
		return syscall.EFBIG
	case errors.Is(err, catalog.ErrCrossDataset):
		return syscall.EXDEV
	case errors.Is(err, client.ErrRateLimited), errors.Is(err, client.ErrBudgetExceeded):
		return syscall.EAGAIN
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
