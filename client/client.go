package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	randv2 "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Retry policy constants of §7.
const (
	baseBackoff   = time.Second
	maxBackoff    = 30 * time.Second
	maxRetryAfter = 120 * time.Second
)

// Body limits: a JSON answer (a 10000-image listing is a few MB) and the part
// of an error body kept for its message.
const (
	maxJSONBody  = 256 << 20
	maxErrorBody = 64 << 10
)

// Options configure a Client. The zero value of every field but APIKey is a
// usable default.
type Options struct {
	// BaseURL of the service, default DefaultBaseURL; scheme http or https
	// and a host are required. A trailing APIPrefix is tolerated.
	BaseURL string
	// APIKey is sent as X-API-Key to the base URL's host only. Required.
	APIKey string
	// Timeout bounds each wait of an attempt, as the SDK's read timeout
	// does: for the response headers, then for each read of a body (for a
	// byte stream, only the time a Read waits for bytes counts, not the
	// caller's pauses between reads). Default 30s; <0 none.
	Timeout time.Duration
	// MaxRetries is the number of retries after the first attempt: default 3
	// when 0; -1 (any negative) means no retries.
	MaxRetries int
	// UserAgent, default "pictofs/dev".
	UserAgent string
	// RequestsPerHour is a client-side budget of API attempts over a sliding
	// hour; an attempt over it fails with ErrBudgetExceeded and is not sent.
	// 0 means unlimited. Storage fetches are not counted.
	RequestsPerHour int
	// HTTPClient sends API requests. Default: its own transport with
	// keep-alive and MaxIdleConnsPerHost 64. Its redirect policy is wrapped
	// so that the key never follows a redirect to another host.
	HTTPClient *http.Client
	// StorageClient sends signed-URL requests. Default: a separate transport
	// with MaxIdleConnsPerHost 256, no compression and no overall timeout
	// (the context governs the body).
	StorageClient *http.Client
	// Sleep waits between retries. Default: a timer that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a uniform number in [0,1). Default math/rand/v2.
	Jitter func() float64
	// Now is the clock of the budget and of Retry-After dates. Default time.Now.
	Now func() time.Time
	// Logger, default slog.Default(). The key and signed-URL queries are never logged.
	Logger *slog.Logger
	// OnRequest, if set, is called once per attempt of every API and
	// storage request, after the attempt and before any wait for the next
	// one, on the calling goroutine and outside any lock of the client
	// (see RequestEvent). It must be quick and safe for concurrent use.
	OnRequest func(RequestEvent)
}

// Client is a Pictograph API client, safe for concurrent use.
type Client struct {
	base       *url.URL
	key        string
	userAgent  string
	timeout    time.Duration
	maxRetries int
	api        *http.Client
	storage    *http.Client
	sleep      func(context.Context, time.Duration) error
	jitter     func() float64
	now        func() time.Time
	log        *slog.Logger
	budget     *budget // nil when unlimited
	gate       rateGate
	onRequest  func(RequestEvent) // nil when not observed

	apiRequests     atomic.Int64
	storageRequests atomic.Int64
}

// Validate checks the values of opts that have a range (not the key or
// the base URL, which New checks).
func (opts Options) Validate() error {
	if opts.RequestsPerHour < 0 {
		return fmt.Errorf("requests per hour %d: must not be negative (0 for no cap)", opts.RequestsPerHour)
	}
	return nil
}

