package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// apiURL joins the base URL, APIPrefix and an already escaped route path.
func (c *Client) apiURL(escPath string, q url.Values) *url.URL {
	return c.rootURL(c.base.EscapedPath()+APIPrefix+escPath, q.Encode())
}

// rootURL is the base URL's scheme and host with an escaped absolute path.
func (c *Client) rootURL(escPath, rawQuery string) *url.URL {
	u := *c.base
	u.RawPath = escPath
	u.Path = escPath
	if p, err := url.PathUnescape(escPath); err == nil {
		u.Path = p
	}
	u.RawQuery = rawQuery
	return &u
}

// call sends an API request of route (a Route* pattern, which names the
// method) to escPath with an optional JSON body. POST, PATCH and PUT carry a
// fresh Idempotency-Key, the same on every retry.
func (c *Client) call(ctx context.Context, route, escPath string, q url.Values, in any) (*response, error) {
	method, _, _ := strings.Cut(route, " ")
	r := &request{route: route, method: method, u: c.apiURL(escPath, q)}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("pictograph: %s %s: %w", method, r.path(), err)
		}
		r.body, r.contentType = b, "application/json"
	}
	if method != http.MethodGet && method != http.MethodDelete {
		r.idemKey = newIdempotencyKey()
	}
	return c.do(ctx, r)
}

// getData GETs escPath (of route) and decodes its {"data": …} object into out.
func (c *Client) getData(ctx context.Context, route, escPath string, q url.Values, out any) error {
	resp, err := c.call(ctx, route, escPath, q, nil)
	if err != nil {
		return err
	}
	return decodeData(resp, out)
}

// decodeData decodes the "data" member of an object envelope into out. An
// answer without "data" is taken as the object itself.
func decodeData(resp *response, out any) error {
	env := struct {
		Data member `json:"data"` // a value, so that null reaches UnmarshalJSON
	}{member{out: out}}
	data := &env.Data
	b := bytes.TrimSpace(resp.body)
	if len(b) == 0 || b[0] != '{' {
		return invalid(resp, "body is not a JSON object")
	}
	err := json.Unmarshal(b, &env)
	switch {
	case err != nil:
		return invalid(resp, "decoding data: %v", err)
	case data.null:
		return invalid(resp, "data is null")
	case !data.present:
		if err := json.Unmarshal(b, out); err != nil {
			return invalid(resp, "decoding body: %v", err)
		}
	}
	return nil
}

// member decodes an envelope member straight into out, without a copy of
// its bytes (a listing can be megabytes), and records its presence.
type member struct {
	out           any
	present, null bool
}

func (m *member) UnmarshalJSON(b []byte) error {
	m.present = true
	if isNull(b) {
		m.null = true
		return nil
	}
	return json.Unmarshal(b, m.out)
}

// rawPagination is the pagination object with every member optional.
type rawPagination struct {
	Limit   *int  `json:"limit"`
	Offset  *int  `json:"offset"`
	Total   *int  `json:"total"`
	HasMore *bool `json:"has_more"`
}

// more says whether to fetch another page after one of got items asked with
// limit asked, next being the offset after it (§2).
func (p *rawPagination) more(next, got, asked int) bool {
	switch {
	case got == 0:
		return false
	case p != nil && p.HasMore != nil:
		return *p.HasMore
	case p != nil && p.Total != nil:
		return next < *p.Total
	default:
		return got >= asked
	}
}

// public converts p for callers; nil when the answer had none. A missing
// has_more is derived from total.
func (p *rawPagination) public(offset, got int) *Pagination {
	if p == nil {
		return nil
	}
	out := &Pagination{Limit: deref(p.Limit), Offset: offset, Total: deref(p.Total)}
	if p.Offset != nil {
		out.Offset = *p.Offset
	}
	switch {
	case p.HasMore != nil:
		out.HasMore = *p.HasMore
	case p.Total != nil:
		out.HasMore = out.Offset+got < *p.Total
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// decodeList decodes {"data": [T], "pagination": …}. A missing or null data is
// an empty list; a bare JSON array is accepted too.
func decodeList[T any](resp *response) ([]T, *rawPagination, error) {
	var items []T
	if b := bytes.TrimSpace(resp.body); len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &items); err != nil {
			return nil, nil, invalid(resp, "decoding list: %v", err)
		}
		return items, nil, nil
	}
	env := struct {
		Data       member         `json:"data"`
		Pagination *rawPagination `json:"pagination"`
	}{Data: member{out: &items}}
	if err := json.Unmarshal(resp.body, &env); err != nil {
		return nil, nil, invalid(resp, "decoding list envelope: %v", err)
	}
	return items, env.Pagination, nil
}

func isNull(b json.RawMessage) bool {
	return string(bytes.TrimSpace(b)) == "null"
}

// pageFunc fetches one page at limit and offset.
type pageFunc[T any] func(ctx context.Context, limit, offset int) ([]T, *rawPagination, error)

// eachPage applies the paging rules of §2 from offset on: keep going while
// has_more is true even after a short page, advance by the items received,
// stop on an empty page, on has_more=false, or without a pagination object
// on a short page.
func eachPage[T any](ctx context.Context, limit, offset int, fetch pageFunc[T], fn func([]T) error) error {
	for {
		var items []T
		var p *rawPagination
		err := retryPage(ctx, func() (err error) {
			items, p, err = fetch(ctx, limit, offset)
			return err
		})
		if err != nil {
			return err
		}
		if len(items) > 0 {
			if err := fn(items); err != nil {
				return err
			}
		}
		offset += len(items)
		if !p.more(offset, len(items), limit) {
			return nil
		}
	}
}

// collectUnique pages fetch from the start (eachPage) and returns every
// item once: one seen twice (the list shifted while paging) is kept once;
// items without an id are all kept.
func collectUnique[T any](ctx context.Context, limit int, fetch pageFunc[T], id func(T) string) ([]T, error) {
	var all []T
	seen := make(map[string]bool)
	err := eachPage(ctx, limit, 0, fetch, func(page []T) error {
		for _, it := range page {
			if k := id(it); k != "" {
				if seen[k] {
					continue
				}
				seen[k] = true
			}
			all = append(all, it)
		}
		return nil
	})
	return all, err
}

// pageRounds is how many rounds of the request's retries (§7) one page of a
// listing gets when the server keeps answering 5xx.
const pageRounds = 3

// retryPage fetches one page of a listing, again while it fails with a
// server error, up to pageRounds in all: the server answers, so a storm of
// 5xx passes, and a listing is what everything else waits on; the pages
// already received are kept. A server that does not answer at all fails
// after the first round (its request was retried already).
func retryPage(ctx context.Context, fetch func() error) error {
	var err error
	for range pageRounds {
		if err = fetch(); err == nil || !errors.Is(err, ErrServer) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// clampPage clamps a requested page size to (0, limit], 0 meaning limit.
func clampPage(n, limit int) int {
	if n <= 0 || n > limit {
		return limit
	}
	return n
}
