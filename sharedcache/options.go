package sharedcache

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	// DefaultMaxBlobBytes: typical training images (JPEG and PNG camera
	// frames, 50 KB to a few MB) fit, while one value still crosses a 1 Gbit/s
	// link in about 70 ms, well inside DefaultOpTimeout. Larger values would
	// make the read bound too tight on such links, hold Redis's single thread
	// longer per command, and let a few huge values push many small ones out
	// of an LRU-bounded server.
	DefaultMaxBlobBytes int64 = 8 << 20
	// DefaultMaxMetaBytes bounds a metadata snapshot (a dataset listing or an
	// annotation export): about 100k images of listing without signed URLs.
	DefaultMaxMetaBytes int64 = 32 << 20
	// DefaultOpTimeout bounds a blob read, a lease call and a probe: a Redis
	// GET on a LAN costs well under a millisecond plus the transfer, while a
	// fetch from Pictograph's storage costs tens to hundreds of milliseconds,
	// so a tier slower than this is no longer worth waiting for.
	DefaultOpTimeout = 250 * time.Millisecond
	// DefaultMetaTimeout bounds a metadata read, which may be tens of MB and
	// replaces a listing from the API that takes seconds.
	DefaultMetaTimeout = 2 * time.Second
	// DefaultPublishTimeout bounds one background write.
	DefaultPublishTimeout = 10 * time.Second
	// DefaultRetryAfter: after a failure the tier is skipped this long, so an
	// outage costs one bounded probe per interval instead of one per read.
	DefaultRetryAfter = 10 * time.Second
	// DefaultQueueLen and DefaultQueueBytes bound the background publish
	// queue; a publish that does not fit is dropped and counted.
	DefaultQueueLen         = 1024
	DefaultQueueBytes int64 = 64 << 20
	// DefaultPublishWorkers is the number of goroutines writing to the tier.
	DefaultPublishWorkers = 4
	// DefaultReadBytes bounds the values being read at once: a mount's 64
	// prefetch workers asking for 8 MiB blobs together would otherwise hold
	// half a GiB, and share the link so thinly that every read overran
	// OpTimeout. 32 MiB crosses a 10 Gbit/s link in about 30 ms.
	DefaultReadBytes int64 = 32 << 20
)

// poolSize is the number of connections to the server: enough for every
// prefetch worker and reader of a mount to have one without waiting.
const poolSize = 64

// Options configures a Tier. The zero value of each field means its default;
// URL and Namespace are required. Options is safe to print: String, GoString
// and LogValue redact the password.
type Options struct {
	// URL is redis://[user:password@]HOST:PORT/DB, or rediss:// for TLS. No
	// query parameters: timeouts and limits come from this struct.
	URL string
	// Password authenticates when the URL carries none (the CLI fills it
	// from PICTOFS_SHARED_CACHE_PASSWORD). Setting both is an error.
	Password string
	// TLSConfig, for rediss:// only, replaces the default TLS configuration
	// (system roots, TLS 1.2 or later, server name from the URL), e.g. to
	// trust a private CA. It is cloned; an empty ServerName is filled in.
	TLSConfig *tls.Config
	// Namespace identifies the account the tier's entries belong to: the
	// API host and the organization id (required). Every Redis key carries
	// its SHA-256, never the namespace itself, so two organizations sharing
	// one server never see each other's entries and key names leak nothing.
	Namespace string
	// MaxBlobBytes: larger blobs are never published, and a Get of a larger
	// size is a miss without a round trip. Default 8 MiB.
	MaxBlobBytes int64
	// MaxMetaBytes: larger metadata snapshots are never published. Default
	// 32 MiB.
	MaxMetaBytes int64
	// BlobTTL, when positive, expires published blobs after this long.
	// Default: no expiry; the server's maxmemory-policy allkeys-lru bounds
	// the tier.
	BlobTTL time.Duration
	// OpTimeout bounds Get, Lease, Extend, Release and Ping. Default 250 ms.
	OpTimeout time.Duration
	// MetaTimeout bounds GetMeta. Default 2 s.
	MetaTimeout time.Duration
	// PublishTimeout bounds one background write. Default 10 s.
	PublishTimeout time.Duration
	// RetryAfter: after a failure the tier is skipped this long, then tried
	// again. Default 10 s.
	RetryAfter time.Duration
	// QueueLen and QueueBytes bound the publishes waiting to be written.
	// Defaults 1024 and 64 MiB; QueueBytes must hold MaxBlobBytes and
	// MaxMetaBytes.
	QueueLen   int
	QueueBytes int64
	// PublishWorkers is the number of background writers. Default 4.
	PublishWorkers int
	// ReadBytes bounds the bytes of the values being read at once (the
	// expected size of each Get, MaxBlobBytes when unknown; a GetMeta takes
	// all of it); a read waits for room within its time bound, and is a
	// miss if there is none. The memory held is at most about twice this.
	// Default 32 MiB; it must hold MaxBlobBytes. OpTimeout should cover
	// reading this much over the link.
	ReadBytes int64
	// Logger receives one warning per outage and debug events. Default
	// slog.Default().
	Logger *slog.Logger
}

