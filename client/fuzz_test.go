package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// fuzzResponse is a 200 answer carrying body, as decodeData and decodeList
// see it.
func fuzzResponse(body []byte) *response {
	u, _ := url.Parse("http://api.test/api/v1/developer/datasets/")
	return &response{req: &request{method: http.MethodGet, u: u}, status: http.StatusOK, header: http.Header{}, body: body}
}

// FuzzDecodeData checks that any object envelope decodes or fails with
// ErrServer (an unusable answer), never panics.
func FuzzDecodeData(f *testing.F) {
	for _, s := range []string{`{"data":{"id":"d1","name":"x","created_at":"2024-01-01T00:00:00Z"}}`, `{"data":null}`,
		`{"id":"d1"}`, `[]`, ``, `{"data":{"images":[{"id":"i","file_size":-1}]}}`, `{"data":{"created_at":"not a time"}}`,
		`{"data":{"classes":["a",{"name":"b"}]}}`, `{"data":1}`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var d Dataset
		if err := decodeData(fuzzResponse(body), &d); err != nil && !errors.Is(err, ErrServer) {
			t.Fatalf("decodeData(%q): got %v, want nil or ErrServer", body, err)
		}
		var org struct {
			Organization Organization `json:"organization"`
		}
		if err := decodeData(fuzzResponse(body), &org); err != nil && !errors.Is(err, ErrServer) {
			t.Fatalf("decodeData(%q) into an organization: got %v, want nil or ErrServer", body, err)
		}
	})
}

// FuzzDecodeList checks that any list envelope decodes or fails with
// ErrServer, and that its pagination never asks for a page after an empty
// one.
func FuzzDecodeList(f *testing.F) {
	for _, s := range []string{`{"data":[{"id":"a"}],"pagination":{"limit":1,"offset":0,"total":3,"has_more":true}}`,
		`{"data":[]}`, `{"data":null,"pagination":null}`, `[{"id":"a"}]`, `{}`, `{"pagination":{"has_more":"yes"}}`,
		`{"data":[{"id":"a"}],"pagination":{"total":-5}}`, `[`} {
		f.Add([]byte(s), 10, 0)
	}
	f.Fuzz(func(t *testing.T, body []byte, asked, offset int) {
		items, p, err := decodeList[Image](fuzzResponse(body))
		if err != nil {
			if !errors.Is(err, ErrServer) {
				t.Fatalf("decodeList(%q): got %v, want nil or ErrServer", body, err)
			}
			return
		}
		if len(items) == 0 && p.more(offset, 0, asked) {
			t.Fatalf("pagination of %q asks for more after an empty page", body)
		}
		p.public(offset, len(items))
	})
}

// FuzzEachPage runs the paging rules of §2 against a truthful server that
// clamps every page to a cap of its own, may send shorter pages still, and
// sends has_more, total, both or neither: the client must receive every item
// exactly once and in order.
func FuzzEachPage(f *testing.F) {
	f.Add(uint16(25), uint16(10), uint16(4), uint8(0), uint64(0))
	f.Add(uint16(1000), uint16(100), uint16(1000), uint8(1), uint64(7))
	f.Add(uint16(0), uint16(5), uint16(5), uint8(2), uint64(3))
	f.Add(uint16(30), uint16(10), uint16(10), uint8(3), uint64(1))
	f.Fuzz(func(t *testing.T, n, limit, serverCap uint16, mode uint8, short uint64) {
		total, asked, clamp := int(n%5000), int(limit%1000)+1, int(serverCap%1000)+1
		if mode%4 == 3 {
			clamp = asked // without a pagination object, only a full page says there is more
			short = 0
		}
		pages := 0
		fetch := func(ctx context.Context, lim, off int) ([]int, *rawPagination, error) {
			pages++
			if pages > 2*total+2 {
				t.Fatalf("%d pages for %d items: the client does not stop", pages, total)
			}
			k := min(lim, clamp, max(total-off, 0))
			if k > 1 && short&1 == 1 {
				k-- // a short page in the middle
			}
			short >>= 1
			items := make([]int, k)
			for i := range items {
				items[i] = off + i
			}
			more := off+k < total
			var p *rawPagination
			switch mode % 4 {
			case 0:
				p = &rawPagination{HasMore: &more}
			case 1:
				p = &rawPagination{Total: &total}
			case 2:
				p = &rawPagination{HasMore: &more, Total: &total}
			}
			return items, p, nil
		}
		var got []int
		err := eachPage(context.Background(), asked, 0, fetch, func(page []int) error {
			got = append(got, page...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != total {
			t.Fatalf("got %d items of %d (limit %d, cap %d, mode %d)", len(got), total, asked, clamp, mode%4)
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("item %d is %d: skipped or repeated", i, v)
			}
		}
	})
}

// FuzzRetryAfter checks that any Retry-After value parses to a wait that is
// never negative, and that delta-seconds mean what they say.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "0", "-1", "1.5", "NaN", "Inf", "1e400", "Sat, 01 Mar 2025 12:01:30 GMT",
		"Mon, 02 Jan 2006 15:04:05 GMT", "soon", "", " 12 ", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if !ok {
			if d != 0 {
				t.Fatalf("parseRetryAfter(%q) = %v, false; want 0 when not ok", v, d)
			}
			return
		}
		if d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, a negative wait", v, d)
		}
		if secs, err := strconv.Atoi(v); err == nil && secs >= 0 && secs < 1e6 && d != time.Duration(secs)*time.Second {
			t.Fatalf("parseRetryAfter(%q) = %v, want %ds", v, d, secs)
		}
		if d2, _ := parseRetryAfter(v, now); d2 != d {
			t.Fatalf("parseRetryAfter(%q) is not deterministic: %v then %v", v, d, d2)
		}
	})
}

// FuzzErrorBody checks that any error body yields an *APIError that keeps
// its status's sentinel and renders without panicking.
func FuzzErrorBody(f *testing.F) {
	for _, s := range []string{`{"error":{"code":"not_found","message":"no","details":{"errors":[{"loc":["body","name"],"msg":"bad"}]}},"detail":"no"}`,
		`{"detail":[{"loc":["query",1],"msg":"x"}]}`, `{"error":"plain"}`, `not json`, `{"error":{"details":[1,2]}}`,
		`{"detail":{"code":"rate_limited"}}`, ``} {
		f.Add([]byte(s), 404)
	}
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		status = 400 + (status%200+200)%200
		e := &APIError{Status: status}
		parseErrorBody(e, body)
		_ = e.Error()
		if want := statusSentinel(status); want != nil && !errors.Is(e, want) {
			t.Fatalf("error with status %d and body %q does not match %v", status, body, want)
		}
	})
}
