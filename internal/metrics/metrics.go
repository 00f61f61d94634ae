// Package metrics is the Prometheus face of a mount: counters and histograms
// fed by hooks (API requests, FUSE operations, storage bytes) and collectors
// that read the cache's and the prefetcher's own counters at scrape time, plus
// the Go runtime and process collectors for the daemon's memory.
//
// It owns the metric names and labels and the /metrics handler. It must not
// know how the numbers are produced: fs calls a plain func hook, the client
// reports RequestEvents, and blobcache and prefetch are read through their
// Stats. Nothing else in pictofs imports the Prometheus library.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/prefetch"
)

const namespace = "pictofs"

// RequestEvent is one HTTP attempt of the API client, with the fields of
// client.RequestEvent (the same field names and types, so a value of one
// converts to the other).
type RequestEvent struct {
	Route    string // method and path pattern, e.g. "GET /datasets/{dataset}"
	Storage  bool   // a signed storage URL, not the API
	Status   int    // 0 on a transport error
	Attempt  int    // 1 for the first attempt
	Retry    bool   // another attempt follows
	Duration time.Duration
	Err      error
}

// Sources are the live counters read at scrape time. Any may be nil.
type Sources struct {
	Cache      func() blobcache.Stats
	CacheCap   int64
	Prefetch   func() prefetch.Stats
	BudgetLeft func() (left int, limited bool)
}

// Metrics holds one mount's metrics in its own registry. It is safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	apiRequests     *prometheus.CounterVec // route, status
	apiRetries      *prometheus.CounterVec // route
	apiRateLimited  prometheus.Counter
	apiDuration     *prometheus.HistogramVec // route
	storageRequests *prometheus.CounterVec   // status
	storageBytes    prometheus.Counter
	fuseOps         *prometheus.CounterVec   // op, errno
	fuseDuration    *prometheus.HistogramVec // op

	hour hourWindow
}

