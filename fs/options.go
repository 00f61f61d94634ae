package fs

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/prefetch"
)

// API is the narrow part of *client.Client that the filesystem uses.
type API interface {
	AllDatasets(ctx context.Context) ([]client.Dataset, error)
	GetDataset(ctx context.Context, nameOrID string) (*client.Dataset, error)
	EachDatasetImage(ctx context.Context, nameOrID string, pageSize int, fn func(page []client.Image) error) (*client.Dataset, error)
	CreateDataset(ctx context.Context, req client.CreateDatasetRequest) (*client.Dataset, error)
	UpdateDataset(ctx context.Context, nameOrID string, req client.UpdateDatasetRequest) (*client.Dataset, error)
	DeleteDataset(ctx context.Context, nameOrID string) (*client.DeleteResult, error)
	DownloadListing(ctx context.Context, nameOrID string, opts client.DownloadOptions) (*client.DownloadListing, error)
	OpenSigned(ctx context.Context, signedURL string, offset, length int64) (io.ReadCloser, int64, error)
	OpenImage(ctx context.Context, dataset, directoryPath, filename string, offset, length int64) (io.ReadCloser, int64, error)
	AnnotationFile(ctx context.Context, imageID string) ([]byte, error)
}

// Options configures a mount. API, Cache and Prefetcher are required.
type Options struct {
	API        API
	Cache      *blobcache.Cache
	Prefetcher *prefetch.Prefetcher

	// Namespace is folded into every cache key: the API host and the
	// organization id, so two accounts sharing a cache never share blobs.
	Namespace string

	// StatusFilter, if set, shows only images with that status.
	StatusFilter string

	// ListTTL is how long dataset and image listings are trusted before
	// the next access lists again; it is also the kernel entry and attribute
	// timeout of directories. Default 5 minutes.
	ListTTL time.Duration
	// AnnotationTTL is how long a fetched annotation document is served
	// before it is fetched again. Default 10 minutes.
	AnnotationTTL time.Duration
	// ImageTTL is the kernel entry and attribute timeout of image files,
	// whose bytes are immutable per (id, size). Default 24 hours.
	ImageTTL time.Duration
	// NegativeTTL is how long the kernel remembers that a name does not
	// exist. Default 5 seconds.
	NegativeTTL time.Duration
	// URLMaxAge is the age at which the signed URLs of a download listing
	// are refreshed before use. Default 30 minutes; a 403 from storage
	// refreshes them at once whatever their age.
	URLMaxAge time.Duration
	// OpenTimeout bounds how long an open waits for an uncached blob before
	// it fails with ETIMEDOUT. Default 2 minutes.
	OpenTimeout time.Duration

	// UID and GID own every entry. Default: the mounting process's.
	UID, GID uint32
	// ReadOnly mounts read-only: the kernel refuses every write (mkdir,
	// rmdir and rename of datasets too) with EROFS.
	ReadOnly bool
	// AllowOther lets other users see the mount (needs user_allow_other
	// for non-root users).
	AllowOther bool
	// Passthrough serves complete cached blobs through FUSE passthrough
	// when the kernel and privileges allow it. Default true; set
	// DisablePassthrough to turn it off.
	DisablePassthrough bool
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

func (o *Options) setDefaults() {
	if o.ListTTL <= 0 {
		o.ListTTL = 5 * time.Minute
	}
	if o.AnnotationTTL <= 0 {
		o.AnnotationTTL = 10 * time.Minute
	}
	if o.ImageTTL <= 0 {
		o.ImageTTL = 24 * time.Hour
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 5 * time.Second
	}
	if o.URLMaxAge <= 0 {
		o.URLMaxAge = 30 * time.Minute
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = 2 * time.Minute
	}
	if o.FSName == "" {
		o.FSName = "pictofs"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}