// New validates opts, fills in the defaults and returns a Client.
func New(opts Options) (*Client, error) {
	if strings.TrimSpace(opts.APIKey) == "" {
		return nil, errors.New("pictograph: no API key")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("pictograph: %w", err)
	}
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	base, err := ParseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("pictograph: %w", err)
	}
	c := &Client{
		base:       base,
		key:        strings.TrimSpace(opts.APIKey),
		userAgent:  opts.UserAgent,
		timeout:    opts.Timeout,
		maxRetries: opts.MaxRetries,
		sleep:      opts.Sleep,
		jitter:     opts.Jitter,
		now:        opts.Now,
		log:        opts.Logger,
		onRequest:  opts.OnRequest,
	}
	switch {
	case c.timeout == 0:
		c.timeout = DefaultTimeout
	case c.timeout < 0:
		c.timeout = 0
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.userAgent == "" {
		c.userAgent = "pictofs/dev"
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.jitter == nil {
		c.jitter = randv2.Float64
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if opts.RequestsPerHour > 0 {
		c.budget = &budget{limit: opts.RequestsPerHour}
	}
	c.api = c.keySafe(opts.HTTPClient)
	c.storage = opts.StorageClient
	if c.storage == nil {
		c.storage = &http.Client{Transport: NewStorageTransport()}
	}
	return c, nil
}

// NewStorageTransport is the transport of the default Options.StorageClient
// (many idle connections per host, no compression), for a caller that wraps
// it in its own StorageClient.
func NewStorageTransport() *http.Transport { return newTransport(256, true) }

func newTransport(perHost int, noCompression bool) *http.Transport {
	t, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		t = t.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	t.MaxIdleConns = 2 * perHost
	t.MaxIdleConnsPerHost = perHost
	t.DisableCompression = noCompression
	return t
}

// keySafe returns a copy of hc (or a default client) whose redirects drop
// X-API-Key when they leave the base URL's scheme and host.
func (c *Client) keySafe(hc *http.Client) *http.Client {
	var cp http.Client
	if hc != nil {
		cp = *hc
	} else {
		cp.Transport = newTransport(64, false)
	}
	next := cp.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !c.sameHost(req.URL) {
			req.Header.Del("X-API-Key")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cp
}

func (c *Client) sameHost(u *url.URL) bool {
	return u.Scheme == c.base.Scheme && strings.EqualFold(u.Host, c.base.Host)
}

// BaseURL returns a copy of the base URL (without APIPrefix).
func (c *Client) BaseURL() *url.URL {
	u := *c.base
	return &u
}

// APIRequests is the number of API attempts sent; every retry counts, as it
// counts against the plan.
func (c *Client) APIRequests() int64 { return c.apiRequests.Load() }

// StorageRequests is the number of signed-URL requests sent.
func (c *Client) StorageRequests() int64 { return c.storageRequests.Load() }

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// newIdempotencyKey returns 32 lowercase hex characters.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// budget is a sliding one-hour window of attempt times.
type budget struct {
	limit int
	mu    sync.Mutex // guards sent
	sent  []time.Time
}

// take records an attempt at now, or reports false when the last hour is full.
func (b *budget) take(now time.Time) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := 0
	for i < len(b.sent) && now.Sub(b.sent[i]) >= time.Hour {
		i++
	}
	b.sent = b.sent[i:]
	if len(b.sent) >= b.limit {
		return false
	}
	b.sent = append(b.sent, now)
	return true
}

// left is the number of attempts the last hour still allows at now.
func (b *budget) left(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, t := range b.sent {
		if now.Sub(t) < time.Hour {
			n++
		}
	}
	return max(b.limit-n, 0)
}

// rateGate holds every API request back after a 429 until the time its
// Retry-After names, so that a saturated plan is not hit again by the other
// requests in flight: the server would refuse them all.
type rateGate struct {
	mu    sync.Mutex // guards until
	until time.Time
}

// hold closes the gate until t (or later, if it already is).
func (g *rateGate) hold(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.After(g.until) {
		g.until = t
	}
}

// closedUntil is the time the gate opens.
func (g *rateGate) closedUntil() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.until
}

// request is one logical call; do sends it once per attempt.
type request struct {
	route       string // a Route* pattern, for OnRequest
	method      string
	u           *url.URL
	body        []byte
	contentType string
	idemKey     string
	rangeHeader string
	storage     bool // a signed URL: storage client, no key, no API headers, no budget
	stream      bool // return the body unread; the attempt timeout covers the headers only
}

// path is the request as errors and logs show it: the path and query for
// the API, the URL without its query for storage.
func (r *request) path() string {
	if r.storage {
		return SanitizeURL(r.u.String())
	}
	return r.u.RequestURI()
}

// retryable: §7 retries GET, DELETE and PUT; POST and PATCH only with an
// Idempotency-Key.
func (r *request) retryable() bool {
	switch r.method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return r.idemKey != ""
}

func retryableStatus(status int) bool {
	switch status {
	case 408, 429, 500, 502, 503, 504:
		return true
	}
	return false
}

// response is a 2xx answer: body is read unless the request streams.
type response struct {
	req      *request
	status   int
	header   http.Header
	body     []byte
	stream   io.ReadCloser
	length   int64
	attempts int
}

// do sends r with the retry policy of §7 and returns a 2xx response, an
// *APIError, or a wrapped ErrNetwork, ErrTimeout, ErrBudgetExceeded or ctx error.
func (c *Client) do(ctx context.Context, r *request) (*response, error) {
	var slept time.Time // the end of this request's own last wait
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, c.ctxError(r, err)
		}
		if !r.storage {
			if err := c.waitGate(ctx, r, slept); err != nil {
				return nil, err
			}
		}
		if !r.storage && !c.budget.take(c.now()) {
			return nil, fmt.Errorf("pictograph: %s %s: %w (%d requests per hour)", r.method, r.path(), ErrBudgetExceeded, c.budget.limit)
		}
		start := time.Now()
		resp, err := c.attempt(ctx, r)
		if err != nil && ctx.Err() != nil {
			c.emit(r, n+1, start, 0, err, false)
			return nil, c.ctxError(r, ctx.Err())
		}
		if ae := (*APIError)(nil); errors.As(err, &ae) {
			c.emit(r, n+1, start, ae.Status, ae, false)
			return nil, err // an unusable answer: asking again would not help
		}
		var apiErr *APIError
		switch {
		case err != nil:
			c.log.Debug("pictograph request failed", "method", r.method, "url", r.path(), "attempt", n+1, "err", err)
		case resp.status < 300:
			c.log.Debug("pictograph request", "method", r.method, "url", r.path(), "status", resp.status, "attempt", n+1, "duration", time.Since(start))
			c.emit(r, n+1, start, resp.status, nil, false)
			resp.attempts = n + 1
			return resp, nil
		default:
			apiErr = c.apiError(r, resp, n+1)
			if apiErr.Status == http.StatusTooManyRequests && apiErr.RetryAfter > 0 {
				c.gate.hold(c.now().Add(apiErr.RetryAfter))
			}
			c.log.Debug("pictograph request", "method", r.method, "url", r.path(), "status", resp.status, "attempt", n+1, "duration", time.Since(start))
		}
		status, cause := 0, err
		if apiErr != nil {
			status, cause = apiErr.Status, apiErr
		}
		if !r.retryable() || n >= c.maxRetries || (apiErr != nil && !retryableStatus(apiErr.Status)) {
			c.emit(r, n+1, start, status, cause, false)
			if apiErr != nil {
				return nil, apiErr
			}
			return nil, fmt.Errorf("pictograph: %s %s (%d attempts): %w", r.method, r.path(), n+1, err)
		}
		wait := c.backoff(n)
		if apiErr != nil && apiErr.Status == http.StatusTooManyRequests && apiErr.RetryAfter > 0 {
			if apiErr.RetryAfter > maxRetryAfter {
				c.emit(r, n+1, start, status, cause, false)
				return nil, apiErr
			}
			wait = max(wait, apiErr.RetryAfter)
		}
		c.emit(r, n+1, start, status, cause, true)
		logCause := any(err)
		if apiErr != nil {
			logCause = apiErr.Status
		}
		c.log.Warn("pictograph request retried", "method", r.method, "url", r.path(), "attempt", n+1, "cause", logCause, "wait", wait)
		slept = c.now().Add(wait)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, c.ctxError(r, err)
		}
	}
}

