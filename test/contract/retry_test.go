package contract

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// TestRetryInjected503 fails the first k attempts of a call with the
// devserver's FailRate 1.0 and clears it from the client's Sleep: the call
// succeeds after k retries (or fails after 4 attempts), every attempt reaches
// the server, and the waits follow the backoff of §7 (jitter factor 1).
func TestRetryInjected503(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	if _, err := srv.CreateDataset(ctx, srv.DefaultOrg(), devserver.CreateDatasetRequest{Name: "ds"}); err != nil {
		t.Fatal(err)
	}
	backoff := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for _, tt := range []struct {
		name     string
		failures int
		call     func(ctx context.Context, c *tc) error
	}{
		{"GET ok at once", 0, get("ds")},
		{"GET after 1 retry", 1, get("ds")},
		{"GET after 3 retries", 3, get("ds")},
		{"GET fails after 4 attempts", 4, get("ds")},
		{"POST create after 2 retries", 2, create("made-after-retries")},
		{"PATCH after 1 retry", 1, func(ctx context.Context, c *tc) error {
			desc := "patched"
			_, err := c.UpdateDataset(ctx, "ds", client.UpdateDatasetRequest{Description: &desc})
			return err
		}},
		{"DELETE after 3 retries", 3, remove("made-after-retries")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetFaults(devserver.Faults{FailRate: 1})
			defer srv.SetFaults(devserver.Faults{})
			srv.ResetStats()
			c := newClient(t, srv, srv.AdminKey(), func(_ *client.Options, _ *recorder, sl *sleeps) {
				sl.after = func(n int) {
					if n == tt.failures {
						srv.SetFaults(devserver.Faults{})
					}
				}
			})
			if tt.failures == 0 {
				srv.SetFaults(devserver.Faults{})
			}
			err := tt.call(ctx, c)
			attempts := min(tt.failures+1, 4)
			if tt.failures >= 4 {
				ae := wantAPIError(t, c, err, client.ErrServer, 503, "service_unavailable")
				if ae.Attempts != 4 {
					t.Errorf("Attempts: got %d, want 4", ae.Attempts)
				}
			} else if err != nil {
				t.Fatalf("got %v, want success after %d retries", err, tt.failures)
			}
			st := srv.Stats()
			if c.APIRequests() != int64(attempts) || st.APIRequests != int64(attempts) {
				t.Errorf("got %d attempts sent and %d received, want %d", c.APIRequests(), st.APIRequests, attempts)
			}
			if want := int64(min(tt.failures, 4)); st.Injected503 != want {
				t.Errorf("got %d injected 503s, want %d", st.Injected503, want)
			}
			waits := c.sleeps.all()
			if want := backoff[:attempts-1]; !equalDurations(waits, want) {
				t.Errorf("waits: got %v, want %v", waits, want)
			}
			keys := map[string]bool{}
			for _, ex := range c.rec.all() {
				keys[ex.IdempotencyKey] = true
			}
			if len(keys) != 1 {
				t.Errorf("got Idempotency-Keys %v over the attempts, want one (the same on every retry)", keys)
			}
		})
	}
	admin := newClient(t, srv, srv.AdminKey())
	if _, err := admin.GetDataset(ctx, "made-after-retries"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("the dataset created then deleted through retries: got %v, want ErrNotFound", err)
	}
	d, err := admin.GetDataset(ctx, "ds")
	if err != nil || d.Description != "patched" {
		t.Errorf("got %+v, %v; want description patched", d, err)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRetryFailRateHalf runs many calls against FailRate 0.5: each call
// either succeeds within 4 attempts or fails with 503 after exactly 4, and
// the attempts the client counts are the requests the server counts.
func TestRetryFailRateHalf(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	if _, err := srv.CreateDataset(ctx, srv.DefaultOrg(), devserver.CreateDatasetRequest{Name: "ds"}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv, srv.MemberKey())
	srv.SetFaults(devserver.Faults{FailRate: 0.5})
	defer srv.SetFaults(devserver.Faults{})
	srv.ResetStats()
	const calls = 40
	var ok, failed, retried, attempts int64
	for range calls {
		before := c.APIRequests()
		_, err := c.GetDataset(ctx, "ds")
		n := c.APIRequests() - before
		attempts += n
		switch {
		case err == nil:
			ok++
			if n > 1 {
				retried++
			}
			if n < 1 || n > 4 {
				t.Errorf("a call succeeded after %d attempts, want 1 to 4", n)
			}
		case errors.Is(err, client.ErrServer):
			failed++
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Attempts != 4 || n != 4 {
				t.Errorf("a call failed after %d attempts (%v), want 4", n, err)
			}
		default:
			t.Fatalf("got %v, want success or ErrServer", err)
		}
	}
	st := srv.Stats()
	if st.APIRequests != attempts {
		t.Errorf("the server received %d requests, the client sent %d", st.APIRequests, attempts)
	}
	if want := attempts - ok; st.Injected503 != want {
		t.Errorf("got %d injected 503s, want %d (attempts %d - successes %d)", st.Injected503, want, attempts, ok)
	}
	if got, want := int64(len(c.sleeps.all())), st.Injected503-failed; got != want {
		t.Errorf("got %d waits, want one per 503 but the last of a failed call: %d", got, want)
	}
	if retried == 0 {
		t.Errorf("no call succeeded after a retry in %d calls", calls)
	}
	t.Logf("FailRate 0.5: %d calls, %d attempts, %d succeeded (%d after retries), %d failed", calls, attempts, ok, retried, failed)
}

// TestRetryAfterHonoured: the per-key budget of the devserver answers 429
// with Retry-After; the client waits at least that long (and at least its
// backoff) and then succeeds.
func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{RequestsPerHour: 2, RateWindow: 2 * time.Second})
	c := newClient(t, srv, srv.MemberKey(), func(o *client.Options, _ *recorder, sl *sleeps) {
		sl.real = true
		o.Jitter = func() float64 { return 0 } // backoff 0.75 s, below any Retry-After
	})
	// The third call of a window gets the 429; a slow machine may need a
	// few more calls to fit three in one window.
	var retryAfter []time.Duration
	for i := 0; i < 8 && len(retryAfter) == 0; i++ {
		if _, err := c.Me(ctx); err != nil {
			t.Fatalf("Me #%d: %v", i+1, err)
		}
		for _, ex := range c.rec.all() {
			if ex.Status == http.StatusTooManyRequests {
				secs, err := strconv.Atoi(ex.RetryAfter)
				if err != nil {
					t.Fatalf("429 with Retry-After %q, want seconds", ex.RetryAfter)
				}
				retryAfter = append(retryAfter, time.Duration(secs)*time.Second)
			}
		}
	}
	waits := c.sleeps.all()
	if len(retryAfter) == 0 || len(waits) != len(retryAfter) {
		t.Fatalf("got 429s with Retry-After %v and waits %v, want one wait per 429", retryAfter, waits)
	}
	for i, ra := range retryAfter {
		if waits[i] < ra || waits[i] < 750*time.Millisecond {
			t.Errorf("wait %d: got %v, want at least Retry-After %v and the backoff 750ms", i, waits[i], ra)
		}
	}
	st := srv.Stats()
	if st.Status429 != int64(len(retryAfter)) || st.APIRequests != c.APIRequests() {
		t.Errorf("server: %d 429s and %d requests; client: %d 429s and %d requests", st.Status429, st.APIRequests, len(retryAfter), c.APIRequests())
	}
}

