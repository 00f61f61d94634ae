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
// merged. Then the API side becomes
//
//	opts.OnRequest = func(ev client.RequestEvent) { met.ObserveRequest(metrics.RequestEvent(ev)) }
//
// and apiTransport and routeOf go; the storage transport stays, counting
// bytes only (OnRequest reports the storage attempts).
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
	ev := metrics.RequestEvent{Storage: t.storage, Duration: time.Since(start), Err: err}
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

// routeLiterals are the path segments of the contract's routes that are not
// parameters.
var routeLiterals = map[string]bool{
	"datasets": true, "images": true, "annotations": true, "organizations": true, "me": true,
	"download": true, "file": true, "upload-url": true, "register": true, "exports": true, "bulk": true,
}

// routeOf is the route pattern of an API path: "GET /datasets/{param}/download".
func routeOf(method, path string) string {
	path = strings.TrimPrefix(path, client.APIPrefix)
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var b strings.Builder
	for i, s := range segs {
		switch {
		case routeLiterals[s] && !(i > 0 && segs[0] == "images"):
			b.WriteString("/" + s)
		case segs[0] == "images" && i >= 2:
			if i == 2 {
				b.WriteString("/{path...}")
			}
		default:
			b.WriteString("/{param}")
		}
	}
	if strings.HasSuffix(path, "/") {
		b.WriteString("/")
	}
	return method + " " + b.String()
}