// waitGate waits while a 429's Retry-After holds API requests back, looking
// again after each wait (another 429 may have pushed the time back), unless
// the request's own retry wait, ending at slept, already covered it. A wait
// longer than maxRetryAfter is not waited for: the request fails at once
// with ErrRateLimited, unsent, as the 429 itself would.
func (c *Client) waitGate(ctx context.Context, r *request, slept time.Time) error {
	for {
		until := c.gate.closedUntil()
		wait := until.Sub(c.now())
		if !until.After(slept) || wait <= 0 {
			return nil
		}
		if wait > maxRetryAfter {
			return fmt.Errorf("pictograph: %s %s: %w: not sent, the server asked to wait %s more",
				r.method, r.path(), ErrRateLimited, wait.Round(time.Second))
		}
		if err := c.sleep(ctx, wait); err != nil {
			return c.ctxError(r, err)
		}
		slept = until
	}
}

// backoff is min(1s×2^n, 30s) × a uniform factor in [0.75, 1.25].
func (c *Client) backoff(n int) time.Duration {
	d := maxBackoff
	if n < 5 {
		d = min(baseBackoff<<n, maxBackoff)
	}
	return time.Duration(float64(d) * (0.75 + 0.5*c.jitter()))
}

func (c *Client) ctxError(r *request, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pictograph: %s %s: %w: %w", r.method, r.path(), ErrTimeout, err)
	}
	return fmt.Errorf("pictograph: %s %s: %w", r.method, r.path(), err)
}

