package main

import (
	"io"
	"net/http"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/internal/metrics"
)

// observeClient makes the client report its requests to met: every API and
// storage attempt (client.Options.OnRequest), and the bytes received from
// storage (a transport that counts body bytes).
func observeClient(opts *client.Options, met *metrics.Metrics) {
	opts.OnRequest = func(ev client.RequestEvent) { met.ObserveRequest(metrics.RequestEvent(ev)) }
	opts.StorageClient = &http.Client{Transport: &countingTransport{base: client.NewStorageTransport(), met: met}}
}

// countingTransport counts the body bytes of storage answers.
type countingTransport struct {
	base http.RoundTripper
	met  *metrics.Metrics
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if resp != nil {
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
