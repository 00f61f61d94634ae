package main

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/internal/metrics"
)

// observeClient makes the client report its requests to met: every API and
// storage attempt, and the bytes received from storage.
//
// TEMPORARY in part, until client.Options.OnRequest (branch contract) is
// merged. Then:
//
//	opts.OnRequest = func(ev client.RequestEvent) { met.ObserveRequest(metrics.RequestEvent(ev)) }
//
// (the two event types have the same fields, so the conversion compiles);
// opts.HTTPClient is no longer set and routeOf goes; the storage transport
// stays but only counts body bytes (OnRequest reports storage attempts).
func observeClient(opts *client.Options, met *metrics.Metrics) {
	opts.HTTPClient = &http.Client{Transport: &observedTransport{base: clientTransport(64, false), met: met}}
	opts.StorageClient = &http.Client{Transport: &observedTransport{base: clientTransport(256, true), met: met, storage: true}}
}

// clientTransport is the client's own default transport (client.newTransport).
func clientTransport(perHost int, noCompression bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2 * perHost
	t.MaxIdleConnsPerHost = perHost
	t.DisableCompression = noCompression
	return t
}

// observedTransport reports each round trip and counts storage body bytes.
type observedTransport struct {
	base    http.RoundTripper
	met     *metrics.Metrics
	storage bool
}

func (t *observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	ev := metrics.RequestEvent{Route: req.Method + " {signed_url}", Storage: t.storage, Duration: time.Since(start), Err: err}
	if !t.storage {
		ev.Route = routeOf(req.Method, req.URL.Path)
	}
	if resp != nil {
		ev.Status = resp.StatusCode
	}
	switch ev.Status {
	case 0, 408, 429, 500, 502, 503, 504:
		ev.Retry = true // the client may retry; it alone knows
	}
	t.met.ObserveRequest(ev)
	if t.storage && resp != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, met: t.met}
	}
	return resp, err
}

// countingBody counts the bytes read from a storage body.
type countingBody struct {
	io.ReadCloser
	met *metrics.Metrics
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.met.CountStorageBytes(n)
	return n, err
}

// routeOf is the contract's route pattern of an API path, as
// client.RequestEvent.Route names it: "GET /datasets/{dataset}/download".
func routeOf(method, path string) string {
	segs := strings.Split(strings.Trim(strings.TrimPrefix(path, client.APIPrefix), "/"), "/")
	var p string
	switch {
	case len(segs) == 1:
		p = "/" + segs[0] + "/"
	case segs[0] == "organizations":
		p = "/organizations/me"
	case segs[0] == "datasets":
		p = "/datasets/{dataset}"
		if len(segs) > 2 {
			p += "/" + segs[2]
		}
	case segs[0] == "images" && len(segs) == 2:
		p = "/images/" + segs[1]
	case segs[0] == "images":
		p = "/images/{dataset}/{image_path}"
	case segs[0] == "annotations" && len(segs) == 2:
		p = "/annotations/" + segs[1]
	case segs[0] == "annotations" && method == http.MethodGet && len(segs) == 3 && segs[2] == "file":
		p = "/annotations/{image_id}/file"
	case segs[0] == "annotations":
		p = "/annotations/{dataset}/{image_path}"
	case segs[0] == "exports" && segs[1] == "bulk-delete":
		p = "/exports/bulk-delete"
	case segs[0] == "exports":
		p = "/exports/{export}"
		if len(segs) > 2 {
			p += "/" + segs[2]
		}
	default:
		p = "{unknown}"
	}
	return method + " " + p
}
