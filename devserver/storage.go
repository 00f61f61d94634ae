package devserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"image"
	_ "image/gif" // DecodeConfig of uploaded GIFs
	_ "image/jpeg"
	_ "image/png"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Signed storage URLs look like
//
//	{storage}/o/{image_id}?expires={unix seconds}&signature={base64url HMAC-SHA256}
//	{storage}/u/{upload_id}?expires=…&signature=…   (PUT, from upload-url)
//	{storage}/x/{export_id}?expires=…&signature=…   (an export's ZIP)
//
// where the HMAC key is a per-data-dir secret and the MAC covers
// "{METHOD}\n{escaped path}\n{expires}". Expired or tampered URLs answer 403.

func objectPath(imageID string) string { return "/o/" + imageID }

func uploadPath(uploadID string) string { return "/u/" + uploadID }

// expiry is the expires value of URLs signed at now under the faults in force.
func (s *Server) expiry(now time.Time) int64 {
	ttl := s.faults.Load().URLTTL
	if ttl == 0 {
		ttl = s.opts.URLTTL
	}
	return now.Add(ttl).Unix()
}

func (s *Server) mac(method, escapedPath string, exp int64) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(method + "\n" + escapedPath + "\n" + strconv.FormatInt(exp, 10)))
	return m.Sum(nil)
}

func (s *Server) signedURL(base, method, escapedPath string, exp int64) string {
	sig := base64.RawURLEncoding.EncodeToString(s.mac(method, escapedPath, exp))
	return base + escapedPath + "?expires=" + strconv.FormatInt(exp, 10) + "&signature=" + sig
}

// verify checks the signature and expiry of a storage request.
func (s *Server) verify(r *http.Request, method string) error {
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return forbidden("missing or malformed expires")
	}
	// Strict: a signature that differs only in the unused low bits of its
	// last character is a tampered one, not the same one.
	sig, err := base64.RawURLEncoding.Strict().DecodeString(q.Get("signature"))
	if err != nil || !hmac.Equal(sig, s.mac(method, r.URL.EscapedPath(), exp)) {
		return apiErr(http.StatusForbidden, "signature_mismatch", "the request signature does not match")
	}
	if time.Now().Unix() > exp {
		return apiErr(http.StatusForbidden, "expired", "the signed URL has expired")
	}
	return nil
}