// TestRetryAfterTooLong: a Retry-After over 120 s is given back at once.
func TestRetryAfterTooLong(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{RequestsPerHour: 1})
	c := newClient(t, srv, srv.MemberKey())
	if _, err := c.Me(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.Me(ctx)
	ae := wantAPIError(t, c, err, client.ErrRateLimited, 429, "rate_limited")
	if ae.RetryAfter <= 120*time.Second || ae.Attempts != 1 {
		t.Errorf("got RetryAfter %v after %d attempts, want over 120s after 1", ae.RetryAfter, ae.Attempts)
	}
	noRetries(t, c)
	if st := srv.Stats(); st.APIRequests != 2 || st.Status429 != 1 {
		t.Errorf("server: got %d requests and %d 429s, want 2 and 1", st.APIRequests, st.Status429)
	}
}

var idemKeyRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestIdempotentReplay loses the first response of a POST or PATCH after
// the server processed it: the client retries with the same
// Idempotency-Key, the server replays its first answer, and the change is
// made exactly once.
func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	if _, err := srv.CreateDataset(ctx, srv.DefaultOrg(), devserver.CreateDatasetRequest{Name: "existing"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		method string
		path   string // suffix of the request path whose first answer is lost
		call   func(ctx context.Context, c *tc) (id string, err error)
		check  func(ctx context.Context, c *tc) error
	}{
		{"create dataset", http.MethodPost, "/datasets/", func(ctx context.Context, c *tc) (string, error) {
			d, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "once"})
			if err != nil {
				return "", err
			}
			return d.ID, nil
		}, func(ctx context.Context, c *tc) error {
			all, err := c.AllDatasets(ctx)
			n := 0
			for _, d := range all {
				if d.Name == "once" {
					n++
				}
			}
			if err == nil && n != 1 {
				err = errors.New("got " + strconv.Itoa(n) + " datasets named once, want 1")
			}
			return err
		}},
		{"rename dataset", http.MethodPatch, "/datasets/existing", func(ctx context.Context, c *tc) (string, error) {
			to := "renamed"
			d, err := c.UpdateDataset(ctx, "existing", client.UpdateDatasetRequest{NewName: &to})
			if err != nil {
				return "", err
			}
			return d.ID, nil
		}, func(ctx context.Context, c *tc) error {
			_, err := c.GetDataset(ctx, "renamed")
			return err
		}},
		{"register image", http.MethodPost, "/images/register", func(ctx context.Context, c *tc) (string, error) {
			im, err := c.UploadImage(ctx, "once", "/", "a.png", "image/png", tinyPNG(t, 3, 2), 3, 2)
			if err != nil {
				return "", err
			}
			return im.ID, nil
		}, func(ctx context.Context, c *tc) error {
			imgs, _, err := c.ListImages(ctx, client.ImageQuery{Dataset: "once"})
			if err == nil && len(imgs) != 1 {
				err = errors.New("got " + strconv.Itoa(len(imgs)) + " images, want 1")
			}
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var lost bool
			c := newClient(t, srv, srv.AdminKey(), func(_ *client.Options, rec *recorder, _ *sleeps) {
				rec.drop = func(r *http.Request) bool {
					if lost || r.Method != tt.method || !strings.HasSuffix(r.URL.Path, tt.path) {
						return false
					}
					lost = true
					return true
				}
			})
			id, err := tt.call(ctx, c)
			if err != nil {
				t.Fatalf("got %v, want success after the lost response", err)
			}
			var matching []exchange
			for _, ex := range c.rec.all() {
				if ex.Method == tt.method && strings.HasSuffix(ex.Path, tt.path) {
					matching = append(matching, ex)
				}
			}
			if len(matching) != 2 {
				t.Fatalf("got %d %s %s requests, want 2 (the lost one and its retry)", len(matching), tt.method, tt.path)
			}
			first, retry := matching[0], matching[1]
			if !idemKeyRE.MatchString(first.IdempotencyKey) || retry.IdempotencyKey != first.IdempotencyKey {
				t.Errorf("Idempotency-Key: got %q then %q, want the same 32 lowercase hex", first.IdempotencyKey, retry.IdempotencyKey)
			}
			if first.Status >= 300 || retry.Status != first.Status || first.Replayed || !retry.Replayed {
				t.Errorf("got %d (replayed %v) then %d (replayed %v), want a success replayed", first.Status, first.Replayed, retry.Status, retry.Replayed)
			}
			var env struct {
				Data struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			if len(c.rec.dropped) != 1 || json.Unmarshal(c.rec.dropped[0], &env) != nil || env.Data.ID != id {
				t.Errorf("got id %s, want the id %q of the lost answer", id, env.Data.ID)
			}
			if waits := c.sleeps.all(); len(waits) != 1 {
				t.Errorf("got waits %v, want one retry", waits)
			}
			if err := tt.check(ctx, c); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestClientBudget: over RequestsPerHour, a call fails with
// ErrBudgetExceeded and sends nothing; retries count against the budget.
func TestClientBudget(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	c := newClient(t, srv, srv.MemberKey(), func(o *client.Options, _ *recorder, _ *sleeps) { o.RequestsPerHour = 3 })
	count := requests(c, srv)
	for i := range 3 {
		if _, err := c.Me(ctx); err != nil {
			t.Fatalf("Me #%d: %v", i+1, err)
		}
	}
	for _, call := range []func(context.Context, *tc) error{
		func(ctx context.Context, c *tc) error { _, err := c.Me(ctx); return err },
		get("anything"),
		create("anything"),
	} {
		if err := call(ctx, c); !errors.Is(err, client.ErrBudgetExceeded) {
			t.Errorf("over the budget: got %v, want ErrBudgetExceeded", err)
		}
	}
	wantRequests(t, "with a budget of 3", count, 3)

	failing := testenv.StartServer(t, devserver.Options{FailRate: 1})
	c = newClient(t, failing, failing.MemberKey(), func(o *client.Options, _ *recorder, _ *sleeps) { o.RequestsPerHour = 2 })
	count = requests(c, failing)
	if _, err := c.Me(ctx); !errors.Is(err, client.ErrBudgetExceeded) {
		t.Errorf("retries over the budget: got %v, want ErrBudgetExceeded", err)
	}
	wantRequests(t, "retries with a budget of 2", count, 2)
}
