package devserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// apiPrefix is the path prefix of every API route.
const apiPrefix = "/api/v1/developer/"

// principal is the authenticated caller of an API request.
type principal struct {
	orgID   string
	role    string
	keyHash [32]byte
}

// need answers 403 unless the caller's role is at least role.
func (p *principal) need(role string) error {
	if roleRank[p.role] < roleRank[role] {
		return forbidden("this action needs the %s role or higher; this key is %s", role, p.role)
	}
	return nil
}

// handlerFunc is an API route: it writes a success itself or returns an
// error that the pipeline answers with the error envelope.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *principal) error

type principalKey struct{}

// adapt turns a handlerFunc into an http.HandlerFunc for the mux; the
// principal was put in the context by the pipeline.
func (s *Server) adapt(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := r.Context().Value(principalKey{}).(*principal)
		if err := h(w, r, p); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// apiHandler is the API listener's pipeline: request id, counters, injected
// latency and failures, authentication, the hourly budget, then routing.
func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		w = rec
		w.Header().Set("X-Request-Id", uuid.NewString())
		s.stats.apiRequests.Add(1)
		defer func() {
			s.log.Debug("devserver: api", "method", r.Method, "path", r.URL.Path,
				"status", rec.status, "duration", time.Since(start))
		}()
		f := s.faults.Load()
		if !sleepCtx(r.Context(), f.APILatency) {
			return
		}
		if f.FailRate > 0 && rand.Float64() < f.FailRate {
			s.stats.injected503.Add(1)
			s.writeError(w, r, apiErr(http.StatusServiceUnavailable, "service_unavailable",
				"the service is temporarily unavailable (injected fault)"))
			return
		}
		if !strings.HasPrefix(r.URL.Path, apiPrefix) {
			s.writeError(w, r, notFound("no route for %s", r.URL.Path))
			return
		}
		p, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.spend(w, p.keyHash, time.Now()); err != nil {
			s.writeError(w, r, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if h := s.rawRoute(r); h != nil {
			if err := h(w, r, p); err != nil {
				s.writeError(w, r, err)
			}
			return
		}
		if _, pattern := mux.Handler(r); pattern == "" {
			s.writeError(w, r, s.noRoute(mux, r))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// noRoute tells 405 from 404 for a request the mux does not match.
func (s *Server) noRoute(mux *http.ServeMux, r *http.Request) error {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pattern := mux.Handler(r2); pattern != "" {
			return apiErr(http.StatusMethodNotAllowed, "method_not_allowed", "method %s is not allowed on %s", r.Method, r.URL.Path)
		}
	}
	return notFound("no route for %s %s", r.Method, r.URL.Path)
}

func (s *Server) authenticate(r *http.Request) (*principal, error) {
	key := r.Header.Get("X-API-Key")
	if key == "" {
		return nil, apiErr(http.StatusUnauthorized, "unauthorized", "missing X-API-Key header")
	}
	h := sha256.Sum256([]byte(key))
	stored, orgID, role, err := s.st.keyByHash(r.Context(), h[:])
	if err != nil {
		return nil, err
	}
	if stored == nil || subtle.ConstantTimeCompare(stored, h[:]) != 1 {
		return nil, apiErr(http.StatusUnauthorized, "unauthorized", "invalid API key")
	}
	return &principal{orgID: orgID, role: role, keyHash: h}, nil
}

// budget is one key's request count in its current window.
type budget struct {
	windowStart time.Time
	used        int
}

// spend counts one request against the key's budget, or answers 429 with
// Retry-After (seconds until the window ends) when it is exhausted.
func (s *Server) spend(w http.ResponseWriter, keyHash [32]byte, now time.Time) error {
	limit, window := s.opts.RequestsPerHour, s.opts.RateWindow
	s.budgetMu.Lock()
	b := s.budgets[keyHash]
	if b == nil || now.Sub(b.windowStart) >= window {
		b = &budget{windowStart: now}
		s.budgets[keyHash] = b
	}
	ok := b.used < limit
	if ok {
		b.used++
	}
	used, reset := b.used, b.windowStart.Add(window)
	s.budgetMu.Unlock()

	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(limit-used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if ok {
		return nil
	}
	s.stats.status429.Add(1)
	secs := int64((reset.Sub(now) + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	return apiErr(http.StatusTooManyRequests, "rate_limited",
		"this key has used its %d requests for this hour; retry after %d s", limit, max(secs, 1))
}

// idemSlot serializes requests that carry the same key and Idempotency-Key:
// mu is held across the whole request (its database work included), on
// purpose, so that a concurrent retry waits and then replays the answer.
type idemSlot struct {
	mu   sync.Mutex
	refs int // guarded by Server.idemMu
}

const idemLifetime = 24 * time.Hour

// idempotent wraps a POST/PATCH route: with an Idempotency-Key header, the
// first response (unless 5xx or 429) is saved for 24 h per (API key,
// idempotency key) and replayed to later requests with the same key. The
// same key with another request body answers 422.
func (s *Server) idempotent(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *principal) error {
		idemKey := r.Header.Get("Idempotency-Key")
		if idemKey == "" {
			return h(w, r, p)
		}
		if len(idemKey) > 255 {
			return badRequest("Idempotency-Key is longer than 255 characters")
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
		if err != nil {
			return apiErr(http.StatusRequestEntityTooLarge, "payload_too_large", "request body too large")
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		fp := sha256.New()
		io.WriteString(fp, r.Method+"\n"+r.URL.EscapedPath()+"\n")
		fp.Write(body)
		fingerprint := fp.Sum(nil)

		slotKey := string(p.keyHash[:]) + "\x00" + idemKey
		s.idemMu.Lock()
		slot := s.idemInflight[slotKey]
		if slot == nil {
			slot = &idemSlot{}
			s.idemInflight[slotKey] = slot
		}
		slot.refs++
		s.idemMu.Unlock()
		slot.mu.Lock()
		defer func() {
			slot.mu.Unlock()
			s.idemMu.Lock()
			slot.refs--
			if slot.refs == 0 {
				delete(s.idemInflight, slotKey)
			}
			s.idemMu.Unlock()
		}()

		now := time.Now()
		rec, err := s.st.idempotent(r.Context(), p.keyHash[:], idemKey, now.Add(-idemLifetime))
		if err != nil {
			return err
		}
		if rec != nil {
			if !bytes.Equal(rec.fingerprint, fingerprint) {
				return apiErr(http.StatusUnprocessableEntity, "idempotency_key_reused",
					"Idempotency-Key %q was used with a different request", idemKey)
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(rec.status)
			w.Write(rec.body)
			return nil
		}
		br := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		if err := h(br, r, p); err != nil {
			s.writeError(br, r, err)
		}
		if br.status < 500 && br.status != http.StatusTooManyRequests {
			err := s.st.saveIdempotent(r.Context(), p.keyHash[:], idemKey,
				&idemRecord{fingerprint: fingerprint, status: br.status, body: br.body.Bytes()}, now, now.Add(-idemLifetime))
			if err != nil {
				s.log.Warn("devserver: save idempotency record", "err", err)
			}
		}
		for k, v := range br.header {
			w.Header()[k] = v
		}
		w.WriteHeader(br.status)
		w.Write(br.body.Bytes())
		return nil
	}
}

// bufferedResponse records a response so that it can be saved and replayed.
type bufferedResponse struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wroteHeader {
		b.status, b.wroteHeader = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

const maxJSONBody = 32 << 20

// writeJSON answers v as JSON, followed by a newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal_error","message":"encode response","details":{}},"detail":"encode response"}`,
			http.StatusInternalServerError)
		return
	}
	writeBody(w, status, append(b, '\n'))
}

// writeBody answers a JSON body that is already encoded.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, known := asAPIError(err)
	if !known {
		s.log.Error("devserver: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, e.Status, newErrorBody(e))
}

// sleepCtx waits d, or until ctx is done (then it returns false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
