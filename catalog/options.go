package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/prefetch"
	"github.com/pictofs/pictofs/sharedcache"
)

// API is the narrow part of *client.Client that the catalog uses.
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

	CreateExport(ctx context.Context, req client.CreateExportRequest) (*client.Export, error)
	GetExport(ctx context.Context, dataset, nameOrID string) (*client.Export, error)
	ExportDownloadURL(ctx context.Context, dataset, nameOrID string) (string, error)
	OpenExport(ctx context.Context, link string, offset, length int64) (io.ReadCloser, int64, error)
	DeleteExport(ctx context.Context, dataset, nameOrID string) error
}

// budgeter is implemented by an API that keeps a client-side request budget
// (*client.Client does): the catalog spends speculative requests only while
// the budget has room.
type budgeter interface {
	BudgetLeft() (left int, limited bool)
}

// throttler is implemented by an API that can tell whether a 429 holds its
// requests back (*client.Client does), so that a wait that runs out then is
// reported as a rate limit (EAGAIN), not a timeout.
type throttler interface {
	RateLimitedUntil() time.Time
}

// Defaults of Options.
const (
	DefaultListTTL       = 5 * time.Minute
	DefaultAnnotationTTL = 10 * time.Minute
	DefaultURLMaxAge     = 30 * time.Minute
	DefaultWaitTimeout   = 30 * time.Second
	DefaultFetchTimeout  = 2 * time.Minute
)

// Options configures a Catalog. API, Cache and Prefetcher are required; the
// zero value of every other field is its documented default.
type Options struct {
	API        API
	Cache      *blobcache.Cache
	Prefetcher *prefetch.Prefetcher

	// Namespace is folded into every cache key: the API host and the
	// organization id, so two accounts sharing a cache never share blobs.
	Namespace string

	// StatusFilter, if set, shows only images with that status (new,
	// annotate, review, complete).
	StatusFilter string

	// ListTTL is how long dataset and image listings are trusted before
	// the next access lists again. Default 5 minutes.
	ListTTL time.Duration
	// AnnotationTTL is how long an annotation document, per image or from
	// a bulk export, is served before it is fetched again. Default 10
	// minutes.
	AnnotationTTL time.Duration
	// URLMaxAge is the age at which the signed URLs of a download listing
	// are refreshed before use. Default 30 minutes; a 403 from storage
	// refreshes them at once whatever their age.
	URLMaxAge time.Duration
	// WaitTimeout bounds how long a listing, a stat or an open waits on the
	// API (rate limits, retries, a slow server) before it fails with
	// ETIMEDOUT or EAGAIN; the work goes on in the background, so a retry
	// can find it done. Default 30 seconds.
	WaitTimeout time.Duration
	// FetchTimeout bounds how long an open waits for the bytes of an
	// uncached image from storage. Default 2 minutes.
	FetchTimeout time.Duration

	// SharedCache, if set, is a cache tier shared with the mounts of other
	// machines (a Redis server): blobs, listings and export snapshots are
	// looked up there before the API and storage, and published there.
	SharedCache *sharedcache.Tier

	// Bulk configures annotations from exports. Bulk.Disable turns them
	// off, so every document costs one request.
	Bulk BulkOptions

	// Writes configures writes through the mount. The zero value takes
	// none.
	Writes WriteOptions

	Logger *slog.Logger
}

// BulkOptions configures the bulk annotation snapshot: one annotations-only
// export per dataset in use, serving every document it covers.
type BulkOptions struct {
	// Disable turns bulk annotations off.
	Disable bool
	// MountID makes export names unique per mount. Default: random.
	MountID string
	// PollInterval is the longest wait between polls of a building
	// export; polls start at a second and double up to it. Default 5 s
	// (every poll is an API request).
	PollInterval time.Duration
	// BuildTimeout is how long an export may build before the mount gives
	// up on it (until the next AnnotationTTL). Default 10 minutes.
	BuildTimeout time.Duration
	// Wait is how long a document read waits for an export that is
	// building before it uses the per-image route. Default 5 s; negative
	// means no wait.
	Wait time.Duration
	// LowBudget is the number of requests left in the client's hourly
	// budget below which a document read waits (up to WaitTimeout) for an
	// export that is building rather than spend a request. Default 50.
	LowBudget int
}

// Statuses are the contract's image statuses: the values StatusFilter takes.
var Statuses = []string{"new", "annotate", "review", "complete"}

// Validate checks the values of o (not API, Cache and Prefetcher, which New
// needs). Each error names the field in words and the value.
func (o Options) Validate() error {
	if o.StatusFilter != "" && !slices.Contains(Statuses, o.StatusFilter) {
		return fmt.Errorf("status %q: want one of %s", o.StatusFilter, strings.Join(Statuses, ", "))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"list TTL", o.ListTTL}, {"annotation TTL", o.AnnotationTTL}, {"URL max age", o.URLMaxAge},
		{"wait timeout", o.WaitTimeout}, {"fetch timeout", o.FetchTimeout},
		{"export poll interval", o.Bulk.PollInterval}, {"export build timeout", o.Bulk.BuildTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%s %v: must not be negative", d.name, d.v)
		}
	}
	if o.Bulk.LowBudget < 0 {
		return fmt.Errorf("low budget %d: must not be negative", o.Bulk.LowBudget)
	}
	return o.Writes.validate()
}

func (o *Options) validate() error {
	switch {
	case o.API == nil:
		return errors.New("catalog: Options.API is required")
	case o.Cache == nil:
		return errors.New("catalog: Options.Cache is required")
	case o.Prefetcher == nil:
		return errors.New("catalog: Options.Prefetcher is required")
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	return nil
}

func (o *Options) setDefaults() {
	setDuration := func(p *time.Duration, def time.Duration) {
		if *p == 0 {
			*p = def
		}
	}
	setDuration(&o.ListTTL, DefaultListTTL)
	setDuration(&o.AnnotationTTL, DefaultAnnotationTTL)
	setDuration(&o.URLMaxAge, DefaultURLMaxAge)
	setDuration(&o.WaitTimeout, DefaultWaitTimeout)
	setDuration(&o.FetchTimeout, DefaultFetchTimeout)
	setDuration(&o.Bulk.PollInterval, 5*time.Second)
	setDuration(&o.Bulk.BuildTimeout, 10*time.Minute)
	setDuration(&o.Bulk.Wait, 5*time.Second)
	if o.Bulk.LowBudget == 0 {
		o.Bulk.LowBudget = 50
	}
	if o.Bulk.MountID == "" {
		o.Bulk.MountID = randomID()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Writes.setDefaults()
}