// storageHandler serves the signed-URL host. It never looks at X-API-Key:
// a request carrying one is only counted (StorageSawAPIKey).
func (s *Server) storageHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", uuid.NewString())
		if r.Header.Get("X-API-Key") != "" {
			s.stats.storageSawAPIKey.Add(1)
		}
		p := r.URL.EscapedPath()
		var err error
		switch {
		case strings.HasPrefix(p, "/o/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			err = s.serveObject(w, r, strings.TrimPrefix(p, "/o/"))
		case strings.HasPrefix(p, "/u/") && r.Method == http.MethodPut:
			err = s.receiveUpload(w, r, strings.TrimPrefix(p, "/u/"))
		case strings.HasPrefix(p, "/x/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			err = s.serveExport(w, r, strings.TrimPrefix(p, "/x/"))
		case strings.HasPrefix(p, "/o/") || strings.HasPrefix(p, "/u/") || strings.HasPrefix(p, "/x/"):
			err = apiErr(http.StatusMethodNotAllowed, "method_not_allowed", "method %s not allowed", r.Method)
		default:
			err = notFound("no such object")
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, id string) error {
	return s.serveStored(w, r, func(ctx context.Context) (storedBlob, error) {
		im, err := s.st.imageByIDAnyOrg(ctx, id)
		if err != nil {
			return storedBlob{}, err
		}
		return storedBlob{blob: im.blob, contentType: im.contentType}, nil
	})
}

// storedBlob is what a signed storage GET serves: the blob, its content
// headers and the counter, if any, of downloads served.
type storedBlob struct {
	blob        []byte
	contentType string
	disposition string        // Content-Disposition, if any
	served      *atomic.Int64 // added to once the blob is open
}

// serveStored answers a signed GET or HEAD on the storage host: it counts
// the request, checks the signature, sleeps the storage stall and latency,
// then serves the blob lookup names through a storageWriter, which applies
// the bandwidth and truncation faults.
func (s *Server) serveStored(w http.ResponseWriter, r *http.Request, lookup func(context.Context) (storedBlob, error)) error {
	s.stats.storageGets.Add(1)
	if err := s.verify(r, http.MethodGet); err != nil {
		return err
	}
	f := s.faults.Load()
	if !sleepCtx(r.Context(), f.StorageStall) || !sleepCtx(r.Context(), f.StorageLatency) {
		return nil
	}
	sb, err := lookup(r.Context())
	if err != nil {
		return err
	}
	file, err := s.blobs.open(sb.blob)
	if err != nil {
		return err
	}
	defer file.Close()
	if sb.served != nil {
		sb.served.Add(1)
	}
	w.Header().Set("Content-Type", sb.contentType)
	if sb.disposition != "" {
		w.Header().Set("Content-Disposition", sb.disposition)
	}
	w.Header().Set("Cache-Control", "private, max-age=3600, immutable")
	sw := &storageWriter{ResponseWriter: w, s: s, r: r, bandwidth: f.StorageBandwidth, cut: -1,
		truncate: f.TruncateRate > 0 && rand.Float64() < f.TruncateRate, start: time.Now()}
	http.ServeContent(sw, r, "", time.Time{}, file)
	return nil
}

func (s *Server) receiveUpload(w http.ResponseWriter, r *http.Request, id string) error {
	if err := s.verify(r, http.MethodPut); err != nil {
		return err
	}
	u, err := s.st.upload(r.Context(), id)
	if err != nil {
		return err
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != u.contentType {
		return apiErr(http.StatusForbidden, "signature_mismatch",
			"Content-Type %q does not match the signed %q", r.Header.Get("Content-Type"), u.contentType)
	}
	sum, n, err := s.blobs.putReader(r.Body, 1<<30)
	if err != nil {
		return badRequest("upload: %v", err)
	}
	if err := s.st.completeUpload(r.Context(), id, sum, n); err != nil {
		return err
	}
	w.Header().Set("ETag", `"`+base64.RawURLEncoding.EncodeToString(sum[:16])+`"`)
	w.WriteHeader(http.StatusOK)
	return nil
}

// storageWriter applies the per-response bandwidth cap and truncation, and
// counts body bytes. Truncation sends the full Content-Length header, half
// of the body, then aborts the connection.
type storageWriter struct {
	http.ResponseWriter
	s           *Server
	r           *http.Request
	bandwidth   int64 // bytes/s; 0 = unlimited
	truncate    bool
	cut         int64 // body bytes to send before aborting; -1 = no cut
	sent        int64
	start       time.Time
	wroteHeader bool
}

func (w *storageWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if w.truncate && (code == http.StatusOK || code == http.StatusPartialContent) {
		if cl, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil && cl > 0 {
			w.cut = cl / 2
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *storageWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	total := 0
	for len(p) > 0 {
		chunk := p
		if w.bandwidth > 0 {
			chunk = p[:min(int64(len(p)), max(w.bandwidth/20, 1024))]
		}
		if w.cut >= 0 && w.sent+int64(len(chunk)) > w.cut {
			n, _ := w.ResponseWriter.Write(chunk[:w.cut-w.sent])
			w.s.stats.storageBytes.Add(int64(n))
			http.NewResponseController(w.ResponseWriter).Flush()
			w.s.stats.truncated.Add(1)
			panic(http.ErrAbortHandler)
		}
		n, err := w.ResponseWriter.Write(chunk)
		w.sent += int64(n)
		total += n
		w.s.stats.storageBytes.Add(int64(n))
		if err != nil {
			return total, err
		}
		p = p[n:]
		if w.bandwidth > 0 {
			// Send each chunk now, as a slow link delivers it, instead of
			// holding it in the response buffer until the buffer fills.
			http.NewResponseController(w.ResponseWriter).Flush()
			due := w.start.Add(time.Duration(float64(w.sent) / float64(w.bandwidth) * float64(time.Second)))
			if !sleepCtx(w.r.Context(), time.Until(due)) {
				return total, errors.New("client went away")
			}
		}
	}
	return total, nil
}

func (w *storageWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// blobDimensions decodes the width and height of a stored image.
func (s *Server) blobDimensions(sum []byte) (int, int, bool) {
	f, err := s.blobs.open(sum)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, 0, false
	}
	return cfg.Width, cfg.Height, true
}