// New makes the metrics and registers the Go and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "api_requests_total",
		Help: "API request attempts by route and HTTP status (0: no response). Every attempt counts against the plan.",
	}, []string{"route", "status"})
	m.apiRetries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "api_retries_total",
		Help: "API attempts that failed and were retried, by route.",
	}, []string{"route"})
	m.apiRateLimited = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "api_rate_limited_total",
		Help: "API attempts answered 429 Too Many Requests.",
	})
	m.apiDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "api_request_duration_seconds",
		Help:    "Time to the response headers of an API attempt, by route.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
	}, []string{"route"})
	m.storageRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "storage_requests_total",
		Help: "Signed-URL storage request attempts by HTTP status (0: no response).",
	}, []string{"status"})
	m.storageBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "storage_bytes_total",
		Help: "Body bytes received from signed storage URLs.",
	})
	m.fuseOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "fuse_operations_total",
		Help: "FUSE operations answered, by operation and errno (OK for success).",
	}, []string{"op", "errno"})
	m.fuseDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "fuse_operation_duration_seconds",
		Help:    "Time the daemon took to answer a FUSE operation, by operation.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
	}, []string{"op"})
	m.reg.MustRegister(m.apiRequests, m.apiRetries, m.apiRateLimited, m.apiDuration,
		m.storageRequests, m.storageBytes, m.fuseOps, m.fuseDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Watch registers collectors that read src at every scrape. Call it once,
// when the cache and the prefetcher exist.
func (m *Metrics) Watch(src Sources) {
	m.reg.MustRegister(&sourceCollector{src: src})
}

// ObserveRequest counts one API or storage attempt.
func (m *Metrics) ObserveRequest(ev RequestEvent) {
	status := strconv.Itoa(ev.Status)
	if ev.Storage {
		m.storageRequests.WithLabelValues(status).Inc()
		return
	}
	m.apiRequests.WithLabelValues(ev.Route, status).Inc()
	m.apiDuration.WithLabelValues(ev.Route).Observe(ev.Duration.Seconds())
	if ev.Retry {
		m.apiRetries.WithLabelValues(ev.Route).Inc()
	}
	if ev.Status == http.StatusTooManyRequests {
		m.apiRateLimited.Inc()
	}
	m.hour.add(time.Now())
}

// CountStorageBytes adds n body bytes received from storage.
func (m *Metrics) CountStorageBytes(n int) { m.storageBytes.Add(float64(n)) }

// ObserveOp is the fs.Options.ObserveOp hook.
func (m *Metrics) ObserveOp(op string, d time.Duration, errno syscall.Errno) {
	name := "OK"
	if errno != 0 {
		name = errnoName(errno)
	}
	m.fuseOps.WithLabelValues(op, name).Inc()
	m.fuseDuration.WithLabelValues(op).Observe(d.Seconds())
}

// APIRequestsLastHour is the number of API attempts in the last hour.
func (m *Metrics) APIRequestsLastHour() int { return m.hour.count(time.Now()) }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// errnoName is the symbolic name of an errno (ENOENT), or its number.
func errnoName(e syscall.Errno) string {
	if name, ok := errnoNames[e]; ok {
		return name
	}
	return strconv.Itoa(int(e))
}

var errnoNames = map[syscall.Errno]string{
	syscall.ENOENT: "ENOENT", syscall.EIO: "EIO", syscall.EACCES: "EACCES", syscall.EEXIST: "EEXIST",
	syscall.ENOTDIR: "ENOTDIR", syscall.EISDIR: "EISDIR", syscall.EINVAL: "EINVAL", syscall.ENOSPC: "ENOSPC",
	syscall.EROFS: "EROFS", syscall.EAGAIN: "EAGAIN", syscall.EINTR: "EINTR", syscall.ETIMEDOUT: "ETIMEDOUT",
	syscall.ENOTEMPTY: "ENOTEMPTY", syscall.EDQUOT: "EDQUOT", syscall.ENOSYS: "ENOSYS", syscall.ENODATA: "ENODATA",
	syscall.EPERM: "EPERM", syscall.EBADF: "EBADF", syscall.ENOTSUP: "ENOTSUP", syscall.ERANGE: "ERANGE",
}

// sourceCollector turns the cache's and prefetcher's counters into metrics
// at scrape time.
type sourceCollector struct{ src Sources }

var (
	descCacheBytes     = prometheus.NewDesc(namespace+"_cache_bytes", "Bytes of blobs in the disk cache, including blobs being filled.", nil, nil)
	descCacheCap       = prometheus.NewDesc(namespace+"_cache_capacity_bytes", "The cache's cap (--cache-size).", nil, nil)
	descCacheBlobs     = prometheus.NewDesc(namespace+"_cache_blobs", "Blobs in the cache index.", nil, nil)
	descCacheHits      = prometheus.NewDesc(namespace+"_cache_hits_total", "Cache lookups that found a complete blob.", nil, nil)
	descCacheMisses    = prometheus.NewDesc(namespace+"_cache_misses_total", "Cache lookups that did not.", nil, nil)
	descCacheEvictions = prometheus.NewDesc(namespace+"_cache_evictions_total", "Blobs evicted to make room.", nil, nil)
	descCacheFills     = prometheus.NewDesc(namespace+"_cache_fills_total", "Blobs written into the cache.", nil, nil)
	descPFQueued       = prometheus.NewDesc(namespace+"_prefetch_queue_depth", "Readahead requests waiting for a worker.", nil, nil)
	descPFInFlight     = prometheus.NewDesc(namespace+"_prefetch_in_flight", "Fetches running (on demand and readahead).", nil, nil)
	descPFFetched      = prometheus.NewDesc(namespace+"_prefetch_fetched_total", "Fetches that filled the cache.", nil, nil)
	descPFFailed       = prometheus.NewDesc(namespace+"_prefetch_failed_total", "Fetches that failed after their retries.", nil, nil)
	descPFRetries      = prometheus.NewDesc(namespace+"_prefetch_retries_total", "Fetch attempts after a failure.", nil, nil)
	descBudgetLeft     = prometheus.NewDesc(namespace+"_api_budget_left", "API requests left in the client's hourly budget (--requests-per-hour); absent without one.", nil, nil)
)

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCacheBytes, descCacheCap, descCacheBlobs, descCacheHits, descCacheMisses,
		descCacheEvictions, descCacheFills, descPFQueued, descPFInFlight, descPFFetched, descPFFailed, descPFRetries, descBudgetLeft} {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	if c.src.Cache != nil {
		s := c.src.Cache()
		gauge(descCacheBytes, float64(s.Bytes+s.Reserved))
		gauge(descCacheCap, float64(c.src.CacheCap))
		gauge(descCacheBlobs, float64(s.Count))
		counter(descCacheHits, float64(s.Hits))
		counter(descCacheMisses, float64(s.Misses))
		counter(descCacheEvictions, float64(s.Evictions))
		counter(descCacheFills, float64(s.Fills))
	}
	if c.src.Prefetch != nil {
		s := c.src.Prefetch()
		gauge(descPFQueued, float64(s.Queued))
		gauge(descPFInFlight, float64(s.InFlight))
		counter(descPFFetched, float64(s.Fetched))
		counter(descPFFailed, float64(s.Failed))
		counter(descPFRetries, float64(s.Retries))
	}
	if c.src.BudgetLeft != nil {
		if left, limited := c.src.BudgetLeft(); limited {
			gauge(descBudgetLeft, float64(left))
		}
	}
}

// hourWindow counts events over the last hour in one-minute buckets.
type hourWindow struct {
	mu      sync.Mutex // guards buckets and minutes
	buckets [60]int
	minutes [60]int64 // the minute (Unix time / 60) each bucket counts
}

func (w *hourWindow) add(now time.Time) {
	min := now.Unix() / 60
	i := min % 60
	w.mu.Lock()
	if w.minutes[i] != min {
		w.minutes[i], w.buckets[i] = min, 0
	}
	w.buckets[i]++
	w.mu.Unlock()
}

func (w *hourWindow) count(now time.Time) int {
	min := now.Unix() / 60
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for i := range w.buckets {
		if min-w.minutes[i] < 60 {
			n += w.buckets[i]
		}
	}
	return n
}
