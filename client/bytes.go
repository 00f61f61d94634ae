package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// OpenSigned GETs a signed storage URL with no API key and no API header
// but User-Agent. length <= 0 means to the end; offset > 0 or length > 0
// sends Range (a server that ignores it is handled: the skipped part is
// discarded). Any status >= 300 is an *APIError; 403 matches both
// ErrForbidden and ErrURLExpired. It returns the body, which the caller must
// close, and its expected length (Content-Length, or -1). Network errors and
// 5xx are retried per policy before the body is returned.
//
// A body of known length that is cut short or stalls for Timeout is resumed
// with a Range request from the first missing byte (objects behind signed
// URLs are immutable), until MaxRetries resumes in a row bring no byte. An
// error of a failed resume matches ErrNetwork, never ErrURLExpired: bytes
// were already delivered, so the caller must start over, not just refresh.
func (c *Client) OpenSigned(ctx context.Context, signedURL string, offset, length int64) (io.ReadCloser, int64, error) {
	u, err := c.storageURL(signedURL)
	if err != nil {
		return nil, 0, err
	}
	body, n, err := c.open(ctx, &request{route: RouteStorageGet, method: http.MethodGet, u: u, storage: true, stream: true}, offset, length)
	if err != nil || n <= 0 {
		return body, n, err
	}
	return &resumeBody{c: c, ctx: ctx, u: u, cur: body, start: offset, total: n}, n, nil
}

// resumeBody is a signed-URL body that continues from where it stopped when
// it is cut short or stalls.
type resumeBody struct {
	c       *Client
	ctx     context.Context
	u       *url.URL
	cur     io.ReadCloser
	start   int64 // offset of the first byte asked for
	total   int64 // bytes expected
	pos     int64 // bytes delivered
	stuck   int   // resumes in a row that brought no byte
	pending error // a read error held back while its bytes are delivered
	resumes int   // resumes so far, for the log
}

func (b *resumeBody) Read(p []byte) (int, error) {
	for {
		var n int
		err := b.pending
		b.pending = nil
		if err == nil {
			n, err = b.cur.Read(p)
			b.pos += int64(n)
			if n > 0 {
				b.stuck = 0
			}
		}
		if b.pos >= b.total && err != nil {
			return n, io.EOF // every byte is here: what broke after them does not matter
		}
		if err == nil || b.ctx.Err() != nil {
			return n, err
		}
		if n > 0 {
			b.pending = err
			return n, nil
		}
		if b.stuck >= b.c.maxRetries {
			return 0, fmt.Errorf("pictograph: GET %s: %d resumes brought no byte: %w", SanitizeURL(b.u.String()), b.stuck, err)
		}
		b.stuck++
		if rerr := b.resume(err); rerr != nil {
			return 0, rerr
		}
	}
}

// resume replaces the current body with one from the first missing byte.
func (b *resumeBody) resume(cause error) error {
	b.cur.Close()
	b.resumes++
	off, want := b.start+b.pos, b.total-b.pos
	b.c.log.Debug("storage body cut short; resuming", "url", SanitizeURL(b.u.String()), "at", off, "of", b.start+b.total,
		"resume", b.resumes, "cause", cause)
	body, n, err := b.c.open(b.ctx, &request{route: RouteStorageGet, method: http.MethodGet, u: b.u, storage: true, stream: true}, off, want)
	if err == nil && n != want {
		body.Close()
		err = fmt.Errorf("got %d bytes from byte %d, want %d", n, off, want)
	}
	if err != nil {
		b.cur = io.NopCloser(strings.NewReader(""))
		// Not %w: a 403 here must not read as an expired URL to refresh and
		// continue; the bytes before off are gone with the caller's attempt.
		return fmt.Errorf("pictograph: GET %s: %w: resuming at byte %d after %v: %v", SanitizeURL(b.u.String()), ErrNetwork, off, cause, err)
	}
	b.cur = body
	return nil
}

func (b *resumeBody) Close() error { return b.cur.Close() }

// OpenImage GETs an image's bytes with the key:
// GET /images/{dataset}/{image_path}, image_path as in ImagePath. It costs an
// API request; the return is as for OpenSigned.
func (c *Client) OpenImage(ctx context.Context, dataset, directoryPath, filename string, offset, length int64) (io.ReadCloser, int64, error) {
	if dataset == "" || filename == "" {
		return nil, 0, fmt.Errorf("pictograph: empty dataset or filename: %w", ErrValidation)
	}
	u := c.apiURL("/images/"+EscapeSegment(dataset)+"/"+ImagePath(directoryPath, filename), nil)
	return c.open(ctx, &request{route: RouteImageBytes, method: http.MethodGet, u: u, stream: true}, offset, length)
}

// PutUpload PUTs bytes to a signed upload URL, without the key (it is
// another host), with the given Content-Type. Any status >= 300 is an error.
func (c *Client) PutUpload(ctx context.Context, uploadURL, contentType string, body []byte) error {
	u, err := c.storageURL(uploadURL)
	if err != nil {
		return err
	}
	if body == nil {
		body = []byte{}
	}
	_, err = c.do(ctx, &request{route: RouteStoragePut, method: http.MethodPut, u: u, body: body, contentType: contentType, storage: true})
	return err
}

// storageURL parses a signed URL; a relative one is resolved against the
// base URL. The error never shows the query.
func (c *Client) storageURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err == nil && !u.IsAbs() {
		u = c.base.ResolveReference(u)
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pictograph: invalid signed URL %q: %w", SanitizeURL(s), ErrValidation)
	}
	return u, nil
}

// open sends a streaming GET for [offset, offset+length) and fixes up the body.
func (c *Client) open(ctx context.Context, r *request, offset, length int64) (io.ReadCloser, int64, error) {
	if offset < 0 {
		return nil, 0, fmt.Errorf("pictograph: negative offset %d: %w", offset, ErrValidation)
	}
	switch {
	case length > 0:
		r.rangeHeader = fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	case offset > 0:
		r.rangeHeader = fmt.Sprintf("bytes=%d-", offset)
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, 0, err
	}
	body, n := resp.stream, resp.length
	switch {
	case resp.status == http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.header.Get("Content-Range")); ok && start != offset {
			body.Close()
			return nil, 0, invalid(resp, "asked for bytes from %d, got from %d", offset, start)
		}
	case r.rangeHeader != "" && offset > 0:
		// The server ignored Range and sent the whole object.
		if _, err := io.CopyN(io.Discard, body, offset); err != nil {
			body.Close()
			if errors.Is(err, io.EOF) {
				return io.NopCloser(strings.NewReader("")), 0, nil
			}
			return nil, 0, fmt.Errorf("pictograph: %s %s: %w: %w", r.method, r.path(), ErrNetwork, err)
		}
		if n >= 0 {
			n -= offset
		}
	}
	if length > 0 && (n < 0 || n > length) {
		body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(body, length), body}
		if n > length {
			n = length
		}
	}
	return body, n, nil
}

// contentRangeStart reads the first byte of "bytes a-b/total".
func contentRangeStart(v string) (int64, bool) {
	v, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(v, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return n, err == nil
}
