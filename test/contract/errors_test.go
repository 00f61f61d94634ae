package contract

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pictofs/pictofs/client"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
)

// withBody replaces the JSON body of the client's requests to path.
func withBody(path, body string) func(*client.Options, *recorder, *sleeps) {
	return func(_ *client.Options, rec *recorder, _ *sleeps) {
		rec.rewrite = func(r *http.Request) *http.Request {
			if !strings.HasSuffix(r.URL.Path, path) {
				return r
			}
			r = r.Clone(r.Context())
			r.Body = io.NopCloser(strings.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
			r.ContentLength = int64(len(body))
			return r
		}
	}
}

// withQuery adds key=value to the query of the client's requests.
func withQuery(key, value string) func(*client.Options, *recorder, *sleeps) {
	return func(_ *client.Options, rec *recorder, _ *sleeps) {
		rec.rewrite = func(r *http.Request) *http.Request {
			r = r.Clone(r.Context())
			q := r.URL.Query()
			q.Set(key, value)
			r.URL.RawQuery = q.Encode()
			return r
		}
	}
}

// TestErrorMapping checks every status of §6 as the client returns it:
// the sentinel with errors.Is, and an *APIError with status, code, message
// and request id, against the devserver's real answers.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{})
	org := srv.DefaultOrg()
	for _, name := range []string{"alpha", "beta"} {
		if _, err := srv.CreateDataset(ctx, org, devserver.CreateDatasetRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	orgB, err := srv.CreateOrganization(ctx, "Other")
	if err != nil {
		t.Fatal(err)
	}
	other, err := srv.CreateDataset(ctx, orgB, devserver.CreateDatasetRequest{Name: "theirs"})
	if err != nil {
		t.Fatal(err)
	}
	key := func(role string) string {
		k, err := srv.CreateKey(ctx, org, role)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	viewer, annotator := key("viewer"), key("annotator")
	planSrv := testenv.StartServer(t, devserver.Options{MaxDatasetsPerOrg: 2})
	for _, name := range []string{"one", "two"} {
		if _, err := planSrv.CreateDataset(ctx, planSrv.DefaultOrg(), devserver.CreateDatasetRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	budgetSrv := testenv.StartServer(t, devserver.Options{RequestsPerHour: 1})
	failSrv := testenv.StartServer(t, devserver.Options{FailRate: 1})

	type mod = func(*client.Options, *recorder, *sleeps)
	for _, tt := range []struct {
		name     string
		srv      *devserver.Server
		key      string // default: the admin key
		mod      mod
		call     func(ctx context.Context, c *tc) error
		status   int
		sentinel error
		code     string
		attempts int // default 1
		sent     int // requests sent in all; default attempts
	}{
		{name: "400 name with slash", call: create("a/b"), status: 400, sentinel: client.ErrValidation, code: "bad_request"},
		{name: "400 malformed body", mod: withBody("/datasets/", `{"name": "x"`), call: create("x"),
			status: 400, sentinel: client.ErrValidation, code: "bad_request"},
		{name: "422 body of the wrong type", mod: withBody("/datasets/", `{"name": 5}`), call: create("x"),
			status: 422, sentinel: client.ErrValidation, code: "validation_error"},
		{name: "422 class without a name", call: func(ctx context.Context, c *tc) error {
			_, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: "x", Classes: []client.Class{{Color: "#fff"}}})
			return err
		}, status: 422, sentinel: client.ErrValidation, code: "validation_error"},
		{name: "422 /images/ without dataset", call: func(ctx context.Context, c *tc) error {
			_, _, err := c.ListImages(ctx, client.ImageQuery{})
			return err
		}, status: 422, sentinel: client.ErrValidation, code: "validation_error"},
		{name: "400 unknown /images/ query key", mod: withQuery("colour", "red"), call: func(ctx context.Context, c *tc) error {
			_, _, err := c.ListImages(ctx, client.ImageQuery{Dataset: "alpha"})
			return err
		}, status: 400, sentinel: client.ErrValidation, code: "bad_request"},
		{name: "400 unknown status_filter", call: func(ctx context.Context, c *tc) error {
			_, err := c.DownloadListing(ctx, "alpha", client.DownloadOptions{StatusFilter: "done"})
			return err
		}, status: 400, sentinel: client.ErrValidation, code: "bad_request"},
		{name: "400 unknown /images/ status", call: func(ctx context.Context, c *tc) error {
			_, _, err := c.ListImages(ctx, client.ImageQuery{Dataset: "alpha", Status: "done"})
			return err
		}, status: 400, sentinel: client.ErrValidation, code: "bad_request"},
		{name: "401 bad key", key: "pk_live_00000000000000000000000000000000", call: func(ctx context.Context, c *tc) error {
			_, err := c.Me(ctx)
			return err
		}, status: 401, sentinel: client.ErrUnauthorized, code: "unauthorized"},
		{name: "401 bad key on a list", key: "pk_live_nope", call: func(ctx context.Context, c *tc) error {
			_, err := c.AllDatasets(ctx)
			return err
		}, status: 401, sentinel: client.ErrUnauthorized, code: "unauthorized"},
		{name: "402 plan's dataset cap", srv: planSrv, call: create("three"),
			status: 402, sentinel: client.ErrPaymentRequired, code: "insufficient_credits"},
		{name: "403 viewer creates", key: viewer, call: create("x"), status: 403, sentinel: client.ErrForbidden, code: "forbidden"},
		{name: "403 annotator renames", key: annotator, call: rename("alpha", "gamma"),
			status: 403, sentinel: client.ErrForbidden, code: "forbidden"},
		{name: "403 viewer deletes", key: viewer, call: remove("alpha"), status: 403, sentinel: client.ErrForbidden, code: "forbidden"},
		{name: "403 annotator deletes", key: annotator, call: remove("alpha"), status: 403, sentinel: client.ErrForbidden, code: "forbidden"},
		{name: "403 member deletes", key: srv.MemberKey(), call: remove("alpha"), status: 403, sentinel: client.ErrForbidden, code: "forbidden"},
		{name: "404 unknown dataset", call: get("nope"), status: 404, sentinel: client.ErrNotFound, code: "not_found"},
		{name: "404 other organization's by name", call: get("theirs"), status: 404, sentinel: client.ErrNotFound, code: "not_found"},
		{name: "404 other organization's by id", call: get(other.ID), status: 404, sentinel: client.ErrNotFound, code: "not_found"},
		{name: "404 delete unknown", call: remove("nope"), status: 404, sentinel: client.ErrNotFound, code: "not_found"},
		{name: "409 duplicate create", call: create("alpha"), status: 409, sentinel: client.ErrConflict, code: "conflict"},
		{name: "409 rename onto existing", call: rename("alpha", "beta"), status: 409, sentinel: client.ErrConflict, code: "conflict"},
		{name: "429 budget", srv: budgetSrv, call: func(ctx context.Context, c *tc) error {
			if _, err := c.Me(ctx); err != nil {
				return err
			}
			_, err := c.Me(ctx)
			return err
		}, status: 429, sentinel: client.ErrRateLimited, code: "rate_limited", sent: 2},
		{name: "503 FailRate 1", srv: failSrv, call: get("alpha"), status: 503, sentinel: client.ErrServer,
			code: "service_unavailable", attempts: 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := srv
			if tt.srv != nil {
				s = tt.srv
			}
			k := tt.key
			if k == "" {
				k = s.AdminKey()
			}
			var mods []mod
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			c := newClient(t, s, k, mods...)
			ae := wantAPIError(t, c, tt.call(ctx, c), tt.sentinel, tt.status, tt.code)
			attempts := max(tt.attempts, 1)
			sent := max(tt.sent, attempts)
			if ae.Attempts != attempts || len(c.rec.all()) != sent {
				t.Errorf("got %d attempts (%d requests sent), want %d (%d)", ae.Attempts, len(c.rec.all()), attempts, sent)
			}
		})
	}
	admin := newClient(t, srv, srv.AdminKey())
	all, err := admin.AllDatasets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range all {
		names = append(names, d.Name)
	}
	if got := strings.Join(names, ","); got != "alpha,beta" {
		t.Errorf("after the failed calls: got datasets %s, want alpha,beta unchanged", got)
	}
}

func create(name string) func(context.Context, *tc) error {
	return func(ctx context.Context, c *tc) error {
		_, err := c.CreateDataset(ctx, client.CreateDatasetRequest{Name: name})
		return err
	}
}

func rename(from, to string) func(context.Context, *tc) error {
	return func(ctx context.Context, c *tc) error {
		_, err := c.UpdateDataset(ctx, from, client.UpdateDatasetRequest{NewName: &to})
		return err
	}
}

func remove(name string) func(context.Context, *tc) error {
	return func(ctx context.Context, c *tc) error {
		_, err := c.DeleteDataset(ctx, name)
		return err
	}
}

func get(name string) func(context.Context, *tc) error {
	return func(ctx context.Context, c *tc) error {
		_, err := c.GetDataset(ctx, name)
		return err
	}
}

// TestErrorBodyIsRead: the message of the error is the server's, not the
// status text, and the 429 carries its Retry-After.
func TestErrorBodyIsRead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := testenv.StartServer(t, devserver.Options{RequestsPerHour: 1})
	c := newClient(t, srv, srv.AdminKey())
	_, err := c.GetDataset(ctx, "no such dataset")
	ae := wantAPIError(t, c, err, client.ErrNotFound, 404, "not_found")
	if !strings.Contains(ae.Message, "no such dataset") {
		t.Errorf("Message: got %q, want the server's message naming the dataset", ae.Message)
	}
	_, err = c.Me(ctx)
	ae = wantAPIError(t, c, err, client.ErrRateLimited, 429, "rate_limited")
	if ae.RetryAfter <= 0 || !bytes.Contains([]byte(ae.Error()), []byte("retry after")) {
		t.Errorf("429: got RetryAfter %v in %q, want the Retry-After header", ae.RetryAfter, ae.Error())
	}
}
