package catalog

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pictofs/pictofs/client"
)

func TestRetryServerErrors(t *testing.T) {
	server := fmt.Errorf("list: %w", client.ErrServer)
	network := fmt.Errorf("list: %w", client.ErrNetwork)
	tests := []struct {
		name      string
		failures  []error // answers before success
		wantCalls int
		wantErr   error
	}{
		{"success", nil, 1, nil},
		{"two 5xx rounds, then success", []error{server, server}, 3, nil},
		{"5xx in every round", []error{server, server, server, server}, listingRounds, client.ErrServer},
		{"no answer: one round only", []error{network, network}, 1, client.ErrNetwork},
		{"a final answer: one round only", []error{client.ErrNotFound}, 1, client.ErrNotFound},
	}
	for _, tt := range tests {
		calls := 0
		err := retryServerErrors(context.Background(), func() error {
			calls++
			if calls <= len(tt.failures) {
				return tt.failures[calls-1]
			}
			return nil
		})
		if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s: got %d calls and %v, want %d calls and %v", tt.name, calls, err, tt.wantCalls, tt.wantErr)
		}
	}
}