// withDefaults returns o with every zero field set to its default, or an
// error naming the first invalid field. The error never holds the password.
func (o Options) withDefaults() (Options, error) {
	if o.URL == "" {
		return o, errors.New("sharedcache: no URL")
	}
	if o.Namespace == "" {
		return o, errors.New("sharedcache: no namespace")
	}
	defaultInt64(&o.MaxBlobBytes, DefaultMaxBlobBytes)
	defaultInt64(&o.MaxMetaBytes, DefaultMaxMetaBytes)
	defaultInt64(&o.QueueBytes, DefaultQueueBytes)
	defaultInt64(&o.ReadBytes, DefaultReadBytes)
	defaultDuration(&o.OpTimeout, DefaultOpTimeout)
	defaultDuration(&o.MetaTimeout, DefaultMetaTimeout)
	defaultDuration(&o.PublishTimeout, DefaultPublishTimeout)
	defaultDuration(&o.RetryAfter, DefaultRetryAfter)
	if o.QueueLen == 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.PublishWorkers == 0 {
		o.PublishWorkers = DefaultPublishWorkers
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.MaxBlobBytes < 0, o.MaxMetaBytes < 0, o.QueueBytes < 0, o.ReadBytes < 0, o.QueueLen < 0,
		o.PublishWorkers < 0:
		return o, errors.New("sharedcache: negative size, count or worker number")
	case o.BlobTTL < 0, o.OpTimeout < 0, o.MetaTimeout < 0, o.PublishTimeout < 0, o.RetryAfter < 0:
		return o, errors.New("sharedcache: negative duration")
	case o.BlobTTL > 0 && o.BlobTTL < time.Millisecond:
		return o, errors.New("sharedcache: BlobTTL under 1ms")
	case o.QueueBytes < o.MaxBlobBytes || o.QueueBytes < o.MaxMetaBytes:
		return o, fmt.Errorf("sharedcache: QueueBytes %d cannot hold MaxBlobBytes %d and MaxMetaBytes %d",
			o.QueueBytes, o.MaxBlobBytes, o.MaxMetaBytes)
	case o.ReadBytes < o.MaxBlobBytes+headerLen:
		return o, fmt.Errorf("sharedcache: ReadBytes %d cannot hold MaxBlobBytes %d", o.ReadBytes, o.MaxBlobBytes)
	}
	return o, nil
}

func defaultInt64(v *int64, d int64) {
	if *v == 0 {
		*v = d
	}
}

func defaultDuration(v *time.Duration, d time.Duration) {
	if *v == 0 {
		*v = d
	}
}

