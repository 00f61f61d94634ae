package devserver

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Options configures a Server. Zero values take the documented defaults.
type Options struct {
	// DataDir holds the SQLite database, the blob store and the key file.
	// Required (a relative path is taken from the working directory);
	// created with mode 0700.
	DataDir string

	// APIAddr and StorageAddr are the listen addresses of the API and of the
	// signed-URL storage host. Default "127.0.0.1:0" (a free port).
	APIAddr, StorageAddr string

	// URLTTL is the lifetime of signed storage URLs. Default 1h.
	URLTTL time.Duration

	// APILatency is added before every API response; StorageLatency before
	// the first byte of every storage response.
	APILatency, StorageLatency time.Duration

	// StorageBandwidth caps each storage response, in bytes per second.
	// 0 means unlimited.
	StorageBandwidth int64

	// FailRate is the share of API requests answered 503 (0..1).
	// TruncateRate is the share of storage bodies cut short after a full
	// Content-Length header (0..1).
	FailRate, TruncateRate float64

	// RequestsPerHour is the API request budget of each key per RateWindow.
	// Default 100000.
	RequestsPerHour int

	// RateWindow is the length of the budget window. Default 1h; tests may
	// shorten it to get small Retry-After values.
	RateWindow time.Duration

	// AdminKey and MemberKey, when set, are the keys of the first-start
	// organization (and are added to it on later starts if missing).
	// Otherwise random keys "pk_live_" + 32 hex are made on first start.
	AdminKey, MemberKey string

	// Page caps. A request asking for more gets a clamped page with
	// has_more=true. Defaults: DatasetListCap 1000, ImagesLimitCap 10000
	// (include_images), ImageListCap 1000 (/images/), DownloadCap 10000.
	DatasetListCap, ImagesLimitCap, ImageListCap, DownloadCap int

	// ExportDelay is how long an export build takes: pending for its first
	// third, then processing, then completed or failed (a build that takes
	// longer ends when it ends). Default 3s; a negative value means none.
	ExportDelay time.Duration

	// ExportFailRate is the share of export builds that fail, with an
	// error_message (0..1).
	ExportFailRate float64

	// ExportListCap is the page cap of GET /exports/. Default 100.
	ExportListCap int

	// MaxDatasetsPerOrg is the plan's dataset cap; creating one more answers
	// 402 insufficient_credits. 0 means unlimited.
	MaxDatasetsPerOrg int

	// Seed makes generated demo images deterministic. Default 1.
	Seed int64

	// Logger receives one line per request at debug level and lifecycle
	// events at info level. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		return o, errors.New("devserver: Options.DataDir is required")
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return o, fmt.Errorf("devserver: data directory %s: %w", o.DataDir, err)
	}
	o.DataDir = abs
	if o.APIAddr == "" {
		o.APIAddr = "127.0.0.1:0"
	}
	if o.StorageAddr == "" {
		o.StorageAddr = "127.0.0.1:0"
	}
	if o.URLTTL == 0 {
		o.URLTTL = time.Hour
	}
	if o.RequestsPerHour == 0 {
		o.RequestsPerHour = 100000
	}
	if o.RateWindow == 0 {
		o.RateWindow = time.Hour
	}
	if o.DatasetListCap == 0 {
		o.DatasetListCap = 1000
	}
	if o.ImagesLimitCap == 0 {
		o.ImagesLimitCap = 10000
	}
	if o.ImageListCap == 0 {
		o.ImageListCap = 1000
	}
	if o.DownloadCap == 0 {
		o.DownloadCap = 10000
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.ExportDelay == 0 {
		o.ExportDelay = 3 * time.Second
	}
	if o.ExportListCap == 0 {
		o.ExportListCap = 100
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	f := Faults{
		APILatency: o.APILatency, StorageLatency: o.StorageLatency,
		StorageBandwidth: o.StorageBandwidth, FailRate: o.FailRate,
		TruncateRate: o.TruncateRate, URLTTL: o.URLTTL, ExportFailRate: o.ExportFailRate,
	}
	if err := f.validate(); err != nil {
		return o, err
	}
	switch {
	case o.URLTTL < 0:
		return o, errors.New("devserver: URLTTL must not be negative")
	case o.RequestsPerHour < 0:
		return o, errors.New("devserver: RequestsPerHour must not be negative")
	case o.RateWindow < 0:
		return o, errors.New("devserver: RateWindow must not be negative")
	case o.DatasetListCap < 0 || o.ImagesLimitCap < 0 || o.ImageListCap < 0 || o.DownloadCap < 0 || o.ExportListCap < 0:
		return o, errors.New("devserver: page caps must not be negative")
	case o.MaxDatasetsPerOrg < 0:
		return o, errors.New("devserver: MaxDatasetsPerOrg must not be negative")
	}
	return o, nil
}

// Faults is the fault injection in force; SetFaults replaces it at runtime.
type Faults struct {
	APILatency     time.Duration // before every API response
	StorageLatency time.Duration // before the first byte of every storage response
	// StorageBandwidth is bytes/s per storage response; 0 = unlimited.
	StorageBandwidth int64
	FailRate         float64 // share of API requests answered 503
	TruncateRate     float64 // share of storage bodies cut short
	// URLTTL is the lifetime of signed URLs issued from now on. 0 means
	// Options.URLTTL; a negative value issues URLs that are already expired.
	URLTTL time.Duration
	// StorageStall holds every storage response this long before its
	// headers (on top of StorageLatency), or until the client goes away.
	StorageStall time.Duration
	// ExportDelay is the build time of exports created from now on. 0
	// means Options.ExportDelay; a negative value means none.
	ExportDelay time.Duration
	// ExportFailRate is the share of export builds that fail (0..1),
	// decided when an export is created.
	ExportFailRate float64
}

// Validate reports the first invalid field, for flag checking.
func (f Faults) Validate() error { return f.validate() }

func (f Faults) validate() error {
	switch {
	case f.APILatency < 0 || f.StorageLatency < 0 || f.StorageStall < 0:
		return errors.New("devserver: latencies must not be negative")
	case f.StorageBandwidth < 0:
		return errors.New("devserver: StorageBandwidth must not be negative")
	case f.FailRate < 0 || f.FailRate > 1:
		return fmt.Errorf("devserver: FailRate %v is not within [0, 1]", f.FailRate)
	case f.TruncateRate < 0 || f.TruncateRate > 1:
		return fmt.Errorf("devserver: TruncateRate %v is not within [0, 1]", f.TruncateRate)
	case f.ExportFailRate < 0 || f.ExportFailRate > 1:
		return fmt.Errorf("devserver: ExportFailRate %v is not within [0, 1]", f.ExportFailRate)
	}
	return nil
}

// Stats are counters since start or the last ResetStats.
type Stats struct {
	APIRequests       int64 // every request that reached the API listener
	StorageGets       int64 // GET and HEAD requests on the storage listener
	StorageBytes      int64 // body bytes sent by the storage listener
	DownloadListings  int64 // GET /datasets/{d}/download answered 200
	AnnotationFiles   int64 // GET /annotations/{id}/file answered 200
	ImageByteRequests int64 // GET /images/{dataset}/{path} (authenticated bytes)
	Injected503       int64 // API requests failed by FailRate
	Truncated         int64 // storage bodies cut short by TruncateRate
	Status429         int64 // API requests refused by the hourly budget
	StorageSawAPIKey  int64 // storage requests that carried X-API-Key (must stay 0)
	ExportRequests    int64 // API requests to the /exports routes (creates, polls, links, lists, deletes)
	ExportBuilds      int64 // export builds completed
	ExportDownloads   int64 // export ZIPs served by the storage listener (Range requests included)
}

// counters are the live, atomic counterparts of Stats.
type counters struct {
	apiRequests, storageGets, storageBytes, downloadListings, annotationFiles,
	imageByteRequests, injected503, truncated, status429, storageSawAPIKey,
	exportRequests, exportBuilds, exportDownloads atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		APIRequests: c.apiRequests.Load(), StorageGets: c.storageGets.Load(),
		StorageBytes: c.storageBytes.Load(), DownloadListings: c.downloadListings.Load(),
		AnnotationFiles: c.annotationFiles.Load(), ImageByteRequests: c.imageByteRequests.Load(),
		Injected503: c.injected503.Load(), Truncated: c.truncated.Load(),
		Status429: c.status429.Load(), StorageSawAPIKey: c.storageSawAPIKey.Load(),
		ExportRequests: c.exportRequests.Load(), ExportBuilds: c.exportBuilds.Load(),
		ExportDownloads: c.exportDownloads.Load(),
	}
}

func (c *counters) reset() {
	for _, v := range []*atomic.Int64{&c.apiRequests, &c.storageGets, &c.storageBytes,
		&c.downloadListings, &c.annotationFiles, &c.imageByteRequests, &c.injected503,
		&c.truncated, &c.status429, &c.storageSawAPIKey, &c.exportRequests, &c.exportBuilds, &c.exportDownloads} {
		v.Store(0)
	}
}
