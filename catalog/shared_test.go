package catalog_test

import (
	"context"
	"testing"

	"github.com/pictofs/pictofs/catalog"
	"github.com/pictofs/pictofs/devserver"
	"github.com/pictofs/pictofs/internal/testenv"
	"github.com/pictofs/pictofs/internal/testenv/testkit"
	"github.com/pictofs/pictofs/sharedcache"
	"github.com/pictofs/pictofs/sharedcache/redistest"
)

func newTier(t *testing.T, url, namespace string) *sharedcache.Tier {
	t.Helper()
	tier, err := sharedcache.New(sharedcache.Options{URL: url, Namespace: namespace, Logger: testkit.Logger()})
	if err != nil {
		t.Fatalf("sharedcache.New: %v", err)
	}
	t.Cleanup(func() { tier.Close() })
	return tier
}

// TestSecondNodeReadsFromTheTier: a second catalog with its own disk cache,
// sharing a Redis tier with the first, lists and reads a dataset the first
// read with no API request and no storage GET.
func TestSecondNodeReadsFromTheTier(t *testing.T) {
	redis := redistest.Start(t)
	srv := testenv.StartServer(t, devserver.Options{})
	seed(t, srv, "set", 200, 2)
	ns := srv.APIURL() + "/" + srv.DefaultOrg()
	ctx := context.Background()

	readAll := func(e *testenv.Stack) {
		ds, all, _ := images(t, e, "set")
		for _, im := range all {
			h, err := e.Catalog.OpenImage(ctx, ds, im)
			if err != nil {
				t.Fatalf("OpenImage(%s): %v", im.Name(), err)
			}
			h.Release()
		}
	}
	tierA := newTier(t, redis.URL(), ns)
	first := newEnv(t, srv, "", func(o *catalog.Options) { o.SharedCache = tierA; o.Bulk.Disable = true })
	readAll(first)
	if err := tierA.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := srv.Stats().StorageGets; got != 200 {
		t.Fatalf("first node: %d storage GETs, want 200", got)
	}

	srv.ResetStats()
	second := newEnv(t, srv, "", func(o *catalog.Options) { o.SharedCache = newTier(t, redis.URL(), ns); o.Bulk.Disable = true })
	readAll(second)
	st := srv.Stats()
	if st.StorageGets != 0 || st.APIRequests != 0 {
		t.Errorf("second node: %d storage GETs and %d API requests, want 0 and 0", st.StorageGets, st.APIRequests)
	}

	srv.ResetStats()
	other := newEnv(t, srv, "", func(o *catalog.Options) {
		o.SharedCache = newTier(t, redis.URL(), "another-host/another-org")
		o.Bulk.Disable = true
	})
	readAll(other)
	if got := srv.Stats().StorageGets; got != 200 {
		t.Errorf("a node of another namespace: %d storage GETs, want 200 (nothing shared across organizations)", got)
	}
}
