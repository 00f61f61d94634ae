package client

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

var allSentinels = []error{ErrNotFound, ErrConflict, ErrForbidden, ErrUnauthorized, ErrPaymentRequired,
	ErrRateLimited, ErrValidation, ErrServer, ErrNetwork, ErrTimeout, ErrBudgetExceeded, ErrURLExpired}

func TestStatusSentinels(t *testing.T) {
	tests := []struct {
		status  int
		storage bool
		want    []error
	}{
		{400, false, []error{ErrValidation}},
		{401, false, []error{ErrUnauthorized}},
		{402, false, []error{ErrPaymentRequired}},
		{403, false, []error{ErrForbidden}},
		{403, true, []error{ErrForbidden, ErrURLExpired}},
		{404, false, []error{ErrNotFound}},
		{408, false, []error{ErrTimeout}},
		{409, false, []error{ErrConflict}},
		{410, false, []error{ErrNotFound}},
		{422, false, []error{ErrValidation}},
		{429, false, []error{ErrRateLimited}},
		{500, false, []error{ErrServer}},
		{502, false, []error{ErrServer}},
		{503, true, []error{ErrServer}},
		{504, false, []error{ErrServer}},
		{418, false, nil},
	}
	for _, tt := range tests {
		e := &APIError{Status: tt.status, Storage: tt.storage}
		for _, s := range allSentinels {
			want := false
			for _, w := range tt.want {
				want = want || w == s
			}
			if got := errors.Is(e, s); got != want {
				t.Errorf("status %d (storage %v): got errors.Is(%v) = %v, want %v", tt.status, tt.storage, s, got, want)
			}
		}
	}
}

func TestConflictVariants(t *testing.T) {
	tests := []struct {
		e    *APIError
		want bool
	}{
		{&APIError{Status: 400, Message: "Image 'a.jpg' already exists in /train"}, true},
		{&APIError{Status: 400, Message: "limit must be positive"}, false},
		{&APIError{Status: 400, Message: "Export 'nightly' exists for dataset 'cars'"}, true},
		{&APIError{Status: 400, Message: "An export with this name already exists"}, true},
		{&APIError{Status: 400, Message: "Duplicate export name"}, true},
		{&APIError{Status: 400, Message: "Dataset 'cars' does not exist"}, false},
		{&APIError{Status: 400, Message: "dataset doesn't exist"}, false},
		{&APIError{Status: 422, Message: "already exists"}, false},
		{&APIError{Status: 400, Code: "conflict"}, true},
		{&APIError{Status: 409}, true},
	}
	for _, tt := range tests {
		if got := errors.Is(tt.e, ErrConflict); got != tt.want {
			t.Errorf("%v: got ErrConflict %v, want %v", tt.e, got, tt.want)
		}
	}
}

func TestErrorBodies(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantCode    string
		wantMsg     string
		wantFields  map[string]string
		wantIs      error
	}{
		{"error object", 404, "application/json",
			`{"error":{"code":"not_found","message":"Dataset 'x' not found","details":{"dataset":"x"}},"detail":"Dataset 'x' not found"}`,
			"not_found", "Dataset 'x' not found", nil, ErrNotFound},
		{"detail string only", 409, "application/json", `{"detail":"Dataset name already taken"}`,
			"", "Dataset name already taken", nil, ErrConflict},
		{"detail list", 422, "application/json",
			`{"detail":[{"loc":["body","name"],"msg":"field required","type":"missing"},{"loc":["query","limit"],"msg":"must be <= 1000"}]}`,
			"", "validation error", map[string]string{"name": "field required", "limit": "must be <= 1000"}, ErrValidation},
		{"detail object", 402, "application/json", `{"detail":{"code":"insufficient_credits","message":"Dataset cap reached"}}`,
			"insufficient_credits", "Dataset cap reached", nil, ErrPaymentRequired},
		{"error string", 403, "application/json", `{"error":"Role viewer may not delete"}`,
			"", "Role viewer may not delete", nil, ErrForbidden},
		{"details errors list", 400, "application/json",
			`{"error":{"code":"validation_error","message":"bad input","details":{"errors":[{"field":"status_filter","message":"unknown status"}]}}}`,
			"validation_error", "bad input", map[string]string{"status_filter": "unknown status"}, ErrValidation},
		{"non-JSON 5xx", 502, "text/html", "<html><body>\n<h1>502 Bad Gateway</h1>\n</body></html>",
			"", "<html><body> <h1>502 Bad Gateway</h1> </body></html>", nil, ErrServer},
		{"empty 5xx", 500, "text/plain", "", "", "Internal Server Error", nil, ErrServer},
		{"non-JSON 2xx", 200, "text/html", "<html>captive portal</html>", codeInvalidResponse, "", nil, ErrServer},
		{"JSON-invalid 2xx", 200, "application/json", `{"data": {"id": 1`, codeInvalidResponse, "", nil, ErrServer},
		{"2xx with null data", 200, "application/json", `{"data": null}`, codeInvalidResponse, "", nil, ErrServer},
		{"2xx with wrong shape", 200, "application/json", `{"data": []}`, codeInvalidResponse, "", nil, ErrServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.Header().Set("X-Request-Id", "req-42")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}, func(o *Options) { o.MaxRetries = -1 })
			_, err := c.GetDataset(context.Background(), "x")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v (%T), want *APIError", err, err)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("got %v, want errors.Is %v", err, tt.wantIs)
			}
			if ae.Code != tt.wantCode {
				t.Errorf("got code %q, want %q", ae.Code, tt.wantCode)
			}
			if tt.wantMsg != "" && ae.Message != tt.wantMsg {
				t.Errorf("got message %q, want %q", ae.Message, tt.wantMsg)
			}
			for k, v := range tt.wantFields {
				if ae.FieldErrors[k] != v {
					t.Errorf("got field errors %v, want %s=%q", ae.FieldErrors, k, v)
				}
			}
			if ae.Status != tt.status || ae.RequestID != "req-42" || ae.Method != "GET" || ae.Path != "/api/v1/developer/datasets/x" {
				t.Errorf("got %d %q %s %s, want %d req-42 GET /api/v1/developer/datasets/x", ae.Status, ae.RequestID, ae.Method, ae.Path, tt.status)
			}
			msg := err.Error()
			if !strings.Contains(msg, "req-42") || strings.Contains(msg, testKey) {
				t.Errorf("got Error() %q, want the request id and never the key", msg)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	e := &APIError{Status: 429, Code: "rate_limited", Message: "slow down", RequestID: "r1", Method: "GET",
		Path: "/api/v1/developer/datasets/", Attempts: 4, RetryAfter: 300e9}
	want := "pictograph: GET /api/v1/developer/datasets/: 429 rate_limited: slow down [request id r1] after 4 attempts, retry after 5m0s"
	if got := e.Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
