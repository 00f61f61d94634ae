package fs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/client"
)

func TestToErrno(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("op: %w", err) }
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"404", &client.APIError{Status: 404}, syscall.ENOENT},
		{"401", &client.APIError{Status: 401}, syscall.EACCES},
		{"403", &client.APIError{Status: 403}, syscall.EACCES},
		{"409", &client.APIError{Status: 409}, syscall.EEXIST},
		{"402", &client.APIError{Status: 402}, syscall.EDQUOT},
		{"429 after retries", wrap(&client.APIError{Status: 429}), syscall.EAGAIN},
		{"budget", wrap(client.ErrBudgetExceeded), syscall.EAGAIN},
		{"500", &client.APIError{Status: 500}, syscall.EIO},
		{"503 wrapped", wrap(&client.APIError{Status: 503}), syscall.EIO},
		{"timeout", wrap(client.ErrTimeout), syscall.ETIMEDOUT},
		{"deadline", wrap(context.DeadlineExceeded), syscall.ETIMEDOUT},
		{"wait ran out under a rate limit", fmt.Errorf("list: %w (after %w)", client.ErrRateLimited, context.DeadlineExceeded), syscall.EAGAIN},
		{"cancelled", wrap(context.Canceled), syscall.EINTR},
		{"read-only", errReadOnly, syscall.EROFS},
		{"catalog takes no writes", wrap(catalog.ErrReadOnly), syscall.EROFS},
		{"delete not allowed", wrap(catalog.ErrDeleteNotAllowed), syscall.EPERM},
		{"no route for the change", wrap(catalog.ErrNotPermitted), syscall.EPERM},
		{"unknown extension", wrap(catalog.ErrUnsupportedType), syscall.EINVAL},
		{"empty image", wrap(catalog.ErrEmptyFile), syscall.EINVAL},
		{"invalid document", wrap(catalog.ErrInvalidDocument), syscall.EINVAL},
		{"name the API would change", wrap(catalog.ErrBadName), syscall.EINVAL},
		{"too large", wrap(catalog.ErrTooLarge), syscall.EFBIG},
		{"folder not empty", wrap(catalog.ErrDirNotEmpty), syscall.ENOTEMPTY},
		{"between datasets", wrap(catalog.ErrCrossDataset), syscall.EXDEV},
		{"duplicate upload", wrap(&client.APIError{Status: 400, Message: "image \"a.png\" already exists"}), syscall.EEXIST},
		{"not empty", wrap(catalog.ErrNotEmpty), syscall.ENOTEMPTY},
		{"errno passes", wrap(syscall.ENAMETOOLONG), syscall.ENAMETOOLONG},
		{"network", wrap(client.ErrNetwork), syscall.EIO},
		{"unknown", errors.New("boom"), syscall.EIO},
	}
	for _, tt := range tests {
		if got := toErrno(tt.err); got != tt.want {
			t.Errorf("%s: toErrno(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
