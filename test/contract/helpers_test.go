package contract

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// sleeps records the waits the client asks for between retries. By
// default it does not wait; with real set it sleeps for d (honouring ctx).
type sleeps struct {
	real  bool
	after func(n int) // called after the n-th wait (1-based), if set
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	n := len(s.waits)
	s.mu.Unlock()
	if s.after != nil {
		s.after(n)
	}
	if !s.real {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// exchange is one API round trip as the client's transport saw it.
type exchange struct {
	Method, Path, IdempotencyKey string
	Status                       int
	RequestID, RetryAfter        string
	Replayed                     bool
}

// recorder is the client's API transport: it records every exchange and
// lets a test rewrite a request or lose a response.
type recorder struct {
	base http.RoundTripper
	// rewrite, if set, may return a changed copy of the request.
	rewrite func(*http.Request) *http.Request
	// drop, if set and true for a request, sends it, reads the answer and
	// then fails the round trip as if the connection broke.
	drop func(*http.Request) bool

	mu        sync.Mutex
	exchanges []exchange
	dropped   [][]byte // bodies of the answers that drop threw away
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.rewrite != nil {
		req = r.rewrite(req)
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	ex := exchange{
		Method: req.Method, Path: req.URL.EscapedPath(), IdempotencyKey: req.Header.Get("Idempotency-Key"),
		Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id"),
		RetryAfter: resp.Header.Get("Retry-After"), Replayed: resp.Header.Get("Idempotent-Replayed") == "true",
	}
	r.mu.Lock()
	r.exchanges = append(r.exchanges, ex)
	r.mu.Unlock()
	if r.drop != nil && r.drop(req) {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r.mu.Lock()
		r.dropped = append(r.dropped, body)
		r.mu.Unlock()
		return nil, errors.New("connection reset by peer (the test dropped the response)")
	}
	return resp, nil
}

func (r *recorder) all() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.exchanges...)
}

func (r *recorder) last() exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.exchanges) == 0 {
		return exchange{}
	}
	return r.exchanges[len(r.exchanges)-1]
}

// tc is a client under test with its recorders.
type tc struct {
	*client.Client
	rec    *recorder
	sleeps *sleeps
	key    string
}

// newClient makes a client of srv with key. Its Sleep records and does not
// wait, Jitter is 0.5 (backoff factor 1), and its transport records; mod
// may change the options and the recorders before the client is made.
func newClient(t *testing.T, srv *devserver.Server, key string, mod ...func(*client.Options, *recorder, *sleeps)) *tc {
	t.Helper()
	rec := &recorder{base: http.DefaultTransport.(*http.Transport).Clone()}
	sl := &sleeps{}
	opts := client.Options{
		BaseURL: srv.APIURL(), APIKey: key,
		HTTPClient: &http.Client{Transport: rec},
		Jitter:     func() float64 { return 0.5 },
		Sleep:      sl.sleep,
		Logger:     slog.New(slog.DiscardHandler),
	}
	for _, m := range mod {
		m(&opts, rec, sl)
	}
	c, err := client.New(opts)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	t.Cleanup(func() { rec.base.(*http.Transport).CloseIdleConnections() })
	return &tc{Client: c, rec: rec, sleeps: sl, key: key}
}

// noRetries checks that the client never waited to retry.
func noRetries(t *testing.T, c *tc) {
	t.Helper()
	if w := c.sleeps.all(); len(w) != 0 {
		t.Errorf("client retried: waits %v, want none", w)
	}
}

// wantAPIError checks that err is the *APIError of status with code, that
// it matches sentinel, and that message and request id are set (the id
// being the X-Request-Id of the last answer).
func wantAPIError(t *testing.T, c *tc, err error, sentinel error, status int, code string) *client.APIError {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %d %s", status, code)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, %v) = false, want true", err, sentinel)
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %T %v, want a *client.APIError", err, err)
	}
	if ae.Status != status {
		t.Errorf("Status: got %d, want %d (%v)", ae.Status, status, err)
	}
	if ae.Code != code {
		t.Errorf("Code: got %q, want %q (%v)", ae.Code, code, err)
	}
	if ae.Message == "" {
		t.Errorf("Message: got empty, want the server's message (%v)", err)
	}
	if ae.RequestID == "" {
		t.Errorf("RequestID: got empty, want the X-Request-Id (%v)", err)
	}
	if c != nil && !ae.Storage {
		if want := c.rec.last().RequestID; ae.RequestID != want {
			t.Errorf("RequestID: got %q, want the last X-Request-Id %q", ae.RequestID, want)
		}
	}
	if c != nil && strings.Contains(err.Error(), c.key) {
		t.Errorf("error %q shows the API key", err)
	}
	return ae
}

// requests returns a function reporting the API requests the client sent
// and the server received since the call.
func requests(c *tc, srv *devserver.Server) func() (clientN, serverN int64) {
	c0, s0 := c.APIRequests(), srv.Stats().APIRequests
	return func() (int64, int64) { return c.APIRequests() - c0, srv.Stats().APIRequests - s0 }
}

// wantRequests checks that client and server both counted want requests.
func wantRequests(t *testing.T, what string, count func() (int64, int64), want int64) {
	t.Helper()
	cn, sn := count()
	if cn != want || sn != want {
		t.Errorf("%s: got %d requests sent and %d received, want %d", what, cn, sn, want)
	}
}

func readAll(t *testing.T, body io.ReadCloser, n int64, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if n >= 0 && int64(len(b)) != n {
		t.Errorf("got %d bytes, want the announced length %d", len(b), n)
	}
	return b
}

// big is a data directory holding a 25,000-image dataset, seeded once per
// test binary and copied by every test that uses it.
var big struct {
	once sync.Once
	dir  string
	id   string
	took time.Duration
	err  error
}

const (
	bigName   = "big"
	bigImages = 25000
)

// seedBig seeds the big dataset once; later calls wait for the first.
func seedBig() {
	big.once.Do(func() {
		start := time.Now()
		big.dir, big.err = os.MkdirTemp("", "pictofs-contract-big-")
		if big.err != nil {
			return
		}
		var srv *devserver.Server
		srv, big.err = devserver.New(context.Background(), devserver.Options{DataDir: big.dir})
		if big.err != nil {
			return
		}
		d, err := srv.SeedBulk(context.Background(), srv.DefaultOrg(), bigName, bigImages)
		big.err = errors.Join(err, srv.Close())
		if d != nil {
			big.id = d.ID
		}
		big.took = time.Since(start)
	})
}

func bigTemplate(t *testing.T) string {
	t.Helper()
	seedBig()
	if big.err != nil {
		t.Fatalf("seed the %d-image dataset: %v", bigImages, big.err)
	}
	t.Logf("the %d-image dataset was seeded in %v", bigImages, big.took.Round(time.Millisecond))
	return big.dir
}

// startBig starts a server on a copy of the 25,000-image data directory.
func startBig(t *testing.T, opts devserver.Options) (*devserver.Server, string) {
	t.Helper()
	tmpl := bigTemplate(t)
	opts.DataDir = t.TempDir()
	if err := copyDir(tmpl, opts.DataDir); err != nil {
		t.Fatalf("copy the data directory: %v", err)
	}
	return testenv.StartServer(t, opts), big.id
}

func copyDir(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
}

func ceilDiv(a, b int) int64 { return int64((a + b - 1) / b) }

// tinyPNG is a w×h PNG of noise (so that it does not compress away),
// different for every size.
func tinyPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{uint8(rng.Uint32()), uint8(rng.Uint32()), uint8(rng.Uint32()), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
