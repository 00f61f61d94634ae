package fs

import (
	"errors"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/pictofs/pictofs/catalog"
)

// Options configures a mount. Catalog is required; the zero value of every
// other field is its documented default.
type Options struct {
	// Catalog is what the mount shows.
	Catalog *catalog.Catalog

	// ImageTTL is the kernel entry and attribute timeout of image files,
	// whose bytes are immutable per (id, size). Default 24 hours.
	// Directories use the catalog's ListTTL and annotation documents its
	// AnnotationTTL.
	ImageTTL time.Duration
	// NegativeTTL is how long the kernel remembers that a name does not
	// exist. Default 5 seconds.
	NegativeTTL time.Duration

	// UID and GID own every entry. Default: the mounting process's.
	UID, GID uint32
	// AllowOther lets other users see the mount (needs user_allow_other
	// for non-root users).
	AllowOther bool
	// DisablePassthrough turns off FUSE passthrough, which otherwise serves
	// complete cached blobs from the kernel where it and the privileges
	// allow it.
	DisablePassthrough bool
	// ReadOnly mounts read-only: the kernel refuses every change (mkdir,
	// rmdir and rename of datasets too) with EROFS before it reaches the
	// mount. Otherwise the mount takes the writes its catalog takes
	// (catalog.WriteOptions) and refuses the rest with a precise errno.
	ReadOnly bool
	// DebugFUSE logs every FUSE request.
	DebugFUSE bool
	// FSName is shown as the mount's source in /proc/mounts. Default
	// "pictofs".
	FSName string

	Logger *slog.Logger

	// ObserveOp, if set, is called after every FUSE operation with its
	// name ("lookup", "getattr", "open", "read", "readdirplus", …), the
	// time its handler took and the errno it answered (0 for success). It
	// runs on the request's goroutine, outside any lock: keep it cheap.
	ObserveOp func(op string, d time.Duration, errno syscall.Errno)
}

func (o *Options) validate() error {
	if o.Catalog == nil {
		return errors.New("fs: Options.Catalog is required")
	}
	if o.ImageTTL < 0 || o.NegativeTTL < 0 {
		return errors.New("fs: timeouts must not be negative")
	}
	return nil
}

func (o *Options) setDefaults() {
	if o.ImageTTL == 0 {
		o.ImageTTL = 24 * time.Hour
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = 5 * time.Second
	}
	if o.UID == 0 && o.GID == 0 {
		o.UID, o.GID = uint32(os.Getuid()), uint32(os.Getgid())
	}
	if o.FSName == "" {
		o.FSName = "pictofs"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}
