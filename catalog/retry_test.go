package catalog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pictofs/pictofs/blobcache"
	"github.com/pictofs/pictofs/client"
)

// TestRetryableFetch classifies the errors a real client returns from real
// HTTP exchanges, as a fetch sees them: the classification depends on how
// the client wraps what it already retried.
func TestRetryableFetch(t *testing.T) {
	// cutBody answers with a full Content-Length, sends half and hangs up.
	cutBody := func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 50))
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	tests := []struct {
		name    string
		handler func(srv *httptest.Server) http.HandlerFunc // nil: nothing listens
		fetch   func(ctx context.Context, api *client.Client, base string) error
		want    bool
	}{
		{
			name:  "connection refused in every attempt",
			fetch: openSigned,
			want:  false,
		},
		{
			name: "503 in every attempt",
			handler: func(*httptest.Server) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }
			},
			fetch: func(ctx context.Context, api *client.Client, _ string) error {
				_, err := api.AnnotationFile(ctx, "img-1")
				return err
			},
			want: true,
		},
		{
			name: "404",
			handler: func(*httptest.Server) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
			},
			fetch: openSigned,
			want:  false,
		},
		{
			name: "body cut short on the byte route",
			handler: func(*httptest.Server) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { cutBody(w) }
			},
			fetch: openByteRoute,
			want:  true,
		},
		{
			name: "signed-URL body cut short, then its resume refused",
			handler: func(srv *httptest.Server) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					srv.Listener.Close()
					cutBody(w)
				}
			},
			fetch: openSigned,
			want:  true,
		},
		{
			name: "body stalls on the byte route",
			handler: func(*httptest.Server) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", "100")
					w.WriteHeader(http.StatusOK)
					w.(http.Flusher).Flush()
					<-r.Context().Done()
				}
			},
			fetch: openByteRoute,
			want:  true,
		},
		{
			name: "blob shorter than listed",
			fetch: func(context.Context, *client.Client, string) error {
				return fmt.Errorf("fill: %w", blobcache.ErrShortBlob)
			},
			want: true,
		},
		{
			name:  "cancelled",
			fetch: func(context.Context, *client.Client, string) error { return fmt.Errorf("fetch: %w", context.Canceled) },
			want:  false,
		},
		{
			name: "request budget spent",
			fetch: func(context.Context, *client.Client, string) error {
				return fmt.Errorf("fetch: %w", client.ErrBudgetExceeded)
			},
			want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := "http://" + closedAddr(t)
			if tt.handler != nil {
				srv := httptest.NewUnstartedServer(nil)
				srv.Config.Handler = tt.handler(srv)
				srv.Start()
				t.Cleanup(srv.Close)
				base = srv.URL
			}
			api, err := client.New(client.Options{BaseURL: base, APIKey: "test-key", Timeout: 200 * time.Millisecond,
				Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = tt.fetch(ctx, api, base)
			if err == nil {
				t.Fatal("fetch: got nil error, want one")
			}
			if got := RetryableFetch(err); got != tt.want {
				t.Errorf("RetryableFetch(%v): got %v, want %v", err, got, tt.want)
			}
		})
	}
}

// openSigned and openByteRoute read a blob through a signed URL and through
// the authenticated byte route.
func openSigned(ctx context.Context, api *client.Client, base string) error {
	rc, n, err := api.OpenSigned(ctx, base+"/blob?signature=x", 0, -1)
	if err != nil {
		return err
	}
	return copyBody(io.Discard, rc, n)
}

func openByteRoute(ctx context.Context, api *client.Client, _ string) error {
	rc, n, err := api.OpenImage(ctx, "ds", "/", "a.jpg", 0, -1)
	if err != nil {
		return err
	}
	return copyBody(io.Discard, rc, n)
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
