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
// 5xx are retried per policy before the body is returned, not after.
func (c *Client) OpenSigned(ctx context.Context, signedURL string, offset, length int64) (io.ReadCloser, int64, error) {
	u, err := c.storageURL(signedURL)
	if err != nil {
		return nil, 0, err
	}
	return c.open(ctx, &request{method: http.MethodGet, u: u, storage: true, stream: true}, offset, length)
}

// OpenImage GETs an image's bytes with the key:
// GET /images/{dataset}/{image_path}, image_path as in ImagePath. It costs an
// API request; the return is as for OpenSigned.
func (c *Client) OpenImage(ctx context.Context, dataset, directoryPath, filename string, offset, length int64) (io.ReadCloser, int64, error) {
	if dataset == "" || filename == "" {
		return nil, 0, fmt.Errorf("pictograph: empty dataset or filename: %w", ErrValidation)
	}
	u := c.apiURL("/images/"+EscapeSegment(dataset)+"/"+ImagePath(directoryPath, filename), nil)
	return c.open(ctx, &request{method: http.MethodGet, u: u, stream: true}, offset, length)
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
	_, err = c.do(ctx, &request{method: http.MethodPut, u: u, body: body, contentType: contentType, storage: true})
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
