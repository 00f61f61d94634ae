package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// apiProxy sits between the mounts and the devserver's API and counts every
// API request a mount makes, by kind: the harness's own count of what a
// mount spends of the hourly budget, whatever the mount logs. Signed
// storage URLs point at the storage host directly and are not counted: they
// cost no API request. The devserver builds the URLs it returns (the byte
// route among them) from the Host it was asked on, so the proxy passes the
// caller's Host on and those URLs lead back through it.
type apiProxy struct {
	url string
	srv *http.Server

	mu     sync.Mutex
	counts requestCounts // guarded by mu
}

// requestCounts is API requests by kind (see requestKind).
type requestCounts map[string]int64

func (c requestCounts) total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// minus is c - before, kind by kind.
func (c requestCounts) minus(before requestCounts) requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// String is "total (kind n, kind n, …)", kinds in order.
func (c requestCounts) String() string {
	if len(c) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
	}
	return fmt.Sprintf("%d (%s)", c.total(), strings.Join(parts, ", "))
}

// requestKind classifies an API request path (below the API prefix):
// "annotation" (a per-image document), "image bytes" (the authenticated
// byte route), "download listing" (signed URLs), "export", "listing"
// (datasets and images lists, dataset metadata) or "other".
func requestKind(method, p string) string {
	rest, ok := strings.CutPrefix(p, apiPrefix)
	if !ok {
		return "other"
	}
	seg := strings.Split(rest, "/")
	switch {
	case seg[0] == "annotations":
		return "annotation"
	case seg[0] == "images" && len(seg) > 2 && method == http.MethodGet:
		return "image bytes"
	case seg[0] == "exports" || (seg[0] == "datasets" && len(seg) > 2 && seg[2] == "exports"):
		return "export"
	case seg[0] == "datasets" && len(seg) > 2 && seg[2] == "download":
		return "download listing"
	case (seg[0] == "datasets" || seg[0] == "images") && method == http.MethodGet:
		return "listing"
	default:
		return "other"
	}
}

func startAPIProxy(target string) (*apiProxy, error) {
	tu, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("api proxy: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("api proxy: listen: %w", err)
	}
	p := &apiProxy{url: "http://" + ln.Addr().String(), counts: requestCounts{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(tu)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute,
			DisableCompression: true, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
		FlushInterval: -1,
		// A reader that hangs up mid-body is the mount's business.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := requestKind(r.Method, r.URL.Path)
			p.mu.Lock()
			p.counts[k]++
			p.mu.Unlock()
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "bench: api proxy: %v\n", err)
		}
	}()
	return p, nil
}

// snapshot is a copy of the counts so far.
func (p *apiProxy) snapshot() requestCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.counts)
}

func (p *apiProxy) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("api proxy: shutdown: %w", errors.Join(err, p.srv.Close()))
	}
	return nil
}