// apiError builds the *APIError of a non-2xx response.
func (c *Client) apiError(r *request, resp *response, attempts int) *APIError {
	e := &APIError{
		Status:    resp.status,
		RequestID: resp.header.Get("X-Request-Id"),
		Method:    r.method,
		Path:      r.path(),
		Attempts:  attempts,
		Storage:   r.storage,
	}
	if d, ok := parseRetryAfter(resp.header.Get("Retry-After"), c.now()); ok {
		e.RetryAfter = d
	}
	if r.storage {
		parseStorageError(e, resp.body)
	} else {
		parseErrorBody(e, resp.body)
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.status)
	}
	return e
}

// invalid is the ErrServer error for a 2xx answer the contract does not allow.
func invalid(resp *response, format string, args ...any) error {
	return &APIError{
		Status:    resp.status,
		Code:      codeInvalidResponse,
		Message:   fmt.Sprintf(format, args...),
		RequestID: resp.header.Get("X-Request-Id"),
		Method:    resp.req.method,
		Path:      resp.req.path(),
		Attempts:  resp.attempts,
		Storage:   resp.req.storage,
	}
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) {
			return 0, false
		}
		secs = min(max(secs, 0), 1e6)
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// errAttemptTimeout is the cancel cause of an attempt that ran out of Timeout.
var errAttemptTimeout = errors.New("attempt timed out")