// redisOptions turns the URL into go-redis options. Its errors are one line
// and name the URL only redacted.
func (o Options) redisOptions() (*redis.Options, error) {
	bad := func(why string) error {
		return fmt.Errorf("sharedcache: invalid URL %q: %s (want redis://[user:password@]HOST:PORT/DB or rediss://…)",
			redactURL(o.URL), why)
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		// url.Error quotes the whole URL, password included: keep only the reason.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, bad(o.scrub(err.Error()))
	}
	switch {
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return nil, bad("scheme must be redis or rediss")
	case u.Hostname() == "":
		return nil, bad("no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, bad("query parameters and fragments are not supported")
	case o.TLSConfig != nil && u.Scheme != "rediss":
		return nil, bad("TLSConfig is set but the scheme is not rediss")
	}
	if _, set := u.User.Password(); set && o.Password != "" {
		return nil, bad("password given both in the URL and in Options.Password")
	}
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, bad(o.scrub(err.Error()))
	}
	if o.Password != "" {
		ro.Password = o.Password
	}
	if o.TLSConfig != nil {
		ro.TLSConfig = o.TLSConfig.Clone()
		if ro.TLSConfig.ServerName == "" {
			ro.TLSConfig.ServerName = u.Hostname()
		}
	}
	longest := max(o.OpTimeout, o.MetaTimeout, o.PublishTimeout)
	ro.ContextTimeoutEnabled = true // every call carries a deadline; go-redis honours it
	ro.DialTimeout = longest
	ro.ReadTimeout = longest
	ro.WriteTimeout = longest
	ro.PoolTimeout = longest
	ro.PoolSize = poolSize
	ro.MaxRetries = -1   // a failed call is a miss; the tier is retried after RetryAfter
	ro.DialerRetries = 1 // one dial per call: a refused connection fails at once
	ro.Protocol = 2      // RESP2: no HELLO round trip, any Redis-protocol server
	ro.DisableIdentity = true
	return ro, nil
}

// Redacted returns the URL with the password in its user info replaced by
// "xxxxx". It works on URLs that do not parse.
func (o Options) Redacted() string { return redactURL(o.URL) }

// String describes the options without the password.
func (o Options) String() string {
	return fmt.Sprintf("sharedcache.Options{URL: %s, Password: %s, Namespace: sha256:%s, MaxBlobBytes: %d, "+
		"MaxMetaBytes: %d, BlobTTL: %s, OpTimeout: %s, MetaTimeout: %s, PublishTimeout: %s, RetryAfter: %s, "+
		"QueueLen: %d, QueueBytes: %d, PublishWorkers: %d, ReadBytes: %d}",
		o.Redacted(), redactedIfSet(o.Password), namespaceHash(o.Namespace), o.MaxBlobBytes, o.MaxMetaBytes,
		o.BlobTTL, o.OpTimeout, o.MetaTimeout, o.PublishTimeout, o.RetryAfter, o.QueueLen, o.QueueBytes,
		o.PublishWorkers, o.ReadBytes)
}

// GoString is String, so that %#v redacts too.
func (o Options) GoString() string { return o.String() }

// LogValue makes slog print the redacted form.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

func redactedIfSet(s string) string {
	if s == "" {
		return `""`
	}
	return "xxxxx"
}

// redactURL replaces the password of raw's user info with "xxxxx". The user
// info is everything between "://" and the last "@", so a password holding
// '/', '?', '#' or '@' is redacted whole even where url.Parse fails.
func redactURL(raw string) string {
	scheme, rest, found := strings.Cut(raw, "://")
	if !found {
		scheme, rest = "", raw
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if hasPassword {
		user += ":xxxxx"
	}
	if found {
		return scheme + "://" + user + rest[at:]
	}
	return user + rest[at:]
}

// minScrubLen: shorter passwords are not searched for in messages (doing so
// would mangle them); go-redis's messages never hold the password anyway,
// this is a second line of defence.
const minScrubLen = 4

// secrets returns the passwords o holds, and their URL-escaped forms.
func (o Options) secrets() []string {
	var out []string
	add := func(p string) {
		if len(p) < minScrubLen {
			return
		}
		out = append(out, p, url.QueryEscape(p), url.PathEscape(p), url.UserPassword("", p).String()[1:])
	}
	add(o.Password)
	if u, err := url.Parse(o.URL); err == nil {
		if p, ok := u.User.Password(); ok {
			add(p)
		}
	}
	return out
}

// scrub removes every secret of o from msg.
func (o Options) scrub(msg string) string {
	for _, s := range o.secrets() {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}