// attempt sends r once. A non-2xx answer is a response (its body read up to
// maxErrorBody); an error is a transport failure wrapping ErrNetwork or
// ErrTimeout, or the parent context's error.
func (c *Client) attempt(ctx context.Context, r *request) (*response, error) {
	actx, cancel := context.WithCancelCause(ctx)
	var timer *time.Timer
	if c.timeout > 0 {
		timer = time.AfterFunc(c.timeout, func() { cancel(errAttemptTimeout) })
	}
	done := func() {
		if timer != nil {
			timer.Stop()
		}
		cancel(nil)
	}
	req, err := http.NewRequestWithContext(actx, r.method, r.u.String(), bytes.NewReader(r.body))
	if err != nil {
		done()
		return nil, fmt.Errorf("pictograph: %s %s: %w", r.method, r.path(), err)
	}
	if r.body == nil {
		req.Body, req.GetBody, req.ContentLength = nil, nil, 0
	}
	req.Header.Set("User-Agent", c.userAgent)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.rangeHeader != "" {
		req.Header.Set("Range", r.rangeHeader)
	}
	hc := c.storage
	if !r.storage {
		hc = c.api
		req.Header.Set("Accept", "application/json")
		if c.sameHost(req.URL) {
			req.Header.Set("X-API-Key", c.key)
		}
		if r.idemKey != "" {
			req.Header.Set("Idempotency-Key", r.idemKey)
		}
		if r.stream {
			req.Header.Set("Accept-Encoding", "identity")
		}
		c.apiRequests.Add(1)
	} else {
		c.storageRequests.Add(1)
	}

	hr, err := hc.Do(req)
	if err != nil {
		done()
		return nil, transportError(actx, r, err)
	}
	resp := &response{req: r, status: hr.StatusCode, header: hr.Header, length: hr.ContentLength}
	if r.stream && hr.StatusCode < 300 {
		if timer != nil && !timer.Stop() {
			hr.Body.Close()
			cancel(nil)
			return nil, fmt.Errorf("%w: %w", ErrTimeout, errAttemptTimeout)
		}
		resp.stream = &streamBody{body: hr.Body, ctx: actx, timer: timer, d: c.timeout, cancel: func() { cancel(nil) }}
		return resp, nil
	}
	defer done()
	defer hr.Body.Close()
	limit := int64(maxJSONBody)
	if hr.StatusCode >= 300 {
		limit = maxErrorBody
	}
	var body io.Reader = hr.Body
	if timer != nil {
		body = &idleReader{r: hr.Body, timer: timer, d: c.timeout}
	}
	resp.body, err = io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		if hr.StatusCode >= 300 {
			return resp, nil // the status is the answer; a cut error body does not matter
		}
		return nil, transportError(actx, r, err)
	}
	if int64(len(resp.body)) > limit {
		if hr.StatusCode < 300 {
			return nil, invalid(resp, "body larger than %d bytes", limit)
		}
		resp.body = resp.body[:limit]
	}
	return resp, nil
}

// transportError classifies a failed round trip or body read. The cause is
// kept with %w, its URL stripped of the query.
func transportError(actx context.Context, r *request, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = &url.Error{Op: ue.Op, URL: SanitizeURL(ue.URL), Err: ue.Err}
	}
	if errors.Is(context.Cause(actx), errAttemptTimeout) {
		// Not %w: the cause may wrap context.Canceled, which this is not.
		if !strings.Contains(err.Error(), errAttemptTimeout.Error()) {
			return fmt.Errorf("%w: %w: %v", ErrTimeout, errAttemptTimeout, err)
		}
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrNetwork, err)
}

// idleReader restarts the attempt's timer on every read that makes
// progress, so Timeout bounds a stall, not the transfer of a large listing.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.d)
	}
	return n, err
}

// streamBody is a streamed 2xx body. While a Read waits for bytes the
// attempt's timer runs, so Timeout bounds a stall in the middle of a body
// as it bounds the wait for the headers (the time the caller spends between
// reads is not counted). Closing it releases the attempt's context.
type streamBody struct {
	body   io.ReadCloser
	ctx    context.Context // the attempt's; its cause tells a stall from a cancel
	timer  *time.Timer     // nil without Timeout
	d      time.Duration
	cancel func()
}

func (b *streamBody) Read(p []byte) (int, error) {
	if b.timer != nil {
		b.timer.Reset(b.d)
	}
	n, err := b.body.Read(p)
	if b.timer != nil {
		b.timer.Stop()
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), errAttemptTimeout) {
		// Not %w: err wraps context.Canceled, which a stall is not.
		err = fmt.Errorf("%w: no bytes for %s: %v", ErrTimeout, b.d, err)
	}
	return n, err
}

func (b *streamBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.body.Close()
	b.cancel()
	return err
}
